"""In-memory connectors: ``from_iterable``, ``collect``, ``sink(f)``, and the ``take`` sink."""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar, overload

from typing_extensions import TypeVar as TypeVarD

from .._connector import Positions, RunContext, SinkSpec, SinkWriter, SourceBatch, SourceSpec
from .._errors import PipelineDefinitionError
from .._graph import Sink, Source
from .._labels import short_name
from .._typecheck import signature_types

__all__ = ["Collect", "collect", "from_iterable", "sink"]

T = TypeVar("T")
# Default Any so that a bare ``fp.collect()`` is usable without an annotation.
TD = TypeVarD("TD", default=Any)

#: Events an async source may buffer ahead of the pipeline.
ASYNC_BUFFER = 8192


_CONSUMED = (
    "{label}: this iterator was consumed by an earlier run; pass a list, or a zero-argument "
    "callable returning a fresh iterator (fp.from_iterable(lambda: ...))"
)


def _one_shot(xs: Iterable[Any] | AsyncIterable[Any]) -> bool:
    """True for an iterator (sync or async): it can be read by one run only."""
    if isinstance(xs, AsyncIterable):
        return aiter(xs) is xs
    return iter(xs) is xs


class _IterableSource(SourceSpec, Generic[T]):
    def __init__(
        self,
        xs: Iterable[T] | AsyncIterable[T] | None,
        factory: Callable[[], Iterable[T] | AsyncIterable[T]] | None = None,
    ) -> None:
        self.xs = xs
        self.factory = factory
        if xs is not None:
            self.is_async = isinstance(xs, AsyncIterable)
            self.label = f"from_iterable({type(xs).__name__})"
            self.one_shot = _one_shot(xs)
        else:
            assert factory is not None
            self.is_async = inspect.isasyncgenfunction(factory)
            self.label = f"from_iterable({short_name(factory)})"
            self.one_shot = False
        #: Set when a run started reading a one-shot iterator; a later run would get nothing.
        self.consumed = False

    def check(self) -> None:
        if self.one_shot and self.consumed:
            raise PipelineDefinitionError(_CONSUMED.format(label=self.label))

    def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        self.check()
        xs = self.xs
        if xs is None:
            assert self.factory is not None
            xs = self.factory()
            if not isinstance(xs, (Iterable, AsyncIterable)):
                msg = f"{self.label}: the factory returned {type(xs).__name__}, not an iterable or async iterable"
                raise PipelineDefinitionError(msg)
        self.consumed = True
        if isinstance(xs, AsyncIterable):
            return self._async_batches(xs, ctx)
        return self._sync_batches(xs, ctx)

    def _positions(self, start: int) -> Positions:
        return Positions(self.label, start, template="{name}[{n}]")

    async def _sync_batches(self, xs: Iterable[T], ctx: RunContext) -> AsyncIterator[SourceBatch]:
        # Start small so the first events leave at once; grow to max_batch under load.
        size, index = 1, 0
        if type(xs) is list:
            # A list is cut in slices: half the cost of islice() into a new list.
            while not ctx.stopping and index < len(xs):
                chunk = xs[index : index + size]
                yield SourceBatch(chunk, self._positions(index))
                index += len(chunk)
                size = min(size * 2, ctx.max_batch)
                del chunk  # gone before the next slice: its memory is reused while warm
            return
        it = iter(xs)
        while not ctx.stopping:
            chunk = list(itertools.islice(it, size))
            if not chunk:
                return
            yield SourceBatch(chunk, self._positions(index))
            index += len(chunk)
            size = min(size * 2, ctx.max_batch)
            del chunk

    async def _async_batches(self, xs: AsyncIterable[T], ctx: RunContext) -> AsyncIterator[SourceBatch]:
        buf: deque[T] = deque()
        more = asyncio.Event()
        space = asyncio.Event()
        failure: list[BaseException] = []
        finished = False
        it = aiter(xs)

        async def pump() -> None:
            nonlocal finished
            try:
                async for x in it:
                    buf.append(x)
                    more.set()
                    while len(buf) >= ASYNC_BUFFER:
                        space.clear()
                        await space.wait()
            except Exception as exc:  # noqa: BLE001 - re-raised in the pipeline's task
                failure.append(exc)
            finally:
                finished = True
                more.set()

        async def relay_stop() -> None:
            await ctx.stop.wait()
            more.set()

        tasks = [asyncio.create_task(pump()), asyncio.create_task(relay_stop())]
        index = 0
        try:
            while True:
                if not buf:
                    if finished or ctx.stopping:
                        break
                    more.clear()
                    await more.wait()
                    continue
                # Take whatever has arrived: one event when idle, up to max_batch under load.
                n = min(len(buf), ctx.max_batch)
                chunk = [buf.popleft() for _ in range(n)]
                space.set()
                yield SourceBatch(chunk, self._positions(index))
                index += n
                if ctx.stopping:
                    break
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # A run that stops early (stop(), take(n), a failure) closes an async generator
            # now, so its ``finally`` runs inside the run rather than at loop shutdown.
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()
        if failure:
            raise failure[0]


