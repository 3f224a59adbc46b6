"""fp.flat_map: zero or more events per event; a generator that raises emits none of its items."""

from __future__ import annotations

from collections.abc import Iterator

import flowpump as fp


def test_flat_map_splits_and_drops(drain, fuse, stage_of):
    got = drain(fp.from_iterable(["a b", "", "c d e"]) >> fp.flat_map(str.split), fuse=fuse)
    assert got.items == ["a", "b", "c", "d", "e"]
    st = stage_of(got.report, "flat_map(split)")
    assert (st.events_in, st.events_out, st.dead_lettered) == (3, 5, 0)


def test_flat_map_with_a_generator_function(drain, fuse):
    def repeat(n: int) -> Iterator[int]:
        for _ in range(n):
            yield n

    got = drain(fp.from_iterable([0, 1, 2, 3]) >> fp.flat_map(repeat), fuse=fuse)
    assert got.items == [1, 2, 2, 3, 3, 3]


def explode(n: int) -> Iterator[int]:
    for i in range(n):
        if n == 4 and i == 2:
            raise ValueError("midway")
        yield n * 10 + i


def test_generator_raising_midway_emits_none_of_its_items(drain, fuse, stage_of):
    # The dead letter means "none of this event's output was emitted": replaying it duplicates nothing.
    got = drain(fp.from_iterable([1, 4, 3]) >> fp.flat_map(explode), fuse=fuse)
    assert got.items == [10, 30, 31, 32]
    assert [(d.stage, d.error, d.event) for d in got.dead] == [("flat_map(explode)", "ValueError: midway", 4)]
    st = stage_of(got.report, "flat_map(explode)")
    assert (st.events_in, st.events_out, st.dead_lettered) == (3, 4, 1)


def test_generator_raising_midway_before_more_steps_emits_none_of_its_items(drain, fuse, stage_of):
    seen: list[int] = []
    flow = fp.from_iterable([1, 4, 3]) >> fp.flat_map(explode) >> fp.tap(seen.append) >> fp.flat_map(lambda x: [x, -x])
    got = drain(flow, fuse=fuse)
    assert seen == [10, 30, 31, 32]
    assert got.items == [10, -10, 30, -30, 31, -31, 32, -32]
    [dead] = got.dead
    assert (dead.stage, dead.event, dead.position) == ("flat_map(explode)", 4, "from_iterable(list)[1]")
    st = stage_of(got.report, "flat_map(explode)")
    assert (st.events_in, st.events_out, st.dead_lettered) == (3, 4, 1)


def test_a_failing_step_after_flat_map_does_not_take_siblings_down(drain, fuse, stage_of):
    def check(x: int) -> int:
        if x == 5:
            raise ValueError("five")
        return x

    got = drain(fp.from_iterable([[4, 5, 6], [5], [7]]) >> fp.flat_map(lambda xs: xs) >> fp.map(check), fuse=fuse)
    assert got.items == [4, 6, 7]
    assert [(d.stage, d.event) for d in got.dead] == [("map(check)", 5), ("map(check)", 5)]
    st = stage_of(got.report, "map(check)")
    assert (st.events_in, st.events_out, st.dead_lettered) == (5, 3, 2)


def test_flat_map_returning_a_non_iterable_is_dead_lettered(drain, fuse):
    got = drain(fp.from_iterable([[1], 2, [3]]) >> fp.flat_map(lambda x: x), fuse=fuse)
    assert got.items == [1, 3]
    [dead] = got.dead
    assert dead.event == 2
    assert dead.error.startswith("TypeError:")
