"""In memory: from_iterable >> map >> filter >> collect against a list comprehension.

Two workloads. The target workload uses the anchor's user functions on Structs (``score`` builds
a new Struct). The second is a stress case: functions so cheap (``x * 3``, ``x % 2 == 0``, ~40 ns
an event together) that the fixed costs of batching show — a source slice and a sink copy per
event that a list comprehension does not have; it is reported, not held to the target.
Each is compared with two forms of the comprehension; the ratio that counts is the worse one.
"""

from __future__ import annotations

from _harness import Scale, compare
from _workload import clicks, keep, list_comprehension, list_comprehension_over_map, score

import flowpump as fp


def triple(x: int) -> int:
    return x * 3


def even(x: int) -> bool:
    return x % 2 == 0


def _flowpump(xs, f, g):  # type: ignore[no-untyped-def]
    out = fp.collect()
    pipeline = fp.from_iterable(xs) >> fp.map(f) >> fp.filter(g) >> out

    def run() -> list:  # type: ignore[type-arg]
        pipeline.run()
        return out.items

    return run


def _baselines(xs, f, g):  # type: ignore[no-untyped-def]
    return {
        "list comprehension": lambda: list_comprehension(xs, f, g),
        "list comprehension over map()": lambda: list_comprehension_over_map(xs, f, g),
    }


def _worst_ratio(result) -> float:  # type: ignore[no-untyped-def]
    return min(result.ratio("list comprehension"), result.ratio("list comprehension over map()"))


def test_in_memory_structs(benchmark, scale: Scale) -> None:
    xs = clicks(scale.memory_events)
    run = _flowpump(xs, score, keep)
    assert run() == list_comprehension(xs, score, keep)
    result = compare(
        benchmark,
        "in memory, Structs: from_iterable >> map >> filter >> collect",
        len(xs),
        run,
        _baselines(xs, score, keep),
        scale.memory_rounds,
    )
    if scale.check_targets:
        assert _worst_ratio(result) >= 0.9, f"target: >= 0.9x the list comprehension, got {_worst_ratio(result):.2f}"


def test_in_memory_ints(benchmark, scale: Scale) -> None:
    xs = list(range(scale.memory_events))
    run = _flowpump(xs, triple, even)
    assert run() == list_comprehension(xs, triple, even)
    result = compare(
        benchmark,
        "in memory, ints: from_iterable >> map >> filter >> collect",
        len(xs),
        run,
        _baselines(xs, triple, even),
        scale.memory_rounds,
    )
    print(f"in memory, ints: flowpump is {_worst_ratio(result):.2f}x the faster list comprehension (not a target)")
