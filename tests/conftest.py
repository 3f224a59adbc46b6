"""Shared fixtures for the core tests: fused/unfused runs, fast retries, a recording source and sink.

Nothing here is autouse: other suites (typing, notebook, app) share this directory.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

import flowpump as fp
from flowpump._connector import RunContext, SinkSpec, SinkWriter, SourceBatch, SourceSpec
from flowpump.runtime import _executor

R = TypeVar("R")

#: Generous upper bound for waits that only guard against a hang; never asserted as a latency.
HANG_GUARD = 30.0


@pytest.fixture(params=[True, False], ids=["fused", "unfused"])
def fuse(request: pytest.FixtureRequest) -> bool:
    """Run a test once with the fused plan and once with ``fuse=False``."""
    return bool(request.param)


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a failing sink's backoff tiny, so retry tests do not sleep for real."""
    monkeypatch.setattr(_executor, "BACKOFF", 0.0005)
    monkeypatch.setattr(_executor, "MAX_BACKOFF", 0.001)


def run_async(coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` in a fresh loop with a guard against hangs (there is no pytest-asyncio)."""

    async def guarded() -> R:
        return await asyncio.wait_for(coro, HANG_GUARD)

    return asyncio.run(guarded())


@pytest.fixture
def arun() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``arun(coro)``: run an async test body in a fresh event loop."""
    return run_async


@dataclass
class Acks:
    """What a ``RecordingSource`` saw: acknowledgements in the order they arrived."""

    batches: list[list[Any]]
    acked: list[int] = field(default_factory=list)
    #: for each ack, whether every event of that batch had been written at the time
    complete: list[bool] = field(default_factory=list)


class RecordingSource(SourceSpec):
    """Yields fixed batches; each batch's ``on_done`` records its index and checks ``written``.

    ``pace`` > 0 makes it an async source that yields to the loop between batches.
    """

    label = "recording"

    def __init__(self, batches: list[list[Any]], written: Callable[[], set[Any]], *, pace: bool = True) -> None:
        self.acks = Acks(batches)
        self.written = written
        self.pace = pace
        self.is_async = pace

    def _done(self, i: int) -> Callable[[], None]:
        def on_done() -> None:
            written = self.written()
            self.acks.acked.append(i)
            self.acks.complete.append(all(e in written for e in self.acks.batches[i]))

        return on_done

    async def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        for i, events in enumerate(self.acks.batches):
            if ctx.stopping:
                return
            if self.pace:
                await asyncio.sleep(0)
            yield SourceBatch(list(events), on_done=self._done(i))


@pytest.fixture
def recording_source() -> type[RecordingSource]:
    """The ``RecordingSource`` class (a SourceSpec whose acks are recorded)."""
    return RecordingSource


class _BatchWriter(SinkWriter):
    def __init__(self, spec: BatchSink) -> None:
        self.spec = spec

    async def write(self, events: list[Any]) -> None:
        spec = self.spec
        spec.calls += 1
        if spec.fail_first > 0:
            spec.fail_first -= 1
            msg = "sink temporarily down"
            raise ConnectionError(msg)
        if spec.on_write is not None:
            await spec.on_write(events)
        spec.batches.append(list(events))

    async def close(self) -> None:
        self.spec.closed += 1


class BatchSink(SinkSpec):
    """An async sink that records every batch it wrote; can fail its first writes."""

    is_async = True
    label = "batch_sink"

    def __init__(
        self,
        *,
        fail_first: int = 0,
        on_write: Callable[[list[Any]], Coroutine[Any, Any, None]] | None = None,
        attempts: int = 5,
    ) -> None:
        self.batches: list[list[Any]] = []
        self.calls = 0
        self.closed = 0
        self.fail_first = fail_first
        self.on_write = on_write
        self.attempts = attempts

    @property
    def items(self) -> list[Any]:
        """Every event written, in order."""
        return [e for b in self.batches for e in b]

    async def open(self, ctx: RunContext) -> SinkWriter:
        return _BatchWriter(self)


@pytest.fixture
def batch_sink() -> type[BatchSink]:
    """The ``BatchSink`` class: ``fp.Sink(batch_sink(...))`` is a recording async sink."""
    return BatchSink


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail if a thread started during the test is still alive at its end."""
    before = set(threading.enumerate())
    yield
    for t in set(threading.enumerate()) - before:
        # A run thread may still be returning from asyncio.run() after it handed over the report.
        t.join(HANG_GUARD)
    left = [t.name for t in set(threading.enumerate()) - before]
    assert left == []


@dataclass
class Drained:
    """The outcome of ``drain``: events written, dead letters and the report."""

    items: list[Any]
    dead: list[fp.DeadLetter]
    report: fp.RunReport


def drain_flow(flow: fp.Flow[Any], *, fuse: bool = True) -> Drained:
    """Run ``flow`` into a collect() sink, dead letters into another, and return all three."""
    out: fp.Collect[Any] = fp.collect()
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    report = (flow >> out).on_error(dead).run(fuse=fuse)
    return Drained(list(out.items), list(dead.items), report)


@pytest.fixture
def drain() -> Callable[..., Drained]:
    """``drain(flow, fuse=...)``: run into collect() sinks and return items, dead letters, report."""
    return drain_flow


def stage(report: fp.RunReport, label: str) -> fp.StageReport:
    """The one stage of ``report`` with ``label`` (main pipeline stages only)."""
    found = [s for s in report.stages if s.label == label and s.role != "errors"]
    assert len(found) == 1, [s.label for s in report.stages]
    return found[0]


@pytest.fixture
def stage_of() -> Callable[[fp.RunReport, str], fp.StageReport]:
    """``stage_of(report, label)``: the main-pipeline stage with that label."""
    return stage
