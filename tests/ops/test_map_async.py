"""fp.map_async: awaits a coroutine per event with bounded concurrency, ordered or not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import flowpump as fp


class Probe:
    """An async function that records how many calls run at once."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.calls = 0

    async def __call__(self, x: int) -> int:
        self.calls += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        # Different events take a different number of loop turns, so completions interleave.
        for _ in range(1 + x % 5):
            await asyncio.sleep(0)
        self.active -= 1
        return x * 2


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
@pytest.mark.parametrize("limit", [1, 3, 16])
def test_concurrency_never_exceeds_the_limit_and_reaches_it(drain, fuse, ordered, limit):
    probe = Probe()
    got = drain(fp.from_iterable(range(400)) >> fp.map_async(probe, concurrency=limit, ordered=ordered), fuse=fuse)
    assert probe.calls == 400
    assert probe.peak == limit
    expected = [x * 2 for x in range(400)]
    assert got.items == expected if ordered else sorted(got.items) == expected


def _reverse_finisher(n: int) -> Callable[[int], Awaitable[int]]:
    async def finish_late_first(x: int) -> int:
        for _ in range(n - x):  # event 0 takes the most loop turns
            await asyncio.sleep(0)
        return x

    return finish_late_first


def test_ordered_keeps_input_order_even_when_completions_are_reversed(drain, fuse, recording_source):
    src = recording_source([list(range(8))], set)
    got = drain(fp.Source(src) >> fp.map_async(_reverse_finisher(8), concurrency=8, ordered=True), fuse=fuse)
    assert got.items == list(range(8))


def test_unordered_emits_in_completion_order(drain, fuse, recording_source):
    src = recording_source([list(range(8))], set)
    got = drain(fp.Source(src) >> fp.map_async(_reverse_finisher(8), concurrency=8, ordered=False), fuse=fuse)
    assert got.items == list(range(7, -1, -1))


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_failures_become_dead_letters_and_the_rest_pass(drain, fuse, ordered, stage_of):
    async def lookup(x: int) -> str:
        await asyncio.sleep(0)
        if x % 10 == 3:
            raise KeyError(x)
        return f"v{x}"

    got = drain(fp.from_iterable(range(50)) >> fp.map_async(lookup, concurrency=4, ordered=ordered), fuse=fuse)
    good = [f"v{x}" for x in range(50) if x % 10 != 3]
    assert got.items == good if ordered else sorted(got.items) == sorted(good)
    assert sorted(d.event for d in got.dead) == [3, 13, 23, 33, 43]
    assert all(d.error == f"KeyError: {d.event}" and d.stage == "map_async(lookup)" for d in got.dead)
    st = stage_of(got.report, "map_async(lookup)")
    assert (st.events_in, st.events_out, st.dead_lettered) == (50, 45, 5)


def test_map_async_after_sync_steps(drain, fuse):
    async def neg(x: int) -> int:
        await asyncio.sleep(0)
        return -x

    flow = fp.from_iterable(range(20)).filter(lambda x: x % 2 == 0).map_async(neg, concurrency=2).map(abs)
    assert drain(flow, fuse=fuse).items == list(range(0, 20, 2))


@pytest.mark.parametrize("bad", [0, -1, 1.5, None])
def test_concurrency_must_be_a_positive_int(bad):
    async def f(x: int) -> int:
        return x

    with pytest.raises(fp.PipelineDefinitionError, match=r"concurrency must be an int >= 1"):
        fp.map_async(f, concurrency=bad)  # type: ignore[arg-type]
