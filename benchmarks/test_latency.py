"""Lone-event latency through an idle pipeline, and adaptive batching.

An async source is fed one event at a time; the next event is sent only after the previous one
reached the sink and the pipeline sat idle for a moment. The event carries the time it was sent;
the sink measures how long it took. The baseline is a bare ``asyncio.Queue`` hop between two
tasks. The same instrumented sink records the size of every batch it gets: one event each when
idle, growing up to ``max_batch`` under load.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

from _harness import Scale, record

import flowpump as fp
from flowpump._connector import RunContext, SinkSpec, SinkWriter

#: Idle time between two events, so each one finds the pipeline waiting (a sleep lasts at least
#: one tick of the event loop's clock, about a millisecond).
GAP = 0.0002


class _Recorder(SinkSpec):
    """A sink that notes each event's latency and each batch's size (instrumentation only)."""

    label = "recorder"

    def __init__(self, is_async: bool) -> None:
        self.is_async = is_async
        self.latencies: list[float] = []
        self.sizes: list[int] = []
        self.arrived: asyncio.Event | None = None

    async def open(self, ctx: RunContext) -> SinkWriter:
        return _RecorderWriter(self)


class _RecorderWriter(SinkWriter):
    def __init__(self, spec: _Recorder) -> None:
        self.spec = spec

    def _note(self, events: list[Any]) -> None:
        now = time.perf_counter()
        spec = self.spec
        spec.sizes.append(len(events))
        spec.latencies.extend(now - sent for sent in events)
        if spec.arrived is not None:
            spec.arrived.set()

    def write(self, events: list[Any]) -> Any:
        if self.spec.is_async:
            return self._write_async(events)
        self._note(events)
        return None

    async def _write_async(self, events: list[Any]) -> None:
        self._note(events)


def same(t: float) -> float:
    return t


def positive(t: float) -> bool:
    return t > 0


async def _queue_source(queue: asyncio.Queue[float | None]) -> AsyncIterator[float]:
    while (sent := await queue.get()) is not None:
        yield sent


async def _flowpump_latencies(n: int, is_async_sink: bool) -> _Recorder:
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    recorder = _Recorder(is_async_sink)
    recorder.arrived = asyncio.Event()
    pipeline = fp.from_iterable(_queue_source(queue)) >> fp.map(same) >> fp.filter(positive) >> fp.Sink(recorder)
    handle = pipeline.start()
    for _ in range(n):
        await asyncio.sleep(GAP)
        recorder.arrived.clear()
        queue.put_nowait(time.perf_counter())
        await asyncio.wait_for(recorder.arrived.wait(), 10)
    queue.put_nowait(None)
    await handle.wait()
    return recorder


async def _queue_hop_latencies(n: int) -> list[float]:
    """The baseline: one bare asyncio.Queue hop from a producer to a consumer task."""
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    arrived = asyncio.Event()

    async def consumer() -> None:
        while (sent := await queue.get()) is not None:
            latencies.append(time.perf_counter() - sent)
            arrived.set()

    task = asyncio.create_task(consumer())
    for _ in range(n):
        await asyncio.sleep(GAP)
        arrived.clear()
        queue.put_nowait(time.perf_counter())
        await arrived.wait()
    queue.put_nowait(None)
    await task
    return latencies


def _ms(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] * 1000 if len(xs) > 1 else xs[0] * 1000


def _run_latency(benchmark: Any, scale: Scale, name: str, is_async_sink: bool) -> None:
    n = scale.latency_events
    got: dict[str, Any] = {}

    def measure() -> None:
        got["hop"] = asyncio.run(_queue_hop_latencies(n))
        got["flowpump"] = asyncio.run(_flowpump_latencies(n, is_async_sink))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    hop: list[float] = got["hop"]
    rec: _Recorder = got["flowpump"]
    lat = rec.latencies
    assert len(lat) == n
    assert set(rec.sizes) == {1}, "an idle pipeline passes each event on its own"
    notes = {
        "p50": f"{_ms(lat, 50):.3f} ms",
        "p99": f"{_ms(lat, 99):.3f} ms",
        "queue hop p50": f"{_ms(hop, 50):.3f} ms",
        "queue hop p99": f"{_ms(hop, 99):.3f} ms",
    }
    benchmark.extra_info.update(
        p50_ms=round(_ms(lat, 50), 4),
        p99_ms=round(_ms(lat, 99), 4),
        queue_hop_p50_ms=round(_ms(hop, 50), 4),
        queue_hop_p99_ms=round(_ms(hop, 99), 4),
    )
    record(name, n, notes)
    print(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in notes.items()))
    if scale.check_targets:
        assert _ms(lat, 50) <= 0.25, "target: p50 <= 0.25 ms"
        assert _ms(lat, 99) <= 1.0, "target: p99 <= 1 ms"


def test_lone_event_latency_sync_sink(benchmark: Any, scale: Scale) -> None:
    _run_latency(benchmark, scale, "latency: async source >> map >> filter >> sink", is_async_sink=False)


def test_lone_event_latency_async_sink(benchmark: Any, scale: Scale) -> None:
    _run_latency(benchmark, scale, "latency: async source >> map >> filter >> async sink (own task)", True)


async def _flood(n: int, every: int) -> AsyncIterator[float]:
    """``n`` events as fast as possible, pausing (``sleep(0)``) every ``every`` events."""
    for i in range(n):
        yield float(i + 1)
        if every and i % every == 0:
            await asyncio.sleep(0)


class _SlowRecorder(_Recorder):
    """An async sink that takes 1 ms per batch, whatever its size (a network round trip)."""

    async def open(self, ctx: RunContext) -> SinkWriter:
        return _SlowWriter(self)


class _SlowWriter(_RecorderWriter):
    async def _write_async(self, events: list[Any]) -> None:
        self._note(events)
        await asyncio.sleep(0.001)


def test_batches_grow_under_load(scale: Scale) -> None:
    """Batches are whatever has arrived: max_batch from a busy source, coalesced before a slow sink."""
    n = scale.memory_events // 5
    max_batch = RunContext(stop=asyncio.Event()).max_batch
    cases = [
        ("a source that never waits, sync sink", 0, _Recorder(is_async=False)),
        ("a source pausing every 64 events, slow async sink", 64, _SlowRecorder(is_async=True)),
    ]
    for name, every, recorder in cases:
        (fp.from_iterable(_flood(n, every)) >> fp.map(same) >> fp.filter(positive) >> fp.Sink(recorder)).run()
        sizes = recorder.sizes
        assert sum(sizes) == n
        mean = n / len(sizes)
        assert mean > 4 * max(every, 1) or max(sizes) == max_batch, f"{name}: batches did not grow ({mean:.0f})"
        assert max(sizes) <= max_batch
        notes = {"batches": str(len(sizes)), "mean size": f"{mean:.0f}", "largest": str(max(sizes))}
        record(f"adaptive batching under load: {name}", n, notes)
        print(f"\nadaptive batching, {name}: " + ", ".join(f"{k} {v}" for k, v in notes.items()))
