"""Composition, sinks, running and variance. Type-checked, never run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import assert_type

import msgspec

import flowpump as fp


class Click(msgspec.Struct):
    user: str
    kind: str
    value: float


def parse(line: str) -> Click:
    return msgspec.json.decode(line, type=Click)


def value_of(c: Click) -> float:
    return c.value


def save(x: float) -> None:
    pass


async def save_async(c: Click) -> None:
    pass


lines = fp.read_lines("clicks.txt")
assert_type(lines, fp.Source[str])
clicks = fp.read_jsonl("clicks.jsonl", Click)
assert_type(fp.read_csv("clicks.csv", Click), fp.Source[Click])
assert_type(fp.from_iterable([1, 2, 3]), fp.Source[int])
assert_type(fp.from_iterable(lambda: iter([1, 2])), fp.Source[int])
assert_type(fp.from_iterable(lambda: ["a"]), fp.Source[str])


async def _floats() -> AsyncIterator[float]:
    yield 1.0


assert_type(fp.from_iterable(_floats()), fp.Source[float])
assert_type(fp.from_iterable(_floats), fp.Source[float])
assert_type(fp.stdin(), fp.Source[str])

# Processor >> Processor -> Processor; Processor >> Sink -> Sink; Flow >> Sink -> Pipeline.
fragment = fp.map(parse) >> fp.map(value_of)
assert_type(fragment, fp.Processor[str, float])
assert_type(lines >> fragment, fp.Flow[float])
assert_type(fragment >> fp.sink(save), fp.Sink[str])
assert_type(lines >> (fragment >> fp.sink(save)), fp.Pipeline)
assert_type(lines >> fp.write_lines("copy.txt"), fp.Pipeline)
assert_type(clicks >> fp.write_jsonl("out.jsonl"), fp.Pipeline)
assert_type(clicks >> fp.stdout(), fp.Pipeline)

# Sinks.
assert_type(fp.write_lines("out.txt"), fp.Sink[str])
assert_type(fp.write_jsonl("out.jsonl"), fp.Sink[object])
assert_type(fp.sink(save), fp.Sink[float])
assert_type(fp.sink(save_async), fp.Sink[Click])
assert_type(clicks >> fp.sink(save_async), fp.Pipeline)
out = fp.collect[int]()
assert_type(out, fp.Collect[int])
assert_type(out.items, list[int])
assert_type(fp.from_iterable([1, 2]) >> out, fp.Pipeline)

# Fan-in and fan-out.
assert_type(fp.merge(clicks, lines >> fp.map(parse)), fp.Flow[Click])
assert_type(fp.tee(fp.write_lines("a.txt"), fp.write_lines("b.txt")), fp.Sink[str])
assert_type(lines >> fp.tee(fp.write_lines("a.txt"), fp.map(parse) >> fp.sink(save_async)), fp.Pipeline)

# Running.
pipeline = clicks >> fp.map(value_of) >> fp.sink(save)
assert_type(pipeline.run(), fp.RunReport)
assert_type(pipeline.run(fuse=False), fp.RunReport)
assert_type(pipeline.explain(), str)
assert_type(pipeline.start(), fp.RunHandle)
assert_type(pipeline.on_error(fp.collect[fp.DeadLetter]()), fp.Pipeline)
assert_type(clicks.take(5), list[Click])
assert_type(pipeline.run().events_in, int)


async def run_in_loop() -> None:
    assert_type(await pipeline.arun(), fp.RunReport)
    assert_type(await clicks.atake(5), list[Click])


# Variance: a Flow is covariant in what it yields, a Sink contravariant in what it accepts.
bools: fp.Flow[bool] = fp.from_iterable([True, False])
ints: fp.Flow[int] = bools
assert_type(ints, fp.Flow[int])
anything: fp.Sink[object] = fp.write_jsonl("all.jsonl")
assert_type(clicks >> anything, fp.Pipeline)
click_sink: fp.Sink[Click] = anything
floats_in: fp.Processor[float, str] = fp.map(str)
ints_in: fp.Processor[int, object] = floats_in
