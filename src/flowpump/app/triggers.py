"""Triggers: when to poll a source or refresh a lookup.

A trigger is immutable configuration; ``trigger.ticks()`` starts one schedule of it, an async
iterator that yields the (monotonic) time of each firing on the current clock (see
``flowpump.app.clock``). ``fp.on(topic)`` fires when ``app.publish(topic)`` is called; several
publishes before the subscriber looks are coalesced into one firing (a trigger means "do it
now", not "do it n times").

>>> import asyncio, flowpump as fp
>>> from flowpump.app.clock import VirtualClock, use_clock
>>> async def first_three() -> list[float]:
...     ticks = fp.every(10).ticks()
...     return [await anext(ticks) for _ in range(3)]
>>> with use_clock(VirtualClock(autojump=True)):
...     asyncio.run(first_three())
[10.0, 20.0, 30.0]
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib.util
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from .._errors import PipelineDefinitionError
from .clock import Clock, current_clock

__all__ = ["Hub", "Trigger", "cron", "current_hub", "every", "on", "once", "use_hub"]


class Hub:
    """Publish/subscribe inside one application: ``fp.on(topic)`` subscribes, ``publish`` fires."""

    def __init__(self) -> None:
        self._subscribers: dict[str, weakref.WeakSet[asyncio.Event]] = {}

    def subscribe(self, topic: str) -> asyncio.Event:
        """An event set by every later ``publish(topic)``; the subscriber clears it."""
        event = asyncio.Event()
        self._subscribers.setdefault(topic, weakref.WeakSet()).add(event)
        return event

    def publish(self, topic: str) -> int:
        """Fire ``topic``; return how many subscribers it reached."""
        events = list(self._subscribers.get(topic, ()))
        for event in events:
            event.set()
        return len(events)


_HUB: contextvars.ContextVar[Hub | None] = contextvars.ContextVar("flowpump_hub", default=None)
_DEFAULT_HUB = Hub()


def current_hub() -> Hub:
    """The hub in force here: the running application's, or a process-wide default one."""
    return _HUB.get() or _DEFAULT_HUB


@contextlib.contextmanager
def use_hub(hub: Hub) -> Iterator[Hub]:
    """Make ``hub`` the current hub inside the block (and in tasks created there)."""
    token = _HUB.set(hub)
    try:
        yield hub
    finally:
        _HUB.reset(token)


class Trigger(ABC):
    """When something should happen. Build one with ``fp.every``, ``fp.cron``, ``fp.once``, ``fp.on``."""

    label: str = "trigger"

    @abstractmethod
    def ticks(self, clock: Clock | None = None) -> AsyncIterator[float]:
        """Yield the monotonic time of each firing; end when the trigger never fires again."""

    def __repr__(self) -> str:
        return f"<Trigger {self.label}>"


@dataclass(frozen=True, repr=False)
class _Every(Trigger):
    seconds: float
    immediately: bool

    @property
    def label(self) -> str:  # type: ignore[override]  # a computed label
        return f"every({self.seconds:g}s)"

    async def ticks(self, clock: Clock | None = None) -> AsyncIterator[float]:
        clock = clock or current_clock()
        start = clock.monotonic()
        n = 0 if self.immediately else 1
        while True:
            # Fixed rate: firing n is due at start + n * seconds; a late tick is not made up twice.
            due = start + n * self.seconds
            await clock.sleep_until(due)
            now = clock.monotonic()
            yield now
            n = max(n + 1, int((now - start) // self.seconds) + 1)


def every(seconds: float, *, immediately: bool = False) -> Trigger:
    """Fire every ``seconds`` (fixed rate); with ``immediately=True`` also once at the start.

    >>> import flowpump as fp
    >>> fp.every(60)
    <Trigger every(60s)>
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        msg = f"fp.every({seconds!r}): seconds must be a number > 0, e.g. fp.every(60)"
        raise PipelineDefinitionError(msg)
    return _Every(float(seconds), immediately)


@dataclass(frozen=True, repr=False)
class _Cron(Trigger):
    expr: str

    @property
    def label(self) -> str:  # type: ignore[override]  # a computed label
        return f"cron({self.expr!r})"

    async def ticks(self, clock: Clock | None = None) -> AsyncIterator[float]:
        from croniter import croniter

        clock = clock or current_clock()
        schedule = croniter(self.expr, clock.time())
        while True:
            due_wall = float(schedule.get_next(float))
            # Wall time is mapped to the monotonic clock at each step, so a wall-clock jump
            # delays or advances only the next firing.
            await clock.sleep_until(clock.monotonic() + (due_wall - clock.time()))
            yield clock.monotonic()


def cron(expr: str) -> Trigger:
    """Fire at the times a cron expression (``"*/5 * * * *"``) matches, in UTC wall time.

    Needs croniter: ``pip install 'flowpump[app]'``.

    >>> import flowpump as fp
    >>> fp.cron("*/5 * * * *")
    <Trigger cron('*/5 * * * *')>
    """
    if importlib.util.find_spec("croniter") is None:
        from .connections import MissingDependencyError

        raise MissingDependencyError("croniter", "app", "fp.cron()")  # noqa: EM101 - a structured error
    from croniter import croniter

    if not isinstance(expr, str) or not croniter.is_valid(expr):
        msg = f"fp.cron({expr!r}): not a valid cron expression; e.g. fp.cron('*/5 * * * *') for every 5 minutes"
        raise PipelineDefinitionError(msg)
    return _Cron(expr)


@dataclass(frozen=True, repr=False)
class _Once(Trigger):
    label: str = "once()"

    async def ticks(self, clock: Clock | None = None) -> AsyncIterator[float]:
        clock = clock or current_clock()
        await asyncio.sleep(0)
        yield clock.monotonic()


def once() -> Trigger:
    """Fire once, at the start.

    >>> import flowpump as fp
    >>> fp.once()
    <Trigger once()>
    """
    return _Once()


@dataclass(frozen=True, repr=False)
class _On(Trigger):
    topic: str

    @property
    def label(self) -> str:  # type: ignore[override]  # a computed label
        return f"on({self.topic!r})"

    async def ticks(self, clock: Clock | None = None) -> AsyncIterator[float]:
        clock = clock or current_clock()
        # Subscribe at the first ``anext``: a publish before that is not seen (as with any pub/sub).
        event = current_hub().subscribe(self.topic)
        while True:
            await event.wait()
            event.clear()
            yield clock.monotonic()


def on(topic: str) -> Trigger:
    """Fire whenever ``app.publish(topic)`` is called (publishes in a burst fire once).

    >>> import flowpump as fp
    >>> fp.on("users-changed")
    <Trigger on('users-changed')>
    """
    if not isinstance(topic, str) or not topic:
        msg = f"fp.on({topic!r}): topic must be a non-empty string, e.g. fp.on('users-changed')"
        raise PipelineDefinitionError(msg)
    return _On(topic)
