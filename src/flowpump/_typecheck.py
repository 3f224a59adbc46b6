"""Build-time checks of the types that annotated callables declare across an edge.

Only what can be decided for sure is rejected: plain classes, unions of them, and the origin
class of a generic alias. Anything undecidable (no annotation, ``Any``, a TypeVar, a ``Literal``,
a protocol or TypedDict that ``issubclass`` cannot judge) passes; mypy checks the rest statically.
A union is accepted only if each of its members is, as mypy would: an ``int | None`` does not
fit a function that takes ``int``.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

from typing_extensions import TypeIs

from ._errors import PipelineTypeError
from ._labels import long_name, short_name

__all__ = ["awaited_type", "check_edge", "guarded_type", "item_type", "signature_types", "type_name"]

_NoneType = type(None)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# mypy's numeric tower: an int is accepted where a float is expected (PEP 484), and so is a
# bool, which is an int.
_NUMERIC_PROMOTIONS: dict[type, tuple[type, ...]] = {float: (int,), complex: (int, float)}


def type_name(tp: Any) -> str:
    """``Click``, ``list[Click]``, ``int | None``: how a type is shown in messages and plans."""
    if tp is None:
        return "?"
    if tp is _NoneType:
        return "None"
    if tp is Ellipsis:
        return "..."
    if isinstance(tp, list):  # the parameter list of Callable[[A, B], R]
        return "[" + ", ".join(type_name(a) for a in tp) + "]"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if isinstance(origin, type) and args:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(tp, type) and not args:
        # A class defined inside a function has a qualname like ``test.<locals>.Click``.
        return tp.__name__ if "<locals>" in tp.__qualname__ else tp.__qualname__
    return str(tp).replace("typing_extensions.", "").replace("typing.", "")


def _members(tp: Any) -> tuple[type, ...] | None:
    """The classes ``tp`` stands for, or None when it cannot be decided."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        out: list[type] = []
        for arg in typing.get_args(tp):
            m = _members(arg)
            if m is None:
                return None
            out.extend(m)
        return tuple(out)
    if tp is None or tp is _NoneType:
        return (_NoneType,)
    if origin is not None:
        return (origin,) if isinstance(origin, type) else None
    # Since Python 3.11 ``typing.Any`` is a class, but it stands for every type.
    if isinstance(tp, type) and tp is not object and tp is not Any:
        return (tp,)
    return None


def _accepts(expected: type, produced: type) -> bool:
    try:
        if issubclass(produced, expected):
            return True
    except TypeError:
        # Protocols that are not runtime_checkable or have data members, TypedDicts: undecidable.
        return True
    if any(issubclass(produced, p) for p in _NUMERIC_PROMOTIONS.get(expected, ())):
        return True
    # A non-runtime_checkable protocol (issubclass raised above) or a runtime_checkable one that
    # only checks method names: the class may still satisfy it structurally.
    return bool(getattr(expected, "_is_protocol", False))


def check_edge(
    upstream: str,
    produced: Any,
    downstream: str,
    expected: Any,
    *,
    downstream_fn: Callable[..., Any] | None = None,
) -> None:
    """Raise PipelineTypeError unless everything ``produced`` stands for fits ``expected``.

    ``upstream``/``downstream`` are the stage labels; ``downstream_fn`` is the callable whose
    annotation declares ``expected``, shown as ``module.qualname (file:line)`` in the message.
    """
    if produced is None or expected is None:
        return
    want = _members(expected)
    have = _members(produced)
    if want is None or have is None:
        return
    bad = [h for h in have if not any(_accepts(w, h) for w in want)]
    if not bad:
        return
    msg = _mismatch_message(upstream, produced, downstream, expected, bad, len(bad) < len(have), downstream_fn)
    raise PipelineTypeError(msg, upstream=upstream, downstream=downstream, produced=produced, expected=expected)


