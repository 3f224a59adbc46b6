"""Block codecs: JSON lines decoded and encoded a block at a time through msgspec.

The fast path decodes a whole block with one ``decode_lines`` call; only when it fails does the
block go line by line, to dead-letter exactly the bad lines and keep every good one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .._connector import Positions, SourceBatch
from .._errors import DeadLetter


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


class JsonLinesDecoder:
    """Decodes blocks of complete JSON lines into events of one type."""

    def __init__(self, tp: Any, label: str, name: str) -> None:
        self.decoder = msgspec.json.Decoder(tp)
        self.label = label
        self.name = name

    def decode_block(self, block: bytes, first_line: int, n_lines: int | None = None) -> SourceBatch:
        """Decode ``block`` (``n_lines`` lines ending in newlines) whose first line is ``first_line``."""
        if n_lines is None:
            n_lines = block.count(b"\n")
        try:
            events = self.decoder.decode_lines(block)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._line_by_line(block, first_line)
        if len(events) == n_lines:
            return SourceBatch(events, Positions(self.name, first_line))
        # Blank lines were skipped: number the events by the lines they came from. (decode_lines
        # also accepts two values on one line; then the counts disagree and the line-by-line path
        # dead-letters that line, as it would if the block had been read one line at a time.)
        lines = [first_line + i for i, raw in enumerate(block.split(b"\n")) if raw.strip()]
        if len(lines) != len(events):
            return self._line_by_line(block, first_line)
        return SourceBatch(events, Positions(self.name, first_line, lines))

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
                dead.append(
                    DeadLetter(stage=self.label, error=_error(exc), raw=raw, position=f"{self.name}:{first_line + i}")
                )
                continue
            lines.append(first_line + i)
        return SourceBatch(events, Positions(self.name, first_line, lines), dead)


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
