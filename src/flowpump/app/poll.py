"""``fp.poll(fn, every=trigger)``: a pull source that calls ``fn`` whenever the trigger fires."""

from __future__ import annotations

import asyncio
import inspect
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, overload

from .._connector import Positions, RunContext, SourceBatch, SourceSpec
from .._errors import DeadLetter, PipelineDefinitionError
from .._graph import Source
from .._labels import short_name
from .._typecheck import awaited_type, signature_types
from .triggers import Trigger

__all__ = ["poll", "wait_tick"]

T = TypeVar("T")


def _strip_none(tp: Any) -> Any:
    """``X`` for ``X | None``: a poll that returns None emits nothing."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        return typing.Union[tuple(args)] if args else None  # noqa: UP007 - built at run time
    return None if tp is type(None) else tp


async def wait_tick(ticks: AsyncIterator[float], stop: asyncio.Event) -> bool:
    """Wait for the next tick or for ``stop``; True on a tick, False when stopping or exhausted."""
    if stop.is_set():
        return False
    tick = asyncio.ensure_future(anext(ticks))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((tick, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Both are awaited after cancelling, so the trigger's generator is idle when we return.
        stopper.cancel()
        tick.cancel()
        await asyncio.gather(tick, stopper, return_exceptions=True)
    if tick.cancelled() or isinstance(tick.exception(), StopAsyncIteration):
        return False
    tick.result()  # re-raise what broke the trigger
    return True


class _PollSource(SourceSpec):
    def __init__(self, fn: Callable[[], Any], trigger: Trigger) -> None:
        self.fn = fn
        self.trigger = trigger
        self.is_async = True
        self.label = f"poll({short_name(fn)}, {trigger.label})"
        ret = signature_types(fn)[1]
        if inspect.iscoroutinefunction(fn):
            ret = awaited_type(ret)
        self.out_type = _strip_none(ret)

    async def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        ticks = self.trigger.ticks()
        n = 0
        try:
            while await wait_tick(ticks, ctx.stop):
                n += 1
                try:
                    value = self.fn()
                    if inspect.isawaitable(value):
                        value = await value
                except Exception as exc:  # noqa: BLE001 - a failed poll is a dead letter, polling goes on
                    dead = DeadLetter(
                        stage=self.label, error=f"{type(exc).__name__}: {exc}", position=f"{self.label}#{n}"
                    )
                    yield SourceBatch([], dead=[dead])
                    continue
                if value is not None:
                    yield SourceBatch([value], Positions(self.label, n, template="{name}#{n}"))
        finally:
            aclose = getattr(ticks, "aclose", None)
            if aclose is not None:
                await aclose()


@overload
def poll(fn: Callable[[], Awaitable[T | None]], *, every: Trigger) -> Source[T]: ...
@overload
def poll(fn: Callable[[], T | None], *, every: Trigger) -> Source[T]: ...
def poll(fn: Callable[[], Any], *, every: Trigger) -> Source[Any]:
    """Call ``fn`` (sync or async) each time ``every`` fires; each result is one event.

    A call that returns None emits nothing; a call that raises becomes a dead letter and polling
    goes on. The source ends when the trigger does (``fp.once()``) or when the run is stopped;
    in an application, ``app.add(name, poll_pipeline, background=True)`` stops it once the
    application's other pipelines have ended.

    >>> import flowpump as fp, itertools
    >>> counter = itertools.count()
    >>> def probe() -> int:
    ...     return next(counter)
    >>> fp.poll(probe, every=fp.once()).take(5)
    [0]
    """
    if not callable(fn):
        msg = f"fp.poll() expects a callable, got {fn!r}: write fp.poll(probe, every=fp.every(60))"
        raise PipelineDefinitionError(msg)
    if not isinstance(every, Trigger):
        msg = f"fp.poll(every={every!r}) expects a trigger such as fp.every(60) or fp.cron('*/5 * * * *')"
        raise PipelineDefinitionError(msg)
    return Source(_PollSource(fn, every))
