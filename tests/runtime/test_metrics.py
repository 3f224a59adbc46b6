"""Latency histogram and time blocked by backpressure, in the run report."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import flowpump as fp
from flowpump.runtime import Latency
from flowpump.runtime._acks import AckTracker, Envelope
from flowpump.runtime._report import LATENCY_BUCKETS, LatencyHistogram

# -- the histogram ------------------------------------------------------------------------------


def test_an_empty_histogram_has_no_quantiles() -> None:
    lat = Latency()
    assert (lat.count, lat.p50, lat.p99, lat.mean) == (0, None, None, None)
    assert len(lat.counts) == len(LATENCY_BUCKETS) + 1


def test_observations_are_weighted_by_their_event_count() -> None:
    h = LatencyHistogram()
    h.observe(0.0001, 90)  # first bucket (<= 0.5 ms)
    h.observe(0.3, 10)  # the (0.25, 0.5] bucket
    lat = h.snapshot()
    assert lat.count == 100
    assert lat.counts[0] == 90
    assert lat.counts[LATENCY_BUCKETS.index(0.5)] == 10
    assert lat.sum == pytest.approx(0.0001 * 90 + 0.3 * 10)
    assert lat.max == 0.3
    # Interpolated inside the bucket, up to the largest latency seen (0.3), not to its bound (0.5).
    assert lat.p50 is not None
    assert 0 < lat.p50 <= 0.0005
    assert lat.p99 == pytest.approx(0.25 + 0.05 * 9 / 10)
    assert lat.quantile(0.95) == pytest.approx(0.25 + 0.05 * 5 / 10)
    assert lat.quantile(1.0) == 0.3


def test_a_latency_above_the_last_bound_goes_to_the_last_bucket() -> None:
    h = LatencyHistogram()
    h.observe(42.0, 3)
    lat = h.snapshot()
    assert lat.counts[-1] == 3
    # Interpolated between the last bound and the largest latency seen.
    assert lat.p50 == pytest.approx(10 + 32 / 2)
    assert lat.quantile(1.0) == 42.0


def test_histograms_add_up() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    a.observe(0.002, 5)
    b.observe(0.2, 5)
    both = a.snapshot() + b.snapshot()
    assert (both.count, both.max) == (10, 0.2)
    assert both.sum == pytest.approx(0.002 * 5 + 0.2 * 5)


def test_a_merged_envelope_keeps_the_oldest_read_time() -> None:
    tracker = AckTracker()
    envs = [Envelope([tracker.ticket(None)], None, t) for t in (5.0, 3.0, 4.0)]
    assert Envelope.merged(envs).read_at == 3.0
    assert Envelope([tracker.ticket(None)], None).read_at <= time.perf_counter()


# -- in a run -----------------------------------------------------------------------------------


def test_every_written_event_has_a_latency(fuse: bool) -> None:
    report = (
        (fp.from_iterable(range(1000)) >> fp.map(lambda x: 1 // (x % 10)) >> fp.collect[int]())
        .on_error(fp.collect[fp.DeadLetter]())
        .run(fuse=fuse)
    )
    # Events written by the main sinks only: dead letters are not counted.
    assert report.latency.count == report.events_out == 900
    assert report.latency_p50 is not None
    assert report.latency_p99 is not None
    assert 0 <= report.latency_p50 <= report.latency_p99 <= report.latency.max < 5
    assert ", latency p50 " in str(report).splitlines()[-1]


def test_latency_runs_from_the_read_to_the_write(fuse: bool) -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(0.03)
        return x

    report = (fp.from_iterable(range(20)) >> fp.map_async(slow, concurrency=1) >> fp.collect[int]()).run(fuse=fuse)
    # Each event waits at least its own 30 ms in map_async (batches of several wait longer).
    assert report.latency.count == 20
    assert report.latency_p50 is not None
    assert report.latency_p50 >= 0.025


def test_a_run_without_written_events_shows_no_latency() -> None:
    report = (fp.from_iterable(range(10)) >> fp.filter(lambda x: x > 99) >> fp.collect[int]()).run()
    assert report.latency.count == 0
    assert report.latency_p50 is None
    assert "latency" not in str(report)


def test_a_source_held_back_by_a_slow_sink_is_blocked(batch_sink: Any) -> None:
    async def slow_write(events: list[Any]) -> None:
        await asyncio.sleep(0.002)

    sink = batch_sink(on_write=slow_write)
    # Many more batches than the sink's channel holds: the source waits for room.
    report = (fp.from_iterable(range(200_000)) >> fp.Sink(sink)).run()
    source = report.stages[0]
    assert source.role == "source"
    assert source.blocked_seconds > 0.02
    assert report.blocked_seconds == pytest.approx(sum(s.blocked_seconds for s in report.stages))
    assert report.stages[-1].blocked_seconds == 0.0
    head = str(report).splitlines()[0].split()
    assert head == ["stage", "in", "out", "filtered", "dead", "seconds", "blocked"]


def test_no_blocked_column_when_nothing_waited() -> None:
    report = (fp.from_iterable(range(10)) >> fp.collect[int]()).run()
    assert report.blocked_seconds == 0.0
    assert "blocked" not in str(report)
