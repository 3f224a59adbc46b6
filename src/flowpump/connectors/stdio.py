"""Standard input and output."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

from .._connector import Positions, RunContext, SinkSpec, SinkWriter, SourceBatch, SourceSpec
from .._graph import Sink, Source
from ._codec import JsonLinesEncoder

__all__ = ["stdin", "stdout"]


class _StdinSource(SourceSpec):
    label = "stdin()"
    out_type = str
    is_async = True

    async def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        stream: Any = sys.stdin.buffer
        rest = b""
        line = 1
        while not ctx.stopping:
            # read1 returns what is available, so an interactive line leaves at once.
            chunk = await asyncio.to_thread(stream.read1, 65536)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            block, rest = data[:cut], data[cut:]
            if block:
                lines = block.decode("utf-8", errors="replace").split("\n")[:-1]
                yield SourceBatch(lines, Positions("stdin", line))
                line += len(lines)
        if rest:
            yield SourceBatch([rest.decode("utf-8", errors="replace")], Positions("stdin", line))


class _StdoutWriter(SinkWriter):
    def __init__(self, label: str) -> None:
        self.codec = JsonLinesEncoder(label)
        self.rejects: list[Any] = []

    def write(self, events: list[Any]) -> None:
        strings = [type(e) is str for e in events]
        if all(strings):
            data = ("\n".join(events) + "\n").encode()
        elif not any(strings):
            data, dead = self.codec.encode(events)
            self.rejects.extend(dead)
        else:
            # A string is written as it is whatever else shares its batch, so the output does not
            # depend on how events happened to be batched.
            parts: list[bytes] = []
            for e, is_str in zip(events, strings, strict=True):
                if is_str:
                    parts.append(e.encode() + b"\n")
                else:
                    part, dead = self.codec.encode([e])
                    parts.append(part)
                    self.rejects.extend(dead)
            data = b"".join(parts)
        out = sys.stdout
        out.flush()
        buffer = getattr(out, "buffer", None)
        if buffer is None:
            # A text-only stdout (Jupyter's OutStream, redirect_stdout to a StringIO): write text.
            out.write(data.decode())
            out.flush()
            return
        buffer.write(data)
        buffer.flush()

    def close(self) -> None:
        sys.stdout.flush()


class _StdoutSpec(SinkSpec):
    label = "stdout()"

    async def open(self, ctx: RunContext) -> SinkWriter:
        return _StdoutWriter(self.label)


def stdin() -> Source[str]:
    """Lines of standard input (without line ends), as they arrive."""
    return Source(_StdinSource())


def stdout() -> Sink[object]:
    """Write events to standard output: strings as they are, anything else as JSON."""
    return Sink(_StdoutSpec())
