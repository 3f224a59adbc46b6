"""Operator factories. Each returns a one-step ``Processor``; one helper, ``_step``, makes them."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar, overload

from ._errors import PipelineDefinitionError
from ._graph import Processor, Step, StepKind
from ._labels import short_name
from ._typecheck import awaited_type, guarded_type, item_type, signature_types

if TYPE_CHECKING:
    from .app.lookups import KeyLookup, Lookup

__all__ = ["batch", "enrich", "filter", "flat_map", "map", "map_async", "tap", "unbatch"]

I = TypeVar("I")  # noqa: E741 - input type, as in Processor[I, O]
O = TypeVar("O")  # noqa: E741 - output type
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


def _step(
    kind: StepKind, name: str, fn: Callable[..., Any], out: Callable[[Any], Any] | None, **options: Any
) -> Processor[Any, Any]:
    if not callable(fn):
        msg = f"fp.{name}() expects a callable, got {fn!r}: write fp.{name}(lambda e: ...)"
        raise PipelineDefinitionError(msg)
    in_type, ret = signature_types(fn)
    label = f"{name}({short_name(fn)})"
    out_type = out(ret) if (out is not None and ret is not None) else None
    return Processor((Step(kind, fn, label, in_type, out_type, options),))


def _is_async_callable(f: object) -> bool:
    """True for an async function, also one behind an object's ``async def __call__``."""
    return inspect.iscoroutinefunction(f) or (callable(f) and inspect.iscoroutinefunction(type(f).__call__))


def map(f: Callable[[I], O]) -> Processor[I, O]:  # noqa: A001 - the contract's name
    """Apply ``f`` to every event.

    >>> import flowpump as fp
    >>> fp.from_iterable([1, 2]).pipe(fp.map(str)).take(2)
    ['1', '2']
    """
    if _is_async_callable(f):
        msg = f"fp.map({short_name(f)}) got an async function; use fp.map_async({short_name(f)})"
        raise PipelineDefinitionError(msg)
    return _step("map", "map", f, lambda r: r)


@overload
def filter(pred: Callable[[I], TypeGuard[O]]) -> Processor[I, O]: ...  # noqa: A001
@overload
def filter(pred: Callable[[I], object]) -> Processor[I, I]: ...  # noqa: A001
def filter(pred: Callable[[Any], Any]) -> Processor[Any, Any]:  # noqa: A001 - the contract's name
    """Keep the events for which ``pred`` is true; a ``TypeGuard`` predicate narrows the type.

    >>> import flowpump as fp
    >>> fp.from_iterable([1, 2, 3]).pipe(fp.filter(lambda x: x != 2)).take(3)
    [1, 3]
    """
    return _step("filter", "filter", pred, guarded_type)


def flat_map(f: Callable[[I], Iterable[O]]) -> Processor[I, O]:
    """Turn each event into zero or more events (BSPump's generator).

    >>> import flowpump as fp
    >>> fp.from_iterable(["a b", "c"]).pipe(fp.flat_map(str.split)).take(5)
    ['a', 'b', 'c']
    """
    return _step("flat_map", "flat_map", f, item_type)


def tap(f: Callable[[I], object]) -> Processor[I, I]:
    """Call ``f`` on every event for its side effect and pass the event on unchanged.

    >>> import flowpump as fp
    >>> seen = []
    >>> fp.from_iterable([1, 2]).pipe(fp.tap(seen.append)).take(2), seen
    ([1, 2], [1, 2])
    """
    return _step("tap", "tap", f, None)


def map_async(f: Callable[[I], Awaitable[O]], *, concurrency: int = 16, ordered: bool = True) -> Processor[I, O]:
    """Await ``f`` on every event, at most ``concurrency`` at a time.

    With ``ordered=False`` results leave in completion order.

    >>> import asyncio, flowpump as fp
    >>> async def slow_double(x: int) -> int:
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> fp.from_iterable([1, 2]).pipe(fp.map_async(slow_double, concurrency=4)).take(2)
    [2, 4]
    """
    if not isinstance(concurrency, int) or concurrency < 1:
        msg = f"fp.map_async(concurrency={concurrency!r}): concurrency must be an int >= 1"
        raise PipelineDefinitionError(msg)
    return _step("map_async", "map_async", f, awaited_type, concurrency=concurrency, ordered=ordered)