def _mismatch_message(
    upstream: str,
    produced: Any,
    downstream: str,
    expected: Any,
    bad: list[type],
    partly: bool,
    fn: Callable[..., Any] | None,
) -> str:
    have, want = type_name(produced), type_name(expected)
    head = f"stage '{downstream}' expects `{want}`, but '{upstream}' produces `{have}`"
    if partly:
        head += f" (`{' | '.join(type_name(b) for b in bad)}` does not fit)"
    lines = [head + "."]
    accept = ""
    if fn is not None and _is_users(fn):
        param = _first_param(fn)
        where = f"whose parameter `{param}` is annotated" if param else "which expects"
        lines.append(f"  '{downstream}' calls {long_name(fn)}, {where} `{want}`.")
        accept = f"make {short_name(fn)} accept `{have}`, or "
    if produced is _NoneType and upstream.startswith("map("):
        lines.append(
            f"Fix: '{upstream}' returns `None`; to call a function for its side effect and pass the "
            "events on, use fp.tap:"
        )
        lines.append(f"  incorrect!  {upstream} >> {downstream}")
        lines.append(f"  correct!    t{upstream[1:]} >> {downstream}")
        return "\n".join(lines)
    if partly and bad == [_NoneType]:
        some = type_name(_without_none(produced))
        lines.append(
            f"Fix: {accept}drop the `None` events between the two stages with a TypeGuard filter, "
            f"`def is_not_none(x: {have}) -> TypeGuard[{some}]: return x is not None`:"
        )
        between = "filter(is_not_none)"
    else:
        lines.append(f"Fix: {accept}convert the events between the two stages:")
        between = "map(str)" if expected is str else f"map({_snake(produced)}_to_{_snake(expected)})"
    lines.append(f"  incorrect!  {upstream} >> {downstream}")
    lines.append(f"  correct!    {upstream} >> {between} >> {downstream}")
    return "\n".join(lines)


def _is_users(fn: Callable[..., Any]) -> bool:
    """False for a wrapper flowpump made (``fp.enrich``): its location would point into flowpump."""
    code = getattr(inspect.unwrap(fn), "__code__", None)
    return code is None or not os.path.abspath(code.co_filename).startswith(_PACKAGE_DIR)


def _first_param(fn: Callable[..., Any]) -> str | None:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    return params[0] if params else None


def _without_none(tp: Any) -> Any:
    rest = [a for a in typing.get_args(tp) if a is not _NoneType]
    return typing.Union[tuple(rest)] if rest else _NoneType  # noqa: UP007 - built from a list


def _snake(tp: Any) -> str:
    name = getattr(typing.get_origin(tp) or tp, "__name__", None)
    if not isinstance(name, str) or typing.get_origin(tp) in (typing.Union, types.UnionType):
        return "value"
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def signature_types(fn: Callable[..., Any]) -> tuple[Any, Any]:
    """(type of the first parameter, return type) of ``fn``; None where not annotated.

    Calling a class makes an instance of it, so a class returns itself (``fp.map(Scored)``).
    """
    cls_out = fn if isinstance(fn, type) else None
    # A class's own hints are its fields, which are its parameters for a dataclass or a msgspec
    # Struct; a hand-written ``__init__`` declares its parameters itself.
    init = getattr(fn, "__init__", None) if cls_out is not None else None
    annotated = init if inspect.isfunction(init) else fn
    try:
        hints = typing.get_type_hints(annotated)
        params = list(inspect.signature(fn).parameters.values())
    except Exception:  # noqa: BLE001 - unresolvable annotations only disable the check
        return None, cls_out
    first = hints.get(params[0].name) if params else None
    if params and params[0].kind in (params[0].VAR_POSITIONAL, params[0].VAR_KEYWORD, params[0].KEYWORD_ONLY):
        first = None
    return first, cls_out if cls_out is not None else hints.get("return")


def guarded_type(ret: Any) -> Any:
    """``X`` for a ``TypeGuard[X]``/``TypeIs[X]`` return annotation, else None."""
    origin = typing.get_origin(ret)
    if origin is TypeGuard or origin is TypeIs or origin is typing.TypeGuard:
        return typing.get_args(ret)[0]
    return None


def item_type(ret: Any) -> Any:
    """``X`` for an ``Iterable[X]``-like (list, Iterator, Generator…) annotation, else None.

    A fixed-length ``tuple[A, B]`` yields ``A | B``; a mapping yields its keys.
    """
    origin = typing.get_origin(ret)
    args = typing.get_args(ret)
    if not (isinstance(origin, type) and issubclass(origin, Iterable) and args):
        return None
    if issubclass(origin, tuple) and not (len(args) == 2 and args[1] is Ellipsis):
        return typing.Union[args]  # noqa: UP007 - built from a tuple
    return args[0]


def awaited_type(ret: Any) -> Any:
    """``X`` for ``Awaitable[X]``/``Coroutine[..., X]``; the plain return of an async def."""
    origin = typing.get_origin(ret)
    args = typing.get_args(ret)
    if origin is not None and args and getattr(origin, "__name__", "") in ("Awaitable", "Coroutine"):
        return args[-1]
    return ret