@overload
def from_iterable(xs: Iterable[T]) -> Source[T]: ...
@overload
def from_iterable(xs: AsyncIterable[T]) -> Source[T]: ...
@overload
def from_iterable(xs: Callable[[], Iterable[T]]) -> Source[T]: ...
@overload
def from_iterable(xs: Callable[[], AsyncIterable[T]]) -> Source[T]: ...
def from_iterable(xs: Any) -> Source[Any]:
    """A source over a sync or async iterable (async ones are read as events arrive).

    An iterator (a generator, ``iter(...)``) can be read by one run only; to run a flow again,
    pass a list or a zero-argument callable that returns a fresh iterable for each run.

    >>> import flowpump as fp
    >>> fp.from_iterable("ab").take(5)
    ['a', 'b']
    >>> numbers = fp.from_iterable(lambda: (i * i for i in range(3)))
    >>> numbers.take(5), numbers.take(5)
    ([0, 1, 4], [0, 1, 4])
    """
    if isinstance(xs, (Iterable, AsyncIterable)):
        return Source(_IterableSource(xs))
    if callable(xs):
        try:
            inspect.signature(xs).bind()
        except TypeError:
            msg = f"fp.from_iterable({short_name(xs)}): a callable must take no arguments and return an iterable"
            raise PipelineDefinitionError(msg) from None
        except ValueError:  # no signature (some builtins): find out when it is called
            pass
        return Source(_IterableSource(None, xs))
    msg = (
        f"fp.from_iterable() expects an iterable or async iterable, got {type(xs).__name__} "
        "(or a zero-argument callable returning one)"
    )
    raise PipelineDefinitionError(msg)


class _ListWriter(SinkWriter):
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def write(self, events: list[Any]) -> None:
        self.items.extend(events)


class _CollectSpec(SinkSpec):
    label = "collect()"

    def __init__(self) -> None:
        self.items: list[Any] = []

    async def open(self, ctx: RunContext) -> SinkWriter:
        # Each run starts from an empty list, so a rerun does not mix two runs' events.
        self.items = []
        return _ListWriter(self.items)


class Collect(Sink[TD]):
    """A sink that keeps every event in ``.items`` (the events of the latest run).

    >>> import flowpump as fp
    >>> out = fp.collect[int]()
    >>> _ = (fp.from_iterable([1, 2]) >> out).run()
    >>> out.items
    [1, 2]
    """

    def __init__(self) -> None:
        super().__init__(_CollectSpec())

    @property
    def items(self) -> list[TD]:
        """The events written during the latest run."""
        spec = self.terminal
        assert isinstance(spec, _CollectSpec)
        return spec.items


collect = Collect


class _TakeWriter(_ListWriter):
    def __init__(self, items: list[Any], n: int, ctx: RunContext) -> None:
        super().__init__(items)
        self.n = n
        self.ctx = ctx

    def write(self, events: list[Any]) -> None:
        self.items.extend(events)
        if len(self.items) >= self.n:
            self.ctx.stop.set()


class _TakeSpec(SinkSpec, Generic[T]):
    label = "take()"

    def __init__(self, n: int) -> None:
        if not isinstance(n, int) or n < 0:
            msg = f"take({n!r}): n must be an int >= 0"
            raise PipelineDefinitionError(msg)
        self.n = n
        self.label = f"take({n})"
        self.items: list[T] = []

    async def open(self, ctx: RunContext) -> SinkWriter:
        if self.n == 0:
            ctx.stop.set()
        return _TakeWriter(self.items, self.n, ctx)


class _CallWriter(SinkWriter):
    """Calls ``f`` per event; a retried batch resumes at the event that failed."""

    def __init__(self, f: Callable[[Any], Any], is_async: bool) -> None:
        self.f = f
        self.is_async = is_async
        self._batch: list[Any] | None = None
        self._done = 0

    def _start(self, events: list[Any]) -> int:
        if self._batch is not events:
            self._batch, self._done = events, 0
        return self._done

    def write(self, events: list[Any]) -> Awaitable[None] | None:
        if self.is_async:
            return self._write_async(events)
        f = self.f
        for i in range(self._start(events), len(events)):
            r = f(events[i])
            if r is not None and inspect.isawaitable(r):
                # An async callable that iscoroutinefunction() cannot see (a lambda returning a
                # coroutine): await it, and use the async path from now on.
                self.is_async = True
                return self._resume_async(r, events, i)
            self._done = i + 1
        return None

    async def _resume_async(self, pending: Awaitable[Any], events: list[Any], i: int) -> None:
        await pending
        self._done = i + 1
        await self._write_async(events)

    async def _write_async(self, events: list[Any]) -> None:
        f = self.f
        for i in range(self._start(events), len(events)):
            await f(events[i])
            self._done = i + 1


class _CallSpec(SinkSpec):
    def __init__(self, f: Callable[[Any], Any]) -> None:
        self.f = f
        # Also an object whose ``async def __call__`` iscoroutinefunction() does not see.
        self.is_async = inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(type(f).__call__)
        self.label = f"sink({short_name(f)})"
        self.in_type = signature_types(f)[0]

    async def open(self, ctx: RunContext) -> SinkWriter:
        return _CallWriter(self.f, self.is_async)


@overload
def sink(f: Callable[[T], Awaitable[object]]) -> Sink[T]: ...
@overload
def sink(f: Callable[[T], object]) -> Sink[T]: ...
def sink(f: Callable[[Any], Any]) -> Sink[Any]:
    """A sink that calls ``f`` (sync or async) on every event.

    >>> import flowpump as fp
    >>> got = []
    >>> _ = (fp.from_iterable([1, 2]) >> fp.sink(got.append)).run()
    >>> got
    [1, 2]
    """
    if not callable(f):
        msg = f"fp.sink() expects a callable, got {f!r}: write fp.sink(print)"
        raise PipelineDefinitionError(msg)
    return Sink(_CallSpec(f))