def batch(size: int, timeout: float | None = None) -> Processor[T, list[T]]:
    """Group events into lists of ``size``; a partial list leaves after ``timeout`` seconds.

    >>> import flowpump as fp
    >>> fp.from_iterable(range(5)).pipe(fp.batch(2)).take(5)
    [[0, 1], [2, 3], [4]]
    """
    if not isinstance(size, int) or size < 1:
        msg = f"fp.batch(size={size!r}): size must be an int >= 1"
        raise PipelineDefinitionError(msg)
    if timeout is not None and timeout <= 0:
        msg = f"fp.batch(timeout={timeout!r}): timeout must be > 0 seconds, or None"
        raise PipelineDefinitionError(msg)
    label = f"batch({size}" + (f", {timeout}s)" if timeout is not None else ")")
    return Processor((Step("batch", builtins.list, label, None, None, {"size": size, "timeout": timeout}),))


def unbatch() -> Processor[Iterable[T], T]:
    """Flatten lists (or any iterables) of events back into events.

    >>> import flowpump as fp
    >>> fp.from_iterable([[1, 2], [3]]).pipe(fp.unbatch()).take(5)
    [1, 2, 3]
    """
    return Processor((Step("flat_map", builtins.iter, "unbatch()"),))


def enrich(
    lookup: Lookup[K, V] | KeyLookup[K, V],
    *,
    key: Callable[[I], K],
    merge: Callable[[I, V | None], O],
    concurrency: int = 16,
) -> Processor[I, O]:
    """Join each event with a lookup: ``merge(event, lookup.get(key(event)))``.

    The lookup is read at each event, so a refresh is seen by the next batch. A per-key lookup
    (``Lookup.per_key``) is awaited instead, ``concurrency`` keys at a time, in order.

    >>> import flowpump as fp, asyncio, msgspec, os, pathlib, tempfile
    >>> class User(msgspec.Struct):
    ...     id: str
    ...     name: str
    >>> path = os.path.join(tempfile.mkdtemp(), "users.jsonl")
    >>> _ = pathlib.Path(path).write_text('{"id": "u1", "name": "Ada"}\\n')
    >>> users = fp.Lookup.from_jsonl(path, key=lambda u: u.id, type=User)
    >>> asyncio.run(users.refresh())
    >>> fp.from_iterable(["u1", "u2"]).pipe(
    ...     fp.enrich(users, key=lambda uid: uid, merge=lambda uid, u: (uid, u.name if u else "?"))
    ... ).take(2)
    [('u1', 'Ada'), ('u2', '?')]
    """
    for what, fn in (("key", key), ("merge", merge)):
        if not callable(fn):
            msg = f"fp.enrich({what}={fn!r}) expects a callable, e.g. fp.enrich(users, key=lambda c: c.user, merge=...)"
            raise PipelineDefinitionError(msg)
    from .app.lookups import KeyLookup, Lookup

    if isinstance(lookup, KeyLookup):
        aget = lookup.aget

        async def enriched_async(event: Any) -> Any:
            return merge(event, await aget(key(event)))

        return _named_step(enriched_async, lookup.name, key, merge, "map_async", concurrency=concurrency)
    if not isinstance(lookup, Lookup):
        msg = f"fp.enrich() expects a lookup such as fp.Lookup.from_sql(...), got {lookup!r}"
        raise PipelineDefinitionError(msg)
    get = lookup.get

    def enriched(event: Any) -> Any:
        return merge(event, get(key(event)))

    return _named_step(enriched, lookup.name, key, merge, "map")


def _named_step(
    fn: Callable[..., Any],
    name: str,
    key: Callable[..., Any],
    merge: Callable[..., Any],
    kind: StepKind,
    **options: Any,
) -> Processor[Any, Any]:
    """The enrich step: ``fn`` named after the lookup, typed by the user's key (in) and merge (out)."""
    in_type, out_type = signature_types(key)[0], signature_types(merge)[1]
    hints = {"event": in_type, "return": out_type}
    fn.__annotations__ = {k: v for k, v in hints.items() if v is not None}
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = getattr(merge, "__module__", __name__)
    if kind == "map_async":
        return _step("map_async", "enrich", fn, lambda r: r, concurrency=options["concurrency"], ordered=True)
    return _step("map", "enrich", fn, lambda r: r)
