"""Mistakes mypy must reject. Each ignore names the expected error code; with
`warn_unused_ignores`, a mistake that stops being caught fails tests/test_typing.py.
tests/test_typing.py also pins the exact messages. Type-checked, never run."""

from __future__ import annotations

from typing import TypeGuard

import msgspec

import flowpump as fp


class Click(msgspec.Struct):
    user: str
    kind: str
    value: float


def parse(s: str) -> int:
    return len(s)


def needs_click(c: Click) -> float:
    return c.value


def needs_int(x: int) -> int:
    return x


def is_str(x: object) -> TypeGuard[str]:
    return isinstance(x, str)


src = fp.read_jsonl("clicks.jsonl", Click)

# A stage that expects `str` after a source of Click.
src >> fp.map(parse)  # type: ignore[arg-type]
src.map(parse)  # type: ignore[arg-type]

# A lambda that uses an attribute the event does not have.
src >> fp.map(lambda c: c.nope)  # type: ignore[attr-defined]
src.map(lambda c: c.nope)  # type: ignore[attr-defined]

# A sink of the wrong type: write_lines is a Sink[str].
floats: fp.Flow[float] = src >> fp.map(lambda c: c.value)
floats >> fp.write_lines("out.txt")  # type: ignore[operator]
floats.to(fp.write_lines("out.txt"))  # type: ignore[arg-type]
src >> fp.map(needs_click) >> fp.write_lines("out.txt")  # type: ignore[operator]

# A filter's (narrowed) result used as the wrong type.
anything: fp.Flow[object] = fp.from_iterable([1, "a"])
strings = anything >> fp.filter(is_str)
wrong: fp.Flow[int] = strings  # type: ignore[assignment]
strings >> fp.map(needs_int)  # type: ignore[arg-type]
kept = src >> fp.filter(lambda c: c.value > 0)
kept >> fp.map(parse)  # type: ignore[arg-type]

# Processor >> Processor, and Processor >> Sink, that disagree.
fp.map(parse) >> fp.map(needs_click)  # type: ignore[arg-type]
fp.map(needs_click) >> fp.write_lines("out.txt")  # type: ignore[operator]

# Variance does not go the other way.
ints: fp.Flow[int] = fp.from_iterable([1])
bools: fp.Flow[bool] = ints  # type: ignore[assignment]
sink_of_clicks: fp.Sink[Click] = fp.sink(needs_click)
sink_of_objects: fp.Sink[object] = sink_of_clicks  # type: ignore[assignment]

# collect's items have the declared type.
out = fp.collect[int]()
first: str = out.items[0]  # type: ignore[assignment]
