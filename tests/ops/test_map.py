"""fp.map: one event in, one event out; exceptions become dead letters."""

from __future__ import annotations

import re

import pytest

import flowpump as fp


def test_map_applies_f_to_every_event_in_order(drain, fuse):
    got = drain(fp.from_iterable(range(1000)) >> fp.map(lambda x: x * 3), fuse=fuse)
    assert got.items == [x * 3 for x in range(1000)]
    assert got.dead == []


def test_map_results_identical_fused_and_unfused(drain):
    flow = fp.from_iterable(range(500)) >> fp.map(lambda x: x + 1) >> fp.map(str) >> fp.map(len)
    fused, unfused = drain(flow, fuse=True), drain(flow, fuse=False)
    assert fused.items == unfused.items == [len(str(x + 1)) for x in range(500)]


def test_map_label_is_the_function_name_or_lambda_location():
    def parse(x: int) -> int:
        return x

    assert fp.map(parse).label == "map(parse)"
    assert re.fullmatch(r"map\(<lambda> at test_map\.py:\d+\)", fp.map(lambda x: x).label)


def test_map_exception_becomes_a_dead_letter_and_the_others_pass(drain, fuse, stage_of):
    def inverse(x: int) -> float:
        return 1 / x

    got = drain(fp.from_iterable([2, 0, 4]) >> fp.map(inverse), fuse=fuse)
    assert got.items == [0.5, 0.25]
    [dead] = got.dead
    assert (dead.stage, dead.error, dead.event) == ("map(inverse)", "ZeroDivisionError: division by zero", 0)
    st = stage_of(got.report, "map(inverse)")
    assert (st.events_in, st.events_out, st.dead_lettered) == (3, 2, 1)


def test_map_position_of_a_failing_event_fused():
    def check(x: int) -> int:
        if x == 7:
            raise ValueError("seven")
        return x

    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    (fp.from_iterable(range(10, 0, -1)) >> fp.map(check) >> fp.collect()).on_error(dead).run()
    assert [d.position for d in dead.items] == ["from_iterable(range)[3]"]


def test_map_rejects_an_async_function_with_a_hint():
    async def fetch(x: int) -> int:
        return x

    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("use fp.map_async(fetch)")):
        fp.map(fetch)


def test_map_rejects_a_non_callable():
    with pytest.raises(fp.PipelineDefinitionError, match="expects a callable"):
        fp.map(3)  # type: ignore[arg-type]


def test_map_rejects_an_object_with_an_async_call_method():
    class Fetch:
        async def __call__(self, x: int) -> int:
            return x

    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("use fp.map_async(Fetch)")):
        fp.map(Fetch())
