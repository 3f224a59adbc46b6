"""Composition: every spelling of the contract builds the same runnable graph; nodes are frozen."""

from __future__ import annotations

import dataclasses
import re

import pytest

import flowpump as fp


def double(x: int) -> int:
    return x * 2


def odd(x: int) -> bool:
    return x % 2 == 1


def test_flow_rshift_processor_is_a_flow():
    flow = fp.from_iterable(range(5)) >> fp.map(double)
    assert isinstance(flow, fp.Flow)
    assert flow.take(10) == [0, 2, 4, 6, 8]


def test_processor_rshift_processor_is_a_reusable_fragment():
    fragment = fp.map(double) >> fp.filter(lambda x: x > 2) >> fp.map(str)
    assert isinstance(fragment, fp.Processor)
    assert fragment.label.startswith("map(double) >> filter(")
    assert (fp.from_iterable(range(4)) >> fragment).take(10) == ["4", "6"]


def test_processor_rshift_sink_is_a_sink():
    out: fp.Collect[str] = fp.collect()
    sink = fp.map(double) >> fp.map(str) >> out
    assert isinstance(sink, fp.Sink)
    pipeline = fp.from_iterable([1, 2]) >> sink
    assert isinstance(pipeline, fp.Pipeline)
    pipeline.run()
    assert out.items == ["2", "4"]


def test_flow_rshift_sink_is_a_pipeline(fuse):
    out: fp.Collect[int] = fp.collect()
    pipeline = fp.from_iterable([3, 1, 2]) >> out
    assert isinstance(pipeline, fp.Pipeline)
    report = pipeline.run(fuse=fuse)
    assert out.items == [3, 1, 2]
    assert (report.events_in, report.events_out) == (3, 3)


def test_method_chaining_builds_the_same_graph_as_rshift(fuse):
    def words(s: str) -> list[str]:
        return s.split()

    src = fp.from_iterable(["a bb", "ccc", "dd e"])
    chained = src.map(str.upper).filter(lambda s: "E" not in s).flat_map(words).pipe(fp.map(len))
    spelled = src >> fp.map(str.upper) >> fp.filter(lambda s: "E" not in s) >> fp.flat_map(words) >> fp.map(len)
    assert [s.kind for s in chained.steps] == [s.kind for s in spelled.steps]
    assert [s.label.split(" at ")[0] for s in chained.steps] == [s.label.split(" at ")[0] for s in spelled.steps]
    a, b = fp.collect(), fp.collect()
    chained.to(a).run(fuse=fuse)
    (spelled >> b).run(fuse=fuse)
    assert a.items == b.items == [1, 2, 3]


def test_to_and_tap_and_map_async_methods(fuse):
    seen: list[int] = []

    async def inc(x: int) -> int:
        return x + 1

    out: fp.Collect[int] = fp.collect()
    fp.from_iterable([1, 2]).tap(seen.append).map_async(inc, concurrency=2).to(out).run(fuse=fuse)
    assert (seen, out.items) == ([1, 2], [2, 3])


def test_merge_fans_in_every_event(fuse):
    a = fp.from_iterable(range(1000))
    b = fp.from_iterable(range(1000, 1500)).map(lambda x: x)
    c = fp.from_iterable(range(1500, 1600))
    out: fp.Collect[int] = fp.collect()
    report = (fp.merge(a, b, c) >> fp.filter(lambda x: x >= 0) >> out).run(fuse=fuse)
    assert sorted(out.items) == list(range(1600))
    assert (report.events_in, report.events_out) == (1600, 1600)
    # Each source's own order survives the interleaving.
    assert [x for x in out.items if x < 1000] == list(range(1000))


def test_nested_merge(fuse):
    inner = fp.merge(fp.from_iterable([1]), fp.from_iterable([2]))
    out: fp.Collect[int] = fp.collect()
    (fp.merge(inner, fp.from_iterable([3])) >> out).run(fuse=fuse)
    assert sorted(out.items) == [1, 2, 3]


def test_merge_of_one_flow_is_that_flow():
    flow = fp.from_iterable([1])
    assert fp.merge(flow) is flow


def test_merge_and_tee_need_arguments_of_the_right_kind():
    with pytest.raises(fp.PipelineDefinitionError, match="at least one flow"):
        fp.merge()
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("wrap iterables in fp.from_iterable(...)")):
        fp.merge([1, 2])  # type: ignore[arg-type]
    with pytest.raises(fp.PipelineDefinitionError, match="at least one sink"):
        fp.tee()
    with pytest.raises(fp.PipelineDefinitionError, match="expects a sink"):
        fp.tee(print)  # type: ignore[arg-type]


