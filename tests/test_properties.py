"""Hypothesis properties: the runtime computes what the equivalent plain Python computes."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowpump as fp

# One operator: ("map", a, b) is x -> a*x + b; ("filter", m, r) keeps x % m == r;
# ("flat_map", k, _) gives k copies of x (zero drops it); ("tap", _, _) passes x on.
Op = tuple[str, int, int]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("map"), st.integers(-3, 3), st.integers(-5, 5)),
        st.tuples(st.just("filter"), st.integers(1, 4), st.integers(0, 3)),
        st.tuples(st.just("flat_map"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("tap"), st.just(0), st.just(0)),
    ),
    max_size=6,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_processor(op: Op) -> fp.Processor[int, int]:
    kind, a, b = op
    if kind == "map":
        return fp.map(lambda x: a * x + b)
    if kind == "filter":
        return fp.filter(lambda x: x % a == b)
    if kind == "flat_map":
        return fp.flat_map(lambda x: [x] * a)
    return fp.tap(lambda x: None)


def as_comprehension(op: Op, xs: list[int]) -> list[int]:
    kind, a, b = op
    if kind == "map":
        return [a * x + b for x in xs]
    if kind == "filter":
        return [x for x in xs if x % a == b]
    if kind == "flat_map":
        return [y for x in xs for y in [x] * a]
    return list(xs)


def expected(chain: list[Op], xs: list[int]) -> list[int]:
    for op in chain:
        xs = as_comprehension(op, xs)
    return xs


def run(flow: fp.Flow[Any], fuse: bool) -> tuple[list[Any], list[fp.DeadLetter], fp.RunReport]:
    out: fp.Collect[Any] = fp.collect()
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    report = (flow >> out).on_error(dead).run(fuse=fuse)
    return out.items, dead.items, report


@SETTINGS
@given(xs=st.lists(st.integers(-1000, 1000), max_size=300), chain=ops)
def test_any_composition_equals_the_list_comprehension(xs: list[int], chain: list[Op]) -> None:
    flow: fp.Flow[int] = fp.from_iterable(xs)
    for op in chain:
        flow = flow >> as_processor(op)
    want = expected(chain, xs)
    for fuse in (True, False):
        items, dead, report = run(flow, fuse)
        assert items == want, f"fuse={fuse}"
        assert dead == []
        assert report.events_in == len(xs)
        assert report.events_out == len(want)


@SETTINGS
@given(xs=st.lists(st.integers(-50, 50), max_size=200), chain=ops.filter(bool), split=st.integers(0, 6))
def test_a_fragment_composes_like_the_flat_chain(xs: list[int], chain: list[Op], split: int) -> None:
    """``flow >> (p1 >> p2)`` is ``flow >> p1 >> p2``, whichever way the fragment is cut."""
    head, tail = chain[:split], chain[split:]
    parts = [_compose(as_processor(op) for op in part) for part in (head, tail) if part]
    fragment = _compose(parts)
    items, _, _ = run(fp.from_iterable(xs).pipe(fragment), fuse=True)
    assert items == expected(chain, xs)


def _compose(processors: Iterable[fp.Processor[int, int]]) -> fp.Processor[int, int]:
    it = iter(processors)
    result = next(it)
    for p in it:
        result = result >> p
    return result


async_ops = st.lists(
    st.one_of(
        st.tuples(st.just("map"), st.integers(-3, 3), st.integers(-5, 5)),
        st.tuples(st.just("filter"), st.integers(1, 4), st.integers(0, 3)),
        st.tuples(st.just("flat_map"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("map_async"), st.integers(1, 5), st.integers(-5, 5)),
        st.tuples(st.just("batch"), st.integers(1, 9), st.just(0)),
    ),
    max_size=6,
)


def as_async_processor(op: Op) -> fp.Processor[int, int]:
    kind, a, b = op
    if kind == "map_async":

        async def shift(x: int) -> int:
            await asyncio.sleep(0)
            return x + b

        return fp.map_async(shift, concurrency=a)
    if kind == "batch":
        return fp.batch(a) >> fp.unbatch()
    return as_processor(op)


def as_async_comprehension(op: Op, xs: list[int]) -> list[int]:
    kind, _, b = op
    if kind == "map_async":
        return [x + b for x in xs]
    if kind == "batch":
        return list(xs)
    return as_comprehension(op, xs)


@SETTINGS
@given(xs=st.lists(st.integers(-1000, 1000), max_size=300), chain=async_ops)
def test_async_boundaries_do_not_change_results(xs: list[int], chain: list[Op]) -> None:
    """map_async (ordered) and batch >> unbatch add tasks and channels, never change the output."""
    flow: fp.Flow[int] = fp.from_iterable(xs)
    want = list(xs)
    for op in chain:
        flow = flow >> as_async_processor(op)
        want = as_async_comprehension(op, want)
    for fuse in (True, False):
        items, dead, report = run(flow, fuse)
        assert items == want, f"fuse={fuse}"
        assert dead == []
        assert report.events_in == len(xs)


class Rec(msgspec.Struct):
    n: int
    tag: str


BAD_LINES = ["{", "not json", '{"n": "one", "tag": "x"}', '{"tag": "x"}', "[1, 2]", '{"n": 1, "tag": 5}', "nul"]


@SETTINGS
@given(
    n_good=st.integers(0, 60),
    bad=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(BAD_LINES)), max_size=20),
    blank_every=st.sampled_from([0, 3, 7]),
    final_newline=st.booleans(),
)
def test_bad_json_lines_are_dead_lettered_at_their_line(
    n_good: int, bad: list[tuple[int, str]], blank_every: int, final_newline: bool
) -> None:
    good = [msgspec.json.encode(Rec(i, f"t{i}")).decode() for i in range(n_good)]
    lines: list[str] = list(good)
    for where, text in bad:
        lines.insert(where % (len(lines) + 1), text)
    if blank_every:
        spaced: list[str] = []
        for i, line in enumerate(lines):
            spaced.extend([line, ""] if i % blank_every == 0 else [line])
        lines = spaced
    bad_at = {i + 1: line for i, line in enumerate(lines) if line in BAD_LINES}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.jsonl"
        path.write_text("\n".join(lines) + ("\n" if final_newline else ""))
        for fuse in (True, False):
            items, dead, report = run(fp.read_jsonl(path, Rec), fuse)
            assert items == [Rec(i, f"t{i}") for i in range(n_good)]
            assert {d.position: d.raw for d in dead} == {f"mixed.jsonl:{n}": t.encode() for n, t in bad_at.items()}
            assert len(dead) == len(bad)
            assert all(d.stage == "read_jsonl(mixed.jsonl)" for d in dead)
            assert report.events_in == report.events_out + report.dead_lettered == n_good + len(bad)


@SETTINGS
@given(xs=st.lists(st.integers(-20, 20), max_size=100), divisor_shift=st.integers(-3, 3))
def test_failures_are_dead_lettered_exactly_and_the_rest_pass(xs: list[int], divisor_shift: int) -> None:
    def invert(x: int) -> float:
        return 100 / (x + divisor_shift)

    want = [100 / (x + divisor_shift) for x in xs if x + divisor_shift != 0]
    for fuse in (True, False):
        items, dead, report = run(fp.from_iterable(xs) >> fp.map(invert) >> fp.filter(lambda v: v > 0), fuse)
        assert items == [v for v in want if v > 0]
        assert [d.event for d in dead] == [x for x in xs if x + divisor_shift == 0]
        assert report.events_in == report.events_out + report.filtered + report.dead_lettered
