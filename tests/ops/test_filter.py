"""fp.filter: keeps events, counts the rest as filtered; a TypeGuard predicate narrows the type."""

from __future__ import annotations

import re
from typing import TypeGuard

import pytest
from typing_extensions import TypeIs

import flowpump as fp


def is_str(x: object) -> TypeGuard[str]:
    return isinstance(x, str)


def is_int(x: object) -> TypeIs[int]:
    return isinstance(x, int)


def test_filter_keeps_matching_events_and_counts_the_others(drain, fuse, stage_of):
    def third(x: int) -> bool:
        return x % 3 == 0

    got = drain(fp.from_iterable(range(100)) >> fp.filter(third), fuse=fuse)
    assert got.items == [x for x in range(100) if x % 3 == 0]
    st = stage_of(got.report, "filter(third)")
    assert (st.events_in, st.events_out, st.filtered, st.dead_lettered) == (100, 34, 66, 0)
    assert got.report.filtered == 66


def test_filter_uses_truthiness_of_any_return_value(drain, fuse):
    got = drain(fp.from_iterable(["", "a", "", "bc"]) >> fp.filter(len), fuse=fuse)
    assert got.items == ["a", "bc"]


def test_typeguard_filter_narrows_at_runtime(drain, fuse):
    flow = fp.from_iterable([1, "a", 2.5, "b", None]) >> fp.filter(is_str)
    assert flow.out_type is str
    got = drain(flow >> fp.map(str.upper), fuse=fuse)
    assert got.items == ["A", "B"]
    assert got.report.filtered == 3


def test_typeis_filter_narrows_too():
    flow = fp.from_iterable([1, "a"]).filter(is_int)
    assert flow.out_type is int
    assert flow.take(5) == [1]


def test_narrowed_type_is_checked_against_the_next_stage():
    def shout(s: str) -> str:
        return s.upper()

    def width(b: bytes) -> int:
        return len(b)

    narrowed = fp.from_iterable([1, "a"]) >> fp.filter(is_str)
    assert (narrowed >> fp.map(shout)).take(5) == ["A"]
    with pytest.raises(fp.PipelineTypeError) as info:
        narrowed >> fp.map(width)  # type: ignore[arg-type]
    assert info.value.downstream == "map(width)"
    assert info.value.produced is str
    assert info.value.expected is bytes
    assert "filter(is_str)" in str(info.value)


def test_filter_predicate_that_raises_dead_letters_the_event(drain, fuse, stage_of):
    def positive(x: int) -> bool:
        if x == 0:
            raise ValueError("zero has no sign")
        return x > 0

    got = drain(fp.from_iterable([-1, 0, 1]) >> fp.filter(positive), fuse=fuse)
    assert got.items == [1]
    assert [(d.stage, d.error, d.event) for d in got.dead] == [("filter(positive)", "ValueError: zero has no sign", 0)]
    st = stage_of(got.report, "filter(positive)")
    assert (st.events_in, st.events_out, st.filtered, st.dead_lettered) == (3, 1, 1, 1)


def test_filter_label():
    assert fp.filter(is_str).label == "filter(is_str)"
    assert re.fullmatch(r"filter\(<lambda> at test_filter\.py:\d+\)", fp.filter(lambda x: x).label)