def test_tee_fans_out_with_own_operators_per_branch(fuse):
    plain: fp.Collect[int] = fp.collect()
    evens: fp.Collect[str] = fp.collect()
    words: fp.Collect[str] = fp.collect()
    sink = fp.tee(
        plain,
        fp.filter(lambda x: x % 2 == 0) >> fp.map(str) >> evens,
        fp.flat_map(lambda x: ["w"] * x) >> words,
    )
    report = (fp.from_iterable(range(5)) >> sink).run(fuse=fuse)
    assert plain.items == [0, 1, 2, 3, 4]
    assert evens.items == ["0", "2", "4"]
    assert words.items == ["w"] * 10
    # Each sink of a tee counts its own writes.
    assert report.events_out == 5 + 3 + 10


def test_a_fragment_reused_in_two_pipelines(fuse):
    clean = fp.map(str.strip) >> fp.filter(bool) >> fp.map(str.lower)
    a: fp.Collect[str] = fp.collect()
    b: fp.Collect[str] = fp.collect()
    p1 = fp.from_iterable([" A ", "", "B"]) >> clean >> a
    p2 = fp.from_iterable(["X ", " "]) >> clean >> b
    p1.run(fuse=fuse)
    p2.run(fuse=fuse)
    p1.run(fuse=fuse)  # a rerun gives the same result and leaves the other pipeline alone
    assert a.items == ["a", "b"]
    assert b.items == ["x"]
    assert len(clean.steps) == 3


def test_composition_does_not_change_its_operands():
    src = fp.from_iterable([1, 2])
    proc = fp.map(double)
    flow = src >> proc
    flow >> fp.filter(odd)
    assert src.steps == ()
    assert len(proc.steps) == 1
    assert len(flow.steps) == 1


@pytest.mark.parametrize(
    "node",
    [
        fp.from_iterable([1]),
        fp.from_iterable([1]) >> fp.map(double),
        fp.map(double),
        fp.collect(),
        fp.from_iterable([1]) >> fp.collect(),
    ],
    ids=["source", "flow", "processor", "sink", "pipeline"],
)
def test_nodes_are_frozen_dataclasses(node):
    assert dataclasses.is_dataclass(node)
    field = dataclasses.fields(node)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(node, field, None)


def test_steps_are_frozen():
    [step] = fp.map(double).steps
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.fn = odd  # type: ignore[misc]


def test_on_error_returns_a_new_pipeline():
    pipeline = fp.from_iterable([1]) >> fp.collect()
    with_errors = pipeline.on_error(fp.collect())
    assert pipeline.errors is None
    assert with_errors.errors is not None
    with pytest.raises(fp.PipelineDefinitionError, match="expects a sink"):
        pipeline.on_error(print)  # type: ignore[arg-type]


def test_rshift_with_something_else_is_a_type_error():
    with pytest.raises(TypeError):
        fp.from_iterable([1]) >> print  # type: ignore[operator]
    with pytest.raises(TypeError):
        fp.map(double) >> 3  # type: ignore[operator]


def test_building_a_graph_starts_no_io(tmp_path):
    missing, target = tmp_path / "nope.jsonl", tmp_path / "out.jsonl"
    pipeline = fp.read_jsonl(missing, dict) >> fp.map(len) >> fp.write_jsonl(target)
    assert pipeline.flow.origin.label == "read_jsonl(nope.jsonl)"  # type: ignore[union-attr]
    assert not target.exists()
    assert "map(len)" in pipeline.explain()
    assert not target.exists()


def test_build_time_type_mismatch_names_both_stages():
    def parse(n: int) -> str:
        return str(n)

    def length(b: bytes) -> int:
        return len(b)

    with pytest.raises(fp.PipelineTypeError) as info:
        fp.map(parse) >> fp.map(length)  # type: ignore[arg-type]
    assert (info.value.upstream, info.value.downstream) == ("map(parse)", "map(length)")
    assert "`bytes`" in str(info.value)
    assert "`str`" in str(info.value)


def test_a_sink_used_twice_in_one_pipeline_is_rejected():
    out: fp.Collect[int] = fp.collect()
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("the sink 'collect()' is used twice")):
        fp.tee(out, fp.map(double) >> out)
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("fp.tee(): the sink 'collect()'")):
        fp.tee(fp.collect(), fp.tee(out, fp.filter(odd) >> out))
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("Pipeline.on_error(): the sink 'collect()'")):
        (fp.from_iterable([1]) >> fp.tee(fp.collect(), out)).on_error(out)


def test_one_sink_in_two_pipelines_is_fine():
    out: fp.Collect[int] = fp.collect()
    (fp.from_iterable([1]) >> out).run()
    (fp.from_iterable([2]) >> fp.map(double) >> out).run()
    assert out.items == [4]
