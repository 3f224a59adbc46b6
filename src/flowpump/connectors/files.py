"""File connectors: JSON lines, text lines and CSV, plain or gzip-compressed (``.gz``).

Readers stream in blocks (constant memory for a file of any size) and report the position of
every bad record; writers write one block per batch and flush at the end of the run.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any, TypeVar

import msgspec

from .._connector import Positions, RunContext, SinkSpec, SinkWriter, SourceBatch, SourceSpec
from .._errors import DeadLetter, PipelineDefinitionError, PipelineError
from .._graph import Sink, Source
from ._codec import BlockPositions, JsonLinesDecoder, JsonLinesEncoder, LineIndex

__all__ = ["read_csv", "read_jsonl", "read_lines", "write_jsonl", "write_lines"]

T = TypeVar("T")

#: Bytes read per block: large enough to amortise per-batch costs, small enough to stay flat.
BLOCK_SIZE = 256 * 1024

PathLike = str | os.PathLike[str]


def _open_read(path: PathLike) -> IO[bytes]:
    p = os.fspath(path)
    if p.endswith(".gz"):
        return gzip.open(p, "rb")  # type: ignore[return-value]  # GzipFile is a binary IO
    return open(p, "rb")


def _open_write(path: PathLike) -> IO[bytes]:
    p = os.fspath(path)
    if p.endswith(".gz"):
        return gzip.open(p, "wb")  # type: ignore[return-value]  # GzipFile is a binary IO
    return open(p, "wb", buffering=1024 * 1024)


def _name(path: PathLike) -> str:
    return os.path.basename(os.fspath(path))


def _blocks(f: IO[bytes], ctx: RunContext, offset: int = 0) -> Iterator[tuple[bytes, int]]:
    """Complete-line blocks of ``f`` (positioned at byte ``offset``), each with its byte offset.

    Each block is one ``read`` completed by one ``readline``, so its bytes are copied once (a
    ``rest + chunk`` join would copy every block again). A last line without a newline gets one.
    """
    read, readline = f.read, f.readline
    while not ctx.stopping:
        block = read(BLOCK_SIZE)
        if not block:
            break
        if block[-1] != 10:  # b"\n": finish the last line
            block += readline()
            if block[-1] != 10:  # the file does not end with a newline
                block += b"\n"
        yield block, offset
        offset += len(block)
        del block


class _FileSource(SourceSpec):
    """Common reading loop; subclasses turn a block into a batch."""

    def __init__(self, path: PathLike, kind: str) -> None:
        self.path = path
        self.name = _name(path)
        self.label = f"{kind}({self.name})"
        self._index = LineIndex()
        self._acked_end = 0

    @property
    def acked_line(self) -> int:
        """The last line whose events have all been written, filtered or dead-lettered.

        Counted when read (from the file, which must still be there), not as blocks go by.
        """
        return self._index.lines_before(self._acked_end) if self._acked_end else 0

    def _check(self) -> None:
        if not os.path.exists(self.path):
            msg = f"{self.label}: no such file {os.fspath(self.path)!r}"
            raise PipelineDefinitionError(msg)

    def check(self) -> None:
        try:
            self._check()
        except PipelineDefinitionError as exc:
            msg = f"{exc}; no sink was opened"
            raise PipelineError(msg, stage=self.label) from None

    def decode(self, block: bytes, offset: int, index: LineIndex) -> SourceBatch:
        """The batch of ``block`` (complete lines), found at byte ``offset`` of the file."""
        raise NotImplementedError

    def _ack(self, end: int) -> Any:
        def done() -> None:
            self._acked_end = end

        return done

    async def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        self._check()
        # Lines are counted when asked, by reading the file again: not a gzip file (that would
        # mean decompressing it again) nor a pipe or device (reading it again would take data).
        regular = os.path.isfile(self.path)  # noqa: ASYNC240 - one stat, then blocking reads anyway
        eager = os.fspath(self.path).endswith(".gz") or not regular
        # A supervised restart continues after the acknowledged lines (a pipe cannot be re-read).
        start = self._acked_end if ctx.resume and regular else 0
        if start:
            index = self._index  # same file: its line counts still hold
            lines = index.lines_before(start)
        else:
            index = LineIndex(None if eager else (lambda: _open_read(self.path)))
            self._index, self._acked_end = index, 0
            lines = 0
        with _open_read(self.path) as f:
            if start:
                f.seek(start)  # gzip: decompresses and skips up to the offset
            for block, offset in _blocks(f, ctx, start):
                if eager:
                    lines += block.count(b"\n")
                    index.note(offset + len(block), lines)
                batch = self.decode(block, offset, index)
                batch.on_done = self._ack(offset + len(block))
                yield batch
                # Let the batch go before the next one is decoded: its memory is reused, warm.
                del batch, block


class _JsonlSource(_FileSource):
    def __init__(self, path: PathLike, tp: Any) -> None:
        super().__init__(path, "read_jsonl")
        self.out_type = tp
        self.codec = JsonLinesDecoder(tp, self.label, self.name)

    def decode(self, block: bytes, offset: int, index: LineIndex) -> SourceBatch:
        return self.codec.decode_block(block, offset, index)


class _LinesSource(_FileSource):
    out_type = str

    def __init__(self, path: PathLike, encoding: str) -> None:
        super().__init__(path, "read_lines")
        self.encoding = encoding

    def decode(self, block: bytes, offset: int, index: LineIndex) -> SourceBatch:
        try:
            text = block.decode(self.encoding)
        except UnicodeDecodeError:
            return self._line_by_line(block, index.lines_before(offset) + 1)
        if "\r" in text:  # Windows line ends: a "\r\n" ends a line as "\n" does
            text = text.replace("\r\n", "\n")
        events = text.split("\n")[:-1]
        return SourceBatch(events, BlockPositions(self.name, index, offset, block, len(events)))

    def _line_by_line(self, block: bytes, first_line: int) -> SourceBatch:
        events: list[str] = []
        lines: list[int] = []
        dead: list[DeadLetter] = []
        for i, raw in enumerate(block.split(b"\n")[:-1]):
            try:
                events.append(raw.decode(self.encoding).removesuffix("\r"))
                lines.append(first_line + i)
            except UnicodeDecodeError as exc:
                pos = f"{self.name}:{first_line + i}"
                dead.append(DeadLetter(stage=self.label, error=f"UnicodeDecodeError: {exc}", raw=raw, position=pos))
        return SourceBatch(events, Positions(self.name, first_line, lines), dead)


class _CsvSource(SourceSpec):
    def __init__(self, path: PathLike, tp: Any, delimiter: str, encoding: str) -> None:
        self.path = path
        self.name = _name(path)
        self.label = f"read_csv({self.name})"
        self.out_type = tp
        self.list_type: Any = list[tp]
        self.delimiter = delimiter
        self.encoding = encoding

    def _rows(self, rows: list[dict[str, str]], lines: list[int]) -> SourceBatch:
        tp = self.out_type
        # DictReader puts the fields of a row longer than the header in a list under key None.
        extras = any(None in row for row in rows)
        if not extras:
            try:
                return SourceBatch(msgspec.convert(rows, self.list_type, strict=False), Positions(self.name, 0, lines))
            except msgspec.ValidationError:
                pass
        events: list[Any] = []
        good: list[int] = []
        dead: list[DeadLetter] = []
        for row, line in zip(rows, lines, strict=True):
            extra: list[str] | None = row.get(None) if extras else None  # type: ignore[call-overload]
            if extra is not None:
                fields = [v or "" for k, v in row.items() if k is not None]
                raw = self.delimiter.join([*fields, *extra]).encode()
                error = (
                    f"ValueError: line {line} has {len(extra)} extra field(s): "
                    f"{len(fields) + len(extra)} fields, the header names {len(fields)}"
                )
                dead.append(DeadLetter(stage=self.label, error=error, raw=raw, position=f"{self.name}:{line}"))
                continue
            try:
                events.append(msgspec.convert(row, tp, strict=False))
                good.append(line)
            except msgspec.ValidationError as exc:
                raw = self.delimiter.join(v or "" for v in row.values()).encode()
                pos = f"{self.name}:{line}"
                dead.append(DeadLetter(stage=self.label, error=f"ValidationError: {exc}", raw=raw, position=pos))
        return SourceBatch(events, Positions(self.name, 0, good), dead)

    def check(self) -> None:
        if not os.path.exists(self.path):
            msg = f"{self.label}: no such file {os.fspath(self.path)!r}; no sink was opened"
            raise PipelineError(msg, stage=self.label)

    async def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        if not os.path.exists(self.path):  # noqa: ASYNC240 - one stat before a blocking read loop
            msg = f"{self.label}: no such file {os.fspath(self.path)!r}"
            raise PipelineDefinitionError(msg)
        with _open_read(self.path) as raw, io.TextIOWrapper(raw, encoding=self.encoding, newline="") as text:
            reader = csv.DictReader(text, delimiter=self.delimiter)
            while not ctx.stopping:
                rows: list[dict[str, str]] = []
                lines: list[int] = []
                for row in itertools.islice(reader, 2048):
                    rows.append(row)
                    lines.append(reader.line_num)
                if not rows:
                    return
                yield self._rows(rows, lines)


def read_jsonl(path: PathLike, type: type[T]) -> Source[T]:  # noqa: A002 - the contract's name
    """Read a JSON-lines file (or ``.gz``), each line decoded into ``type`` by msgspec.

    A line that does not decode becomes a ``DeadLetter`` with its raw bytes and ``file:line``.

    >>> import msgspec, flowpump as fp, tempfile, os, pathlib
    >>> class P(msgspec.Struct):
    ...     x: int
    >>> path = os.path.join(tempfile.mkdtemp(), "p.jsonl")
    >>> _ = pathlib.Path(path).write_text('{"x": 1}\\n{"x": 2}\\n')
    >>> fp.read_jsonl(path, P).take(5)
    [P(x=1), P(x=2)]
    """
    return Source(_JsonlSource(path, type))


def read_lines(path: PathLike, *, encoding: str = "utf-8") -> Source[str]:
    """Read a text file (or ``.gz``) line by line, without the line ends."""
    return Source(_LinesSource(path, encoding))


def read_csv(path: PathLike, type: type[T], *, delimiter: str = ",", encoding: str = "utf-8") -> Source[T]:  # noqa: A002
    """Read a CSV file with a header row; each row is converted into ``type`` by msgspec."""
    return Source(_CsvSource(path, type, delimiter, encoding))


class _FileWriter(SinkWriter):
    def __init__(self, f: IO[bytes], label: str) -> None:
        self.f = f
        self.rejects: list[DeadLetter] = []
        self.label = label

    def close(self) -> None:
        self.f.close()


class _JsonlWriter(_FileWriter):
    def __init__(self, f: IO[bytes], label: str) -> None:
        super().__init__(f, label)
        self.codec = JsonLinesEncoder(label)

    def write(self, events: list[Any]) -> None:
        data, dead = self.codec.encode(events)
        self.f.write(data)
        self.rejects.extend(self._salvage(dead) if dead else dead)

    def _salvage(self, dead: list[DeadLetter]) -> list[DeadLetter]:
        """Write dead letters whose event JSON cannot encode with ``repr(event)`` instead.

        Such a record would otherwise be rejected by the dead-letter sink itself and lost.
        """
        letters = [d.event for d in dead if isinstance(d.event, DeadLetter)]
        if not letters:
            return dead
        data, still = self.codec.encode([msgspec.structs.replace(d, event=repr(d.event)) for d in letters])
        self.f.write(data)
        return [d for d in dead if not isinstance(d.event, DeadLetter)] + still


class _LinesWriter(_FileWriter):
    def __init__(self, f: IO[bytes], label: str, encoding: str) -> None:
        super().__init__(f, label)
        self.encoding = encoding

    def write(self, events: list[Any]) -> None:
        try:
            self.f.write(("\n".join(events) + "\n").encode(self.encoding))
            return
        except (TypeError, UnicodeEncodeError):
            pass
        good = []
        for e in events:
            if isinstance(e, str):
                good.append(e)
            else:
                err = f"TypeError: write_lines writes str, got {type(e).__name__} (add fp.map(str) before it)"
                self.rejects.append(DeadLetter(stage=self.label, error=err, event=e))
        if good:
            self.f.write(("\n".join(good) + "\n").encode(self.encoding, errors="replace"))


class _FileSink(SinkSpec):
    def __init__(self, path: PathLike, kind: str, encoding: str = "utf-8") -> None:
        self.path = path
        self.kind = kind
        self.label = f"{kind}({_name(path)})"
        self.encoding = encoding
        self.in_type = str if kind == "write_lines" else None

    async def open(self, ctx: RunContext) -> SinkWriter:
        f = _open_write(self.path)
        if self.kind == "write_lines":
            return _LinesWriter(f, self.label, self.encoding)
        return _JsonlWriter(f, self.label)


def write_jsonl(path: PathLike) -> Sink[object]:
    """Write events as JSON lines (msgspec; Structs, dicts, lists and builtins), ``.gz`` too.

    >>> import flowpump as fp, tempfile, os, pathlib
    >>> path = os.path.join(tempfile.mkdtemp(), "out.jsonl")
    >>> _ = (fp.from_iterable([{"a": 1}]) >> fp.write_jsonl(path)).run()
    >>> pathlib.Path(path).read_text()
    '{"a":1}\\n'
    """
    return Sink(_FileSink(path, "write_jsonl"))


def write_lines(path: PathLike, *, encoding: str = "utf-8") -> Sink[str]:
    """Write ``str`` events one per line."""
    return Sink(_FileSink(path, "write_lines", encoding))
