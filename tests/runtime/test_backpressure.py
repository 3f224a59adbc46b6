"""Backpressure: a slow sink holds a fast source back; events in flight stay bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import flowpump as fp
from flowpump._connector import RunContext
from flowpump.compiler import plan
from flowpump.connectors.memory import ASYNC_BUFFER

N = 300_000
MAX_BATCH = RunContext(asyncio.Event()).max_batch


def in_flight_bound(pipeline: fp.Pipeline, *, fuse: bool, extra: int = 0) -> int:
    """Events that may be read but not yet written: every channel full, every task holding a batch."""
    stages = plan(pipeline, fuse=fuse).stages()
    slots = sum(s.channel for s in stages if s.channel is not None)
    tasks = 1 + sum(1 for s in stages if s.channel is not None)
    return (slots + tasks) * MAX_BATCH + extra


class Meter:
    """Counts events read by the source and written by the sink; keeps the peak difference."""

    def __init__(self, n: int = N) -> None:
        self.n = n
        self.read = 0
        self.written = 0
        self.peak = 0
        self.writes = 0

    def numbers(self) -> Iterator[int]:
        for i in range(self.n):
            self.read += 1
            yield i

    async def async_numbers(self) -> AsyncIterator[int]:
        for i in range(N):
            self.read += 1
            yield i
            if i % 1000 == 0:
                await asyncio.sleep(0)

    async def slow_write(self, events: list[Any]) -> None:
        self.peak = max(self.peak, self.read - self.written)
        self.writes += 1
        # A slow sink: several loop turns per batch, in which the source is free to run ahead.
        for _ in range(5):
            await asyncio.sleep(0)
        self.written += len(events)


@pytest.mark.parametrize("source", ["sync", "async"])
def test_slow_sink_bounds_events_in_flight(batch_sink, fuse, source):
    meter = Meter()
    sink = batch_sink(on_write=meter.slow_write)
    events = meter.numbers() if source == "sync" else meter.async_numbers()
    pipeline = fp.from_iterable(events) >> fp.map(lambda x: x + 1) >> fp.Sink(sink)
    bound = in_flight_bound(pipeline, fuse=fuse, extra=ASYNC_BUFFER + MAX_BATCH if source == "async" else 0)
    assert bound * 3 < N, "the input must be much larger than what may be in flight"

    report = pipeline.run(fuse=fuse)

    assert meter.written == meter.read == N
    assert sink.items == list(range(1, N + 1))
    assert 0 < meter.peak <= bound
    assert report.events_in == report.events_out == N


def test_backpressure_with_map_async_and_batch(batch_sink, fuse):
    async def ident(x: int) -> int:
        return x

    def build(meter: Meter) -> fp.Pipeline:
        return (
            fp.from_iterable(meter.numbers())
            >> fp.map_async(ident, concurrency=8)
            >> fp.batch(100)
            >> fp.unbatch()
            >> fp.Sink(batch_sink(on_write=meter.slow_write))
        )

    # A batch() stage may hold up to size-1 events on top of its channel.
    bound = in_flight_bound(build(Meter()), fuse=fuse, extra=100)
    meter = Meter(3 * bound)

    build(meter).run(fuse=fuse)

    assert meter.written == meter.n
    assert 0 < meter.peak <= bound
