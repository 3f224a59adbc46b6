"""The generated fused code: same results, dead letters, counts and calls as the unfused plan.

The functions here raise in every way a user function can: an exception from its own frame, a
StopIteration (which a C-level consumer such as ``list.extend`` would take for the end of the
batch), a predicate result whose truth value raises (no frame of the predicate on the traceback),
and C functions without any Python frame.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowpump as fp
from flowpump.compiler._fuse import compile_group

#: (kind, failure, a, b): kind in map/filter/tap/flat_map/sqrt; failure in none/raise/stop/bool.
Op = tuple[str, str, int, int]

ops = st.lists(
    st.tuples(
        st.sampled_from(["map", "filter", "tap", "flat_map", "sqrt"]),
        st.sampled_from(["none", "raise", "stop", "bool"]),
        st.integers(2, 5),
        st.integers(0, 4),
    ),
    min_size=1,
    max_size=6,
)


class Unclear:
    """A predicate result whose truth value cannot be told."""

    def __bool__(self) -> bool:
        raise ArithmeticError("no truth value")


def make_steps(chain: list[Op], calls: Counter[tuple[int, Any]]) -> list[fp.Processor[Any, Any]]:
    """One processor per op, each with its own code object (generated source)."""
    processors: list[fp.Processor[Any, Any]] = []
    for k, (kind, failure, a, b) in enumerate(chain):
        if kind == "sqrt":
            processors.append(fp.map(abs) >> fp.map(math.sqrt) if failure == "none" else fp.map(math.sqrt))
            continue
        fails = {"none": "False", "raise": f"int(x) % {a} == {b % a}", "stop": f"int(x) % {a} == {b % a}"}
        fails["bool"] = fails["raise"]
        body = {
            "map": f"return x * {a} + {b}",
            "filter": "return Unclear()" if failure == "bool" else f"return int(x) % {a} != {b % a}",
            "tap": "return None",
            "flat_map": f"return [x] * (int(x) % {a})",
        }[kind]
        if failure == "bool" and kind != "filter":
            failure = "raise"
        exc = "StopIteration" if failure == "stop" else f"ValueError('step {k}: ' + repr(x))"
        guard = f"    if {fails[failure]}:\n        raise {exc}\n" if failure in ("raise", "stop") else ""
        if failure == "bool":
            guard = f"    if not ({fails['bool']}):\n        return int(x) % 2 == 0\n"
        src = f"def step{k}_{kind}(x):\n    calls[({k}, x)] += 1\n{guard}    {body}\n"
        namespace: dict[str, Any] = {"calls": calls, "Unclear": Unclear}
        exec(compile(src, f"<step {k}>", "exec"), namespace)
        fn = namespace[f"step{k}_{kind}"]
        processors.append(getattr(fp, kind)(fn))
    return processors


SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def run(xs: list[int], chain: list[Op], fuse: bool) -> tuple[Any, ...]:
    calls: Counter[tuple[int, Any]] = Counter()
    flow: fp.Flow[Any] = fp.from_iterable(xs)
    for p in make_steps(chain, calls):
        flow = flow >> p
    out: fp.Collect[Any] = fp.collect()
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    report = (flow >> out).on_error(dead).run(fuse=fuse)
    letters = Counter((d.stage.split(" at ")[0], d.error, repr(d.event), d.position) for d in dead.items)
    order = [(d.stage, d.error, repr(d.event), d.position) for d in dead.items]
    stages = [(s.label, s.events_in, s.events_out, s.filtered, s.dead_lettered) for s in report.stages]
    return out.items, letters, stages, calls, order


@SETTINGS
@given(xs=st.lists(st.integers(-30, 300), max_size=120), chain=ops)
def test_fused_equals_unfused_with_failures_of_every_kind(xs: list[int], chain: list[Op]) -> None:
    fused = run(xs, chain, fuse=True)
    unfused = run(xs, chain, fuse=False)
    assert fused[0] == unfused[0], "outputs"
    assert fused[2] == unfused[2], "per-stage counts"
    assert fused[3] == unfused[3], "every function is called once per event it receives"
    # Positions: fused mode knows the source index of each failure; unfused mode only when the
    # failing event is a source event itself. Where both know it, they agree.
    f_letters = Counter(k[:3] for k in fused[1].elements())
    u_letters = Counter(k[:3] for k in unfused[1].elements())
    assert f_letters == u_letters, "dead letters: stage, error, event"
    for stage, count in Counter(k[0] for k in fused[1].elements()).items():
        assert count == next(s[4] for s in fused[2] if s[0].split(" at ")[0] == stage)


@SETTINGS
@given(xs=st.lists(st.integers(0, 50), max_size=80), chain=ops)
def test_counts_add_up_per_step(xs: list[int], chain: list[Op]) -> None:
    stages = run(xs, chain, fuse=True)[2]
    for label, n_in, n_out, filtered, dead in stages[1:-1]:
        if "flat_map" not in label:
            assert n_in == n_out + filtered + dead, label


def test_dead_letter_positions_are_exact_even_for_equal_objects() -> None:
    # Small ints are shared objects: a lookup by identity would give every failure the first index.
    xs = [5] + [1] * 8  # batches of 1, 2, 4 and 2 events: equal objects within a batch
    calls: Counter[tuple[int, Any]] = Counter()
    chain: list[Op] = [("map", "none", 2, 0), ("filter", "none", 7, 6), ("map", "raise", 2, 0)]
    flow: fp.Flow[Any] = fp.from_iterable(xs)
    for p in make_steps(chain, calls):
        flow = flow >> p
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    (flow >> fp.collect()).on_error(dead).run()
    got = sorted(d.position for d in dead.items)
    # step 2 raises when (2x) % 2 == 0: every event, each at its own index
    assert len(got) == len(xs)
    assert len(set(got)) == len(xs)


def score(x: int) -> int:
    return x * 3


def keep(x: int) -> bool:
    return x % 2 == 0


def test_each_step_call_has_a_line_of_its_own_naming_it() -> None:
    group = compile_group((fp.map(score) >> fp.filter(keep) >> fp.flat_map(list) >> fp.map(str)).steps)
    lines = group.source.splitlines()
    assert sorted(group.line_to_step.values()) == [0, 1, 2, 3]
    for line, k in group.line_to_step.items():
        assert lines[line - 1].endswith(f"# {group.steps[k].label}")


def test_a_traceback_through_the_loop_shows_the_step_and_the_user_code() -> None:
    import traceback

    def boom(x: int) -> int:
        raise ValueError(x)

    group = compile_group((fp.map(score) >> fp.map(boom)).steps)
    seen: list[str] = []

    def dead(exc: BaseException, k: int, event: Any, index: int) -> None:
        seen.append("".join(traceback.format_exception(exc)))

    group.fn([1], dead)
    [text] = seen
    assert "# map(" in text  # the generated line, with the step's label
    assert "raise ValueError(x)" in text  # then the user's own line


@pytest.mark.parametrize("where", ["map", "filter"])
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_stop_iteration_on_the_last_event_is_a_dead_letter(where: str, fuse: bool) -> None:
    def m(x: int) -> int:
        if where == "map" and x == 3:
            raise StopIteration
        return x

    def f(x: int) -> bool:
        if where == "filter" and x == 3:
            raise StopIteration
        return True

    out: fp.Collect[int] = fp.collect()
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    report = (fp.from_iterable([1, 2, 3]) >> fp.map(m) >> fp.filter(f) >> out).on_error(dead).run(fuse=fuse)
    assert out.items == [1, 2]
    assert [(d.stage.split("(")[0], d.error, d.event) for d in dead.items] == [(where, "StopIteration: ", 3)]
    assert report.events_in == report.events_out + report.filtered + report.dead_lettered


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_a_predicate_result_without_truth_value_dead_letters_the_mapped_event(fuse: bool) -> None:
    def double(x: int) -> int:
        return 2 * x

    def unclear(x: int) -> Any:
        return Unclear() if x == 4 else True

    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    out: fp.Collect[int] = fp.collect()
    (fp.from_iterable([1, 2, 3]) >> fp.map(double) >> fp.filter(unclear) >> out).on_error(dead).run(fuse=fuse)
    assert out.items == [2, 6]
    [d] = dead.items
    assert (d.stage.split("(")[0], d.error, d.event, d.position) == (
        "filter",
        "ArithmeticError: no truth value",
        4,
        "from_iterable(list)[1]" if fuse else None,
    )
