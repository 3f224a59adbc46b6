"""Block codecs: JSON lines decoded and encoded a block at a time through msgspec.

The fast path decodes a whole block with one ``decode_lines`` call; only when it fails does the
block go line by line, to dead-letter exactly the bad lines and keep every good one.

Line numbers are worked out only when something asks for one (a dead letter's position, a
source's acknowledged line): counting the newlines of every block as it is read costs a pass
over all the bytes, about 5% of a ``read_jsonl >> map >> filter >> write_jsonl`` run. A
``LineIndex`` answers from the nearest point it knows, counting forward from there.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import IO, Any

import msgspec

from .._connector import Positions, SourceBatch
from .._errors import DeadLetter

#: Bytes read at a time when the index counts newlines again.
_COUNT_CHUNK = 1 << 20


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


class LineIndex:
    """The number of newlines before a byte offset of a stream, counted when asked.

    ``reopen`` opens the stream again at its start, to count a stretch that was read but not
    counted; without it (a gzip file: reading again means decompressing again) the reader must
    ``note`` every block's count as it goes. A stream that does not end with a newline is read as
    if it did, so an offset one past its end counts that last line too. Thread-safe: a notebook
    may read a source's acknowledged line while the run goes on.
    """

    def __init__(self, reopen: Callable[[], IO[bytes]] | None = None) -> None:
        self._reopen = reopen
        # Invariant: _offsets is sorted, and _lines[i] newlines come before _offsets[i].
        self._offsets = [0]
        self._lines = [0]
        self._lock = threading.Lock()

    def note(self, offset: int, lines: int) -> None:
        """Record that ``lines`` newlines come before ``offset``."""
        with self._lock:
            i = bisect.bisect_left(self._offsets, offset)
            if i == len(self._offsets) or self._offsets[i] != offset:
                self._offsets.insert(i, offset)
                self._lines.insert(i, lines)

    def lines_before(self, offset: int) -> int:
        """The number of newlines in the stream before byte ``offset``."""
        with self._lock:
            i = bisect.bisect_right(self._offsets, offset) - 1
            start, lines = self._offsets[i], self._lines[i]
        if start == offset:
            return lines
        if self._reopen is None:
            msg = f"no line count at byte {offset} (nearest: {start})"
            raise LookupError(msg)
        lines += self._count(start, offset)
        self.note(offset, lines)
        return lines

    def _count(self, start: int, end: int) -> int:
        assert self._reopen is not None
        n = 0
        with self._reopen() as f:
            f.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = f.read(min(remaining, _COUNT_CHUNK))
                if not chunk:
                    return n + 1  # past the end: the last line had no newline
                n += chunk.count(b"\n")
                remaining -= len(chunk)
        return n


class BlockPositions(Positions):
    """Positions of the events decoded from one block, worked out on the first ``at()``.

    Until then it holds the block: a batch in flight keeps its events anyway, and most batches
    never need a position.
    """

    __slots__ = ("_block", "_count", "_index", "_offset", "_values_on")

    def __init__(
        self,
        name: str,
        index: LineIndex,
        offset: int,
        block: bytes,
        count: int,
        values_on: Callable[[bytes], int] | None = None,
    ) -> None:
        super().__init__(name, 0)
        self._index = index
        self._offset = offset
        self._block: bytes | None = block
        self._count = count
        self._values_on = values_on

    def at(self, index: int) -> str:
        """The position of the event at ``index`` in its source batch."""
        if self._block is not None:
            self._resolve(self._block)
        return super().at(index)

    def _resolve(self, block: bytes) -> None:
        first = self._index.lines_before(self._offset) + 1
        lines = None
        if block.count(b"\n") != self._count:
            # Blank lines were skipped (or a line held several values): number events by line.
            values_on = self._values_on or (lambda raw: 1)
            lines = []
            for i, raw in enumerate(block.split(b"\n")):
                if raw.strip():
                    lines.extend([first + i] * values_on(raw))
        self.start, self.lines, self._block = first, lines, None


class JsonLinesDecoder:
    """Decodes blocks of complete JSON lines into events of one type."""

    def __init__(self, tp: Any, label: str, name: str) -> None:
        self.decoder = msgspec.json.Decoder(tp)
        self.label = label
        self.name = name

    def decode_block(self, block: bytes, offset: int, index: LineIndex) -> SourceBatch:
        """Decode ``block`` (complete lines), found at byte ``offset`` of the stream ``index`` counts.

        A line holding several JSON values gives several events, as ``decode_lines`` reads it.
        """
        try:
            events = self.decoder.decode_lines(block)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._line_by_line(block, index.lines_before(offset) + 1)
        return SourceBatch(events, BlockPositions(self.name, index, offset, block, len(events), self._values_on))

    def _values_on(self, raw: bytes) -> int:
        return len(_RAW.decode_lines(raw))

    def _line_by_line(self, block: bytes, first_line: int) -> SourceBatch:
        decode = self.decoder.decode
        events: list[Any] = []
        lines: list[int] = []
        dead: list[DeadLetter] = []
        for i, raw in enumerate(block.split(b"\n")):
            if not raw.strip():
                continue
            try:
                events.append(decode(raw))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                several = self._several(raw)
                if several is None:
                    pos = f"{self.name}:{first_line + i}"
                    dead.append(DeadLetter(stage=self.label, error=_error(exc), raw=raw, position=pos))
                    continue
                events.extend(several)
                lines.extend([first_line + i] * (len(several) - 1))
            lines.append(first_line + i)
        return SourceBatch(events, Positions(self.name, first_line, lines), dead)

    def _several(self, raw: bytes) -> list[Any] | None:
        """The values of a line that holds more than one (as the block path reads it), or None."""
        try:
            return self.decoder.decode_lines(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None


#: Splits a line into its JSON values without building them (to number events by line).
_RAW = msgspec.json.Decoder(msgspec.Raw)


class JsonLinesEncoder:
    """Encodes a batch into one ``bytes``; unencodable events are returned as dead letters."""

    def __init__(self, label: str) -> None:
        self.encoder = msgspec.json.Encoder()
        self.label = label

    def encode(self, events: list[Any]) -> tuple[bytes, list[DeadLetter]]:
        """The bytes to write and the events that could not be encoded."""
        try:
            return self.encoder.encode_lines(events), []
        except (TypeError, msgspec.EncodeError):
            pass
        parts: list[bytes] = []
        dead: list[DeadLetter] = []
        encode = self.encoder.encode
        for e in events:
            try:
                parts.append(encode(e))
            except (TypeError, msgspec.EncodeError) as exc:
                msg = f"{_error(exc)} (convert it to a msgspec Struct, dict or builtin before this sink)"
                dead.append(DeadLetter(stage=self.label, error=msg, event=e))
        return (b"\n".join(parts) + b"\n" if parts else b""), dead
