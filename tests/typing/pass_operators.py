"""Operators: what mypy infers for each factory, lambdas included. Type-checked, never run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeGuard, assert_type

import msgspec

import flowpump as fp


class Click(msgspec.Struct):
    user: str
    kind: str
    value: float


class Scored(msgspec.Struct):
    user: str
    score: float


def is_str(x: object) -> TypeGuard[str]:
    return isinstance(x, str)


def words(s: str) -> Iterator[str]:
    yield from s.split()


async def enrich(c: Click) -> Scored:
    return Scored(c.user, c.value)


src = fp.read_jsonl("clicks.jsonl", Click)
assert_type(src, fp.Source[Click])

# Lambdas inside `>>` are inferred from the flow on the left (mypy >= 1.18).
assert_type(src >> fp.map(lambda c: c.value), fp.Flow[float])
assert_type(src >> fp.map(lambda c: Scored(c.user, c.value * 1.5)), fp.Flow[Scored])
assert_type(src >> fp.map(lambda c: Scored(c.user, c.value)) >> fp.filter(lambda s: s.score > 50), fp.Flow[Scored])

# filter: a plain predicate keeps the type, a TypeGuard narrows it.
assert_type(src >> fp.filter(lambda c: c.kind == "buy"), fp.Flow[Click])
anything: fp.Flow[object] = fp.from_iterable([1, "a", None])
assert_type(anything >> fp.filter(is_str), fp.Flow[str])
assert_type(anything.filter(is_str), fp.Flow[str])
assert_type(fp.filter(is_str), fp.Processor[object, str])

# flat_map: one event to an iterable of events.
assert_type(src >> fp.flat_map(lambda c: [c.user, c.kind]), fp.Flow[str])
assert_type(src >> fp.map(lambda c: c.user) >> fp.flat_map(words), fp.Flow[str])

# map_async: the awaited result of an async def.
assert_type(src >> fp.map_async(enrich), fp.Flow[Scored])
assert_type(src >> fp.map_async(enrich, concurrency=4, ordered=False), fp.Flow[Scored])
assert_type(fp.map_async(enrich), fp.Processor[Click, Scored])

# batch / unbatch.
assert_type(src >> fp.batch(100), fp.Flow[list[Click]])
assert_type(src >> fp.batch(100, timeout=0.5) >> fp.map(len), fp.Flow[int])
assert_type(src >> fp.batch(100) >> fp.unbatch(), fp.Flow[Click])

# tap passes events through unchanged.
assert_type(src >> fp.tap(print), fp.Flow[Click])
assert_type(src >> fp.tap(lambda c: c.user.upper()), fp.Flow[Click])

# Method chaining: the spelling for type checkers that cannot infer a lambda inside `>>`.
chained = src.map(lambda c: c.user).filter(lambda u: u != "").flat_map(lambda u: u.split("@"))
assert_type(chained, fp.Flow[str])
assert_type(chained.map(len), fp.Flow[int])
assert_type(anything.filter(is_str).map(str.upper), fp.Flow[str])
assert_type(src.map_async(enrich), fp.Flow[Scored])
assert_type(src.tap(print), fp.Flow[Click])
assert_type(chained.to(fp.write_lines("users.txt")), fp.Pipeline)
assert_type(src.pipe(fp.map(lambda c: c.value)), fp.Flow[float])
