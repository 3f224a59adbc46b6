"""Build-time checks of the types that annotated callables declare across an edge.

Only what can be decided for sure is rejected: plain classes, unions of them, and the origin
class of a generic alias. Anything unknown (no annotation, a TypeVar, ``Any``) passes; mypy
checks the rest statically.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

from typing_extensions import TypeIs

from ._errors import PipelineTypeError

_NUMERIC_PROMOTIONS: dict[type, tuple[type, ...]] = {float: (int,), complex: (int, float)}


def type_name(tp: Any) -> str:
    """``Click``, ``list[int]``, ``int | None``: how a type is shown in messages and plans."""
    if tp is None:
        return "?"
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return str(tp).replace("typing.", "").replace("typing_extensions.", "")


def _members(tp: Any) -> tuple[Any, ...] | None:
    """The classes ``tp`` stands for, or None when it cannot be decided."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in typing.get_args(tp):
            m = _members(arg)
            if m is None:
                return None
            out.extend(m)
        return tuple(out)
    if tp is None or tp is type(None):
        return (type(None),)
    if origin is not None and isinstance(origin, type):
        return (origin,)
    if isinstance(tp, type) and tp is not object:
        return (tp,)
    return None


def _accepts(expected: type, produced: type) -> bool:
    if issubclass(produced, expected):
        return True
    if produced in _NUMERIC_PROMOTIONS.get(expected, ()):
        return True
    # Protocols and ABCs with __subclasshook__ are decided by issubclass above; anything else
    # whose check is undecidable (e.g. typing.Protocol without runtime_checkable) passes.
    return getattr(expected, "_is_protocol", False)


def check_edge(upstream: str, produced: Any, downstream: str, expected: Any) -> None:
    """Raise PipelineTypeError if ``produced`` can never be accepted by ``expected``."""
    if produced is None or expected is None:
        return
    want = _members(expected)
    have = _members(produced)
    if want is None or have is None:
        return
    bad = [h for h in have if not any(_accepts(w, h) for w in want)]
    if not bad:
        return
    msg = (
        f"stage '{downstream}' expects `{type_name(expected)}`, but '{upstream}' produces "
        f"`{type_name(produced)}`.\n"
        f"Fix: change the annotation of '{downstream}' to accept `{type_name(produced)}`, or put "
        f"a conversion step between them, e.g. `>> fp.map(to_{_snake(expected)})`."
    )
    raise PipelineTypeError(msg, upstream=upstream, downstream=downstream, produced=produced, expected=expected)


def _snake(tp: Any) -> str:
    name = getattr(tp, "__name__", "target")
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def signature_types(fn: Callable[..., Any]) -> tuple[Any, Any]:
    """(type of the first parameter, return type) of ``fn``; None where not annotated."""
    try:
        hints = typing.get_type_hints(fn)
        params = list(inspect.signature(fn).parameters.values())
    except Exception:  # noqa: BLE001 - unresolvable annotations only disable the check
        return None, None
    first = hints.get(params[0].name) if params else None
    if params and params[0].kind in (params[0].VAR_POSITIONAL, params[0].VAR_KEYWORD):
        first = None
    return first, hints.get("return")


def guarded_type(ret: Any) -> Any:
    """``X`` for a ``TypeGuard[X]``/``TypeIs[X]`` return annotation, else None."""
    origin = typing.get_origin(ret)
    if origin is TypeGuard or origin is TypeIs or origin is typing.TypeGuard:
        return typing.get_args(ret)[0]
    return None


def item_type(ret: Any) -> Any:
    """``X`` for an ``Iterable[X]``-like (list, Iterator, Generator…) annotation, else None."""
    origin = typing.get_origin(ret)
    args = typing.get_args(ret)
    if isinstance(origin, type) and issubclass(origin, Iterable) and args:
        return args[0]
    return None


def awaited_type(ret: Any) -> Any:
    """``X`` for ``Awaitable[X]``/``Coroutine[..., X]``; the plain return of an async def."""
    origin = typing.get_origin(ret)
    args = typing.get_args(ret)
    if origin is not None and args and getattr(origin, "__name__", "") in ("Awaitable", "Coroutine"):
        return args[-1]
    return ret
