"""Build-time type checks: ``>>`` raises PipelineTypeError when annotated callables disagree."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Protocol, TypedDict, TypeGuard

import msgspec
import pytest
from typing_extensions import TypeIs

import flowpump as fp
from flowpump._typecheck import item_type, signature_types, type_name

# The checks read annotations at run time, so the callables live at module level where
# ``typing.get_type_hints`` can resolve the (postponed) annotations.


class Click(msgspec.Struct):
    user: str
    kind: str
    value: float


class SpecialClick(Click):
    pass


class Named(Protocol):
    user: str


class Row(TypedDict):
    user: str


def parse(s: str) -> int:
    return len(s)


def click_value(c: Click) -> float:
    return c.value


def needs_float(x: float) -> float:
    return x


def needs_int(x: int) -> int:
    return x


def needs_bool(x: bool) -> bool:
    return x


def needs_complex(x: complex) -> complex:
    return x


def needs_optional_int(x: int | None) -> int:
    return x or 0


def needs_int_or_str(x: int | str) -> str:
    return str(x)


def needs_str_or_float(x: str | float) -> str:
    return str(x)


def needs_named(x: Named) -> str:
    return x.user


def needs_row(x: Row) -> str:
    return x["user"]


def needs_any(x: Any) -> Any:
    return x


def needs_object(x: object) -> str:
    return repr(x)


def unannotated(x):  # type: ignore[no-untyped-def]
    return x


def maybe_int(s: str) -> int | None:
    return int(s) if s.isdigit() else None


def int_or_str(s: str) -> int | str:
    return s


def is_numeric(s: str) -> bool:
    return s.isnumeric()


def is_str(x: object) -> TypeGuard[str]:
    return isinstance(x, str)


def is_int(x: object) -> TypeIs[int]:
    return isinstance(x, int)


def is_positive(c: Click) -> bool:
    return c.value > 0


def words(s: str) -> list[str]:
    return s.split()


def word_iter(s: str) -> Iterator[str]:
    yield from s.split()


def user_and_value(c: Click) -> tuple[str, float]:
    return c.user, c.value


async def fetch_len(s: str) -> int:
    return len(s)


async def fetch_click(u: str) -> Click:
    return Click(u, "view", 1.0)


def save_str(s: str) -> None:
    pass


async def save_int(x: int) -> None:
    pass


def where(fn: Any) -> str:
    """``module.qualname (file:line)`` of ``fn``, as the message shows it."""
    return f"{fn.__module__}.{fn.__qualname__} (test_typecheck.py:{fn.__code__.co_firstlineno})"


def clicks() -> fp.Source[Click]:
    return fp.read_jsonl("clicks.jsonl", Click)


# -- the message ---------------------------------------------------------------------------------


def test_mismatch_message_names_both_stages_types_function_and_fix() -> None:
    expected = (
        "stage 'map(parse)' expects `str`, but 'read_jsonl(clicks.jsonl)' produces `Click`.\n"
        f"  'map(parse)' calls {where(parse)}, whose parameter `s` is annotated `str`.\n"
        "Fix: make parse accept `Click`, or convert the events between the two stages:\n"
        "  incorrect!  read_jsonl(clicks.jsonl) >> map(parse)\n"
        "  correct!    read_jsonl(clicks.jsonl) >> map(str) >> map(parse)"
    )
    with pytest.raises(fp.PipelineTypeError, match=f"^{re.escape(expected)}$"):
        fp.read_jsonl("clicks.jsonl", Click) >> fp.map(parse)  # type: ignore[arg-type]


def test_error_carries_structured_attributes() -> None:
    with pytest.raises(fp.PipelineTypeError) as info:
        clicks() >> fp.map(parse)  # type: ignore[arg-type]
    err = info.value
    assert (err.upstream, err.downstream) == ("read_jsonl(clicks.jsonl)", "map(parse)")
    assert (err.produced, err.expected) == (Click, str)
    assert isinstance(err, fp.FlowpumpError)
    assert isinstance(err, TypeError)


def test_conversion_hint_names_both_types_when_not_str() -> None:
    msg = "  correct!    map(parse) >> map(int_to_click) >> map(click_value)"
    with pytest.raises(fp.PipelineTypeError, match=re.escape(msg)):
        fp.read_lines("a.txt") >> fp.map(parse) >> fp.map(click_value)  # type: ignore[arg-type]


def test_optional_into_non_optional_suggests_a_typeguard_filter() -> None:
    expected = (
        "stage 'map(needs_int)' expects `int`, but 'map(maybe_int)' produces `int | None` (`None` does not fit).\n"
        f"  'map(needs_int)' calls {where(needs_int)}, whose parameter `x` is annotated `int`.\n"
        "Fix: make needs_int accept `int | None`, or drop the `None` events between the two stages with a "
        "TypeGuard filter, `def is_not_none(x: int | None) -> TypeGuard[int]: return x is not None`:\n"
        "  incorrect!  map(maybe_int) >> map(needs_int)\n"
        "  correct!    map(maybe_int) >> filter(is_not_none) >> map(needs_int)"
    )
    with pytest.raises(fp.PipelineTypeError, match=f"^{re.escape(expected)}$"):
        fp.read_lines("a.txt") >> fp.map(maybe_int) >> fp.map(needs_int)  # type: ignore[arg-type]


def test_a_map_that_returns_none_suggests_tap() -> None:
    expected = (
        "stage 'map(needs_int)' expects `int`, but 'map(save_str)' produces `None`.\n"
        f"  'map(needs_int)' calls {where(needs_int)}, whose parameter `x` is annotated `int`.\n"
        "Fix: 'map(save_str)' returns `None`; to call a function for its side effect and pass the events on, "
        "use fp.tap:\n"
        "  incorrect!  map(save_str) >> map(needs_int)\n"
        "  correct!    tap(save_str) >> map(needs_int)"
    )
    with pytest.raises(fp.PipelineTypeError, match=f"^{re.escape(expected)}$"):
        fp.read_lines("a.txt") >> fp.map(save_str) >> fp.map(needs_int)  # type: ignore[arg-type]


def test_sink_mismatch_has_no_function_line() -> None:
    expected = (
        "stage 'write_lines(out.txt)' expects `str`, but 'map(click_value)' produces `float`.\n"
        "Fix: convert the events between the two stages:\n"
        "  incorrect!  map(click_value) >> write_lines(out.txt)\n"
        "  correct!    map(click_value) >> map(str) >> write_lines(out.txt)"
    )
    with pytest.raises(fp.PipelineTypeError, match=f"^{re.escape(expected)}$"):
        clicks() >> fp.map(click_value) >> fp.write_lines("out.txt")  # type: ignore[operator]


def test_type_names_are_short() -> None:
    assert type_name(None) == "?"
    assert type_name(type(None)) == "None"
    assert type_name(Click) == "Click"
    assert type_name(list[Click]) == "list[Click]"
    assert type_name(dict[str, list[Click | None]]) == "dict[str, list[Click | None]]"
    assert type_name(tuple[int, ...]) == "tuple[int, ...]"


# -- what is accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("producer", "consumer"),
    [
        pytest.param(parse, needs_float, id="int-where-float"),
        pytest.param(is_numeric, needs_float, id="bool-where-float"),
        pytest.param(parse, needs_complex, id="int-where-complex"),
        pytest.param(is_numeric, needs_int, id="subclass-bool-where-int"),
        pytest.param(parse, needs_optional_int, id="int-where-optional"),
        pytest.param(maybe_int, needs_optional_int, id="optional-where-optional"),
        pytest.param(int_or_str, needs_int_or_str, id="union-where-same-union"),
        pytest.param(maybe_int, needs_any, id="any-parameter"),
        pytest.param(maybe_int, needs_object, id="object-parameter"),
        pytest.param(maybe_int, unannotated, id="unannotated-parameter"),
        pytest.param(needs_any, needs_int, id="any-return"),
        pytest.param(unannotated, needs_int, id="unannotated-return"),
    ],
)
def test_compatible_annotations_pass(producer: Any, consumer: Any) -> None:
    flow = fp.read_lines("a.txt") >> fp.map(producer) >> fp.map(consumer)
    assert flow.label == f"map({consumer.__name__})"


def test_subclass_accepted_where_base_expected() -> None:
    special: fp.Source[SpecialClick] = fp.read_jsonl("s.jsonl", SpecialClick)
    assert (special >> fp.map(click_value)).out_type is float


def test_undecidable_protocol_and_typeddict_pass() -> None:
    # Neither can be judged by issubclass (it raised TypeError once); mypy judges them statically.
    assert (clicks() >> fp.map(needs_named)).out_type is str
    assert (fp.read_jsonl("rows.jsonl", Row) >> fp.map(needs_row)).out_type is str


def test_lambdas_pass_and_forget_the_type() -> None:
    flow = clicks() >> fp.map(lambda c: len(c.user))
    assert flow.out_type is None
    flow >> fp.map(needs_int)  # nothing to check against: mypy checks this edge statically


@pytest.mark.parametrize(
    ("producer", "consumer", "produced"),
    [
        pytest.param(parse, needs_bool, "int", id="int-where-bool"),
        pytest.param(click_value, needs_int, "float", id="float-where-int"),
        pytest.param(maybe_int, needs_int, "int | None", id="optional-where-plain"),
        pytest.param(int_or_str, needs_optional_int, "int | str", id="union-partly"),
        pytest.param(save_str, needs_int, "None", id="none-returning-function"),
    ],
)
def test_incompatible_annotations_fail(producer: Any, consumer: Any, produced: str) -> None:
    src = fp.read_jsonl("clicks.jsonl", Click) if producer is click_value else fp.read_lines("a.txt")
    with pytest.raises(fp.PipelineTypeError, match=re.escape(f"but 'map({producer.__name__})' produces `{produced}`")):
        src >> fp.map(producer) >> fp.map(consumer)


# -- operators -------------------------------------------------------------------------------------


def test_typeguard_narrowing_propagates() -> None:
    narrowed = fp.from_iterable([1, "a"]) >> fp.map(needs_object) >> fp.filter(is_str)
    assert narrowed.out_type is str
    narrowed >> fp.map(parse)
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'map(needs_int)' expects `int`, but 'filter(is_str)' produces `str`."),
    ):
        narrowed >> fp.map(needs_int)  # type: ignore[arg-type]


def test_typeis_narrowing_propagates() -> None:
    narrowed = fp.read_lines("a.txt") >> fp.map(int_or_str) >> fp.filter(is_int)
    assert narrowed.out_type is int
    # fp.filter has TypeGuard overloads but no TypeIs one, so mypy does not narrow here (yet).
    narrowed >> fp.map(needs_int)  # type: ignore[arg-type]


def test_plain_filter_and_tap_keep_the_type() -> None:
    flow = clicks() >> fp.filter(is_positive) >> fp.tap(print)
    assert flow.out_type is Click
    with pytest.raises(fp.PipelineTypeError, match=re.escape("but 'tap(print)' produces `Click`")):
        flow >> fp.map(parse)  # type: ignore[arg-type]


def test_filter_predicate_input_is_checked() -> None:
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'filter(is_positive)' expects `Click`, but 'read_lines(a.txt)' produces `str`"),
    ):
        fp.read_lines("a.txt") >> fp.filter(is_positive)  # type: ignore[arg-type]


@pytest.mark.parametrize("splitter", [words, word_iter])
def test_flat_map_yields_its_item_type(splitter: Any) -> None:
    flow = fp.read_lines("a.txt") >> fp.flat_map(splitter)
    assert flow.out_type is str
    flow >> fp.map(parse)
    with pytest.raises(fp.PipelineTypeError, match=re.escape(f"but 'flat_map({splitter.__name__})' produces `str`")):
        flow >> fp.map(click_value)


def test_flat_map_of_a_fixed_tuple_yields_each_member() -> None:
    flow = clicks() >> fp.flat_map(user_and_value)
    flow >> fp.map(needs_str_or_float)  # type: ignore[arg-type]  # mypy joins str and float to object
    with pytest.raises(fp.PipelineTypeError, match=re.escape("produces `str | float` (`str` does not fit)")):
        flow >> fp.map(needs_float)  # type: ignore[arg-type]
    assert item_type(tuple[int, ...]) is int
    assert item_type(dict[str, int]) is str


def test_map_async_produces_the_awaited_type() -> None:
    flow = fp.read_lines("a.txt") >> fp.map_async(fetch_len)
    assert flow.out_type is int
    flow >> fp.map(needs_float)
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'map(parse)' expects `str`, but 'map_async(fetch_len)' produces `int`"),
    ):
        flow >> fp.map(parse)  # type: ignore[arg-type]
    with pytest.raises(fp.PipelineTypeError, match=re.escape("stage 'map_async(fetch_click)' expects `str`")):
        clicks() >> fp.map_async(fetch_click)  # type: ignore[arg-type]


def test_batch_and_unbatch_hide_the_type() -> None:
    # batch/unbatch declare no runtime types: nothing after them is rejected at build time.
    flow = clicks() >> fp.batch(10) >> fp.unbatch()
    assert flow.out_type is None


def test_a_class_used_as_a_function_produces_its_instances() -> None:
    assert signature_types(Click) == (str, Click)
    assert signature_types(int) == (None, int)
    with pytest.raises(fp.PipelineTypeError, match=re.escape("but 'map(Click)' produces `Click`")):
        fp.read_lines("a.txt") >> fp.map(Click) >> fp.map(parse)  # type: ignore[arg-type]


# -- sinks -----------------------------------------------------------------------------------------


def test_sink_of_an_annotated_function() -> None:
    fp.read_lines("a.txt") >> fp.sink(save_str)
    fp.read_lines("a.txt") >> fp.map(parse) >> fp.sink(save_int)
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'sink(save_int)' expects `int`, but 'read_lines(a.txt)' produces `str`"),
    ):
        fp.read_lines("a.txt") >> fp.sink(save_int)  # type: ignore[arg-type]


def test_write_lines_takes_str_only() -> None:
    fp.read_lines("a.txt") >> fp.write_lines("out.txt")
    clicks() >> fp.write_jsonl("out.jsonl")
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'write_lines(out.txt)' expects `str`, but 'read_jsonl(clicks.jsonl)' produces `Click`"),
    ):
        clicks() >> fp.write_lines("out.txt")  # type: ignore[operator]


def test_flow_to_checks_like_rshift() -> None:
    with pytest.raises(fp.PipelineTypeError, match=re.escape("stage 'write_lines(out.txt)' expects `str`")):
        clicks().to(fp.write_lines("out.txt"))  # type: ignore[arg-type]
    with pytest.raises(fp.PipelineTypeError, match=re.escape("stage 'map(parse)' expects `str`")):
        clicks().map(parse)  # type: ignore[arg-type]


def test_sink_behind_operators_checks_its_first_step() -> None:
    sink = fp.map(parse) >> fp.sink(save_int)
    fp.read_lines("a.txt") >> sink
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'map(parse)' expects `str`, but 'read_jsonl(clicks.jsonl)' produces `Click`"),
    ):
        clicks() >> sink  # type: ignore[operator]


def test_each_tee_branch_checks_its_first_edge() -> None:
    lines = fp.read_lines("a.txt")
    lines >> fp.tee(fp.map(parse) >> fp.collect(), fp.sink(save_str))
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'map(click_value)' expects `Click`, but 'read_lines(a.txt)' produces `str`"),
    ):
        lines >> fp.tee(fp.collect(), fp.map(click_value) >> fp.collect())
    with pytest.raises(fp.PipelineTypeError, match=re.escape("stage 'sink(needs_float)' expects `float`")):
        lines.to(fp.tee(fp.collect(), fp.tee(fp.collect(), fp.sink(needs_float))))


def test_processor_into_a_tee_checks_each_branch() -> None:
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'write_lines(out.txt)' expects `str`, but 'map(parse)' produces `int`"),
    ):
        fp.map(parse) >> fp.tee(fp.collect(), fp.write_lines("out.txt"))


# -- fragments and fan-in --------------------------------------------------------------------------


def test_processor_to_processor_edge() -> None:
    ok = fp.map(parse) >> fp.map(needs_float)
    assert ok.out_type is float
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'map(click_value)' expects `Click`, but 'map(parse)' produces `int`"),
    ):
        fp.map(parse) >> fp.map(click_value)  # type: ignore[arg-type]


def test_processor_to_sink_edge() -> None:
    assert isinstance(fp.map(str) >> fp.write_lines("out.txt"), fp.Sink)
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape("stage 'write_lines(out.txt)' expects `str`, but 'map(parse)' produces `int`"),
    ):
        fp.map(parse) >> fp.write_lines("out.txt")  # type: ignore[operator]
    with pytest.raises(
        fp.PipelineTypeError, match=re.escape("stage 'sink(save_str)' expects `str`, but 'map(parse)' produces `int`")
    ):
        fp.map(parse) >> fp.sink(save_str)  # type: ignore[arg-type]


def test_merge_of_same_types_keeps_the_type() -> None:
    merged = fp.merge(fp.read_lines("a.txt"), fp.read_lines("b.txt"))
    assert merged.out_type is str
    with pytest.raises(
        fp.PipelineTypeError,
        match=re.escape(
            "stage 'map(click_value)' expects `Click`, but 'merge(read_lines(a.txt), read_lines(b.txt))' produces `str`"
        ),
    ):
        merged >> fp.map(click_value)  # type: ignore[arg-type]


def test_merge_of_different_types_is_not_rejected_at_build_time() -> None:
    # The merged type is unknown at build time, so only mypy (which joins str and int to object)
    # rejects this edge.
    merged = fp.merge(fp.read_lines("a.txt"), fp.read_lines("b.txt") >> fp.map(parse))
    assert merged.out_type is None
    merged >> fp.map(needs_int)  # type: ignore[arg-type]


def test_a_function_flowpump_made_is_not_shown_as_the_users() -> None:
    # A wrapper such as fp.enrich's lives in flowpump: its file:line would mislead.
    from flowpump._labels import long_name

    expected = (
        "stage 'map(long_name)' expects `Callable[..., Any]`, but 'read_lines(a.txt)' produces `str`.\n"
        "Fix: convert the events between the two stages:\n"
    )
    with pytest.raises(fp.PipelineTypeError, match=f"^{re.escape(expected)}"):
        fp.read_lines("a.txt") >> fp.map(long_name)  # type: ignore[arg-type]
