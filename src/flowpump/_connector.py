"""The contract between the runtime and connectors (sources and sinks).

A *spec* (``SourceSpec``/``SinkSpec``) is immutable configuration that lives in the graph and may
be used by many runs; everything stateful (open files, cursors) is created per run by
``SourceSpec.batches`` and ``SinkSpec.open``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import DeadLetter

__all__ = [
    "Positions",
    "RunContext",
    "SinkSpec",
    "SinkWriter",
    "SourceBatch",
    "SourceSpec",
]


class Positions:
    """Where each event of a source batch came from (``path:line``), computed only when asked."""

    __slots__ = ("lines", "name", "start", "template")

    def __init__(self, name: str, start: int, lines: Sequence[int] | None = None, template: str = "{name}:{n}") -> None:
        self.name = name
        self.start = start
        # Invariant: when ``lines`` is None, event i came from line ``start + i``.
        self.lines = lines
        self.template = template

    def at(self, index: int) -> str:
        """The position of the event at ``index`` in its source batch."""
        n = self.start + index if self.lines is None else self.lines[index]
        return self.template.format(name=self.name, n=n)


@dataclass(slots=True)
class SourceBatch:
    """One batch read by a source.

    ``on_done`` is called, in source order, once every event derived from this batch has been
    written by every sink, filtered out or dead-lettered: a file source records its position there,
    a broker acknowledges.
    """

    events: list[Any]
    positions: Positions | None = None
    dead: list[DeadLetter] = field(default_factory=list)
    on_done: Callable[[], None] | None = None


@dataclass(slots=True)
class RunContext:
    """What a running source or sink may know about the run."""

    stop: asyncio.Event
    max_batch: int = 4096
    #: True when a supervisor restarts a failed run: a source able to, resumes after what was acknowledged.
    resume: bool = False

    @property
    def stopping(self) -> bool:
        """True once the run was asked to stop: sources finish their batch and return."""
        return self.stop.is_set()


class SourceSpec(ABC):
    """A source: produces batches of events of type ``out_type``."""

    label: str = "source"
    out_type: Any = None
    #: True when reading awaits real I/O; the runtime then decouples it with a channel.
    is_async: bool = False

    def check(self) -> None:  # noqa: B027 - an optional hook: a no-op unless overridden
        """Pre-flight: raise if the source cannot be read (e.g. a missing file).

        Called for every source before any sink is opened, so a typo in an input path does not
        truncate an output file. A ``PipelineError`` or ``PipelineDefinitionError`` is raised as
        it is; any other exception becomes a ``PipelineError`` naming the source.
        """

    @abstractmethod
    def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        """Yield batches until the data ends or ``ctx.stopping`` becomes true."""


class SinkWriter(ABC):
    """The per-run side of a sink."""

    @abstractmethod
    def write(self, events: list[Any]) -> Awaitable[None] | None:
        """Write one batch; raise to have the runtime retry the whole batch with backoff."""

    def close(self) -> Awaitable[None] | None:
        """Flush and release; called once, also when the run fails."""
        return None


class SinkSpec(ABC):
    """A sink: accepts events of type ``in_type``."""

    label: str = "sink"
    in_type: Any = None
    #: True when ``write`` awaits real I/O; the runtime then gives the sink its own task.
    is_async: bool = False
    #: Attempts per batch before the run stops with PipelineError.
    attempts: int = 5

    @abstractmethod
    async def open(self, ctx: RunContext) -> SinkWriter:
        """Open the sink for one run."""
