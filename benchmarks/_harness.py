"""The benchmark harness: sizes, interleaved flowpump-vs-baseline timing, the summary table.

Every benchmark runs flowpump and its hand-written baselines in the same process, alternating
round by round (the baselines, then flowpump), and reports medians: the machine is noisy, and a
ratio from one run on one machine is what the targets are about.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scale:
    name: str
    anchor_events: int
    anchor_rounds: int
    memory_events: int
    memory_rounds: int
    latency_events: int
    rss_events: tuple[int, int]
    #: Full runs check the targets; smoke runs only check that results are right.
    check_targets: bool


SCALES = {
    "full": Scale("full", 1_000_000, 9, 1_000_000, 11, 1_000, (1_000_000, 10_000_000), True),
    "smoke": Scale("smoke", 20_000, 3, 50_000, 3, 200, (100_000, 300_000), False),
}


@dataclass
class Result:
    """What one benchmark measured; rendered in the summary table at the end of the session."""

    name: str
    events: int
    #: side -> seconds per round (wall clock, CPU)
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def median(self, side: str, clock: str = "wall") -> float:
        return statistics.median((self.wall if clock == "wall" else self.cpu)[side])

    def ratio(self, baseline: str, clock: str = "wall") -> float:
        """flowpump's throughput relative to ``baseline`` (higher is better for flowpump)."""
        return self.median(baseline, clock) / self.median("flowpump", clock)

    def rate(self, side: str) -> float:
        return self.events / self.median(side)


RESULTS: list[Result] = []


def _timed(result: Result, side: str, fn: Callable[[], object]) -> None:
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    result.wall.setdefault(side, []).append(time.perf_counter() - w0)
    result.cpu.setdefault(side, []).append(time.process_time() - c0)


def compare(
    benchmark: Any,
    name: str,
    events: int,
    flowpump: Callable[[], object],
    baselines: dict[str, Callable[[], object]],
    rounds: int,
) -> Result:
    """Time ``flowpump`` against ``baselines``, interleaved, ``rounds`` times after one warm-up.

    pytest-benchmark times the flowpump side (its statistics are in the JSON it saves); the
    baselines run in its ``setup`` hook, just before each flowpump round, and are timed here.
    """
    result = Result(name, events)
    warm = Result(name, events)
    for side, fn in baselines.items():
        _timed(warm, side, fn)
    _timed(warm, "flowpump", flowpump)

    def setup() -> None:
        for side, fn in baselines.items():
            _timed(result, side, fn)

    benchmark.pedantic(lambda: _timed(result, "flowpump", flowpump), setup=setup, rounds=rounds, iterations=1)
    benchmark.extra_info["events"] = events
    for side in result.wall:
        benchmark.extra_info[f"{side}_events_per_s"] = round(result.rate(side))
    for side in baselines:
        benchmark.extra_info[f"ratio_vs_{side}"] = round(result.ratio(side), 3)
        benchmark.extra_info[f"cpu_ratio_vs_{side}"] = round(result.ratio(side, "cpu"), 3)
    RESULTS.append(result)
    print()
    for side in result.wall:
        line = f"{name}: {side:<30} {result.rate(side) / 1e6:6.2f} M events/s (median of {len(result.wall[side])})"
        if side != "flowpump":
            line += f"   flowpump/{side} = {result.ratio(side):.3f} (CPU time: {result.ratio(side, 'cpu'):.3f})"
        print(line)
    return result


def record(name: str, events: int, notes: dict[str, str]) -> None:
    """A result that is not a throughput comparison (latency, memory)."""
    RESULTS.append(Result(name, events, notes=notes))


def machine() -> str:
    import msgspec

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs; {platform.python_implementation()} {platform.python_version()}, "
        f"msgspec {msgspec.__version__}, {platform.system()} {platform.release()}"
    )


def summary_lines() -> Iterator[str]:
    yield f"flowpump benchmarks on {machine()}"
    for r in RESULTS:
        if not r.wall:
            yield f"  {r.name} ({r.events:,} events): " + ", ".join(f"{k} {v}" for k, v in r.notes.items())
            continue
        yield f"  {r.name} ({r.events:,} events, median of {len(r.wall['flowpump'])} rounds):"
        for side in r.wall:
            ratio = (
                "" if side == "flowpump" else f"  flowpump is {r.ratio(side):.2f}x (CPU {r.ratio(side, 'cpu'):.2f}x)"
            )
            yield f"    {side:<30} {r.rate(side) / 1e6:6.2f} M events/s{ratio}"
