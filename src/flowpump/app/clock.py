"""Time for triggers, polling and supervision: the system clock, or a virtual one in tests.

Everything in ``flowpump.app`` that waits asks the *current* clock (``current_clock()``), a
context variable: ``Application(clock=...)`` sets it for everything the application runs, and a
test can set it for a block with ``with use_clock(VirtualClock()): ...``. Tasks created inside the
block inherit it (asyncio copies the context into new tasks).

>>> import asyncio
>>> from flowpump.app.clock import VirtualClock
>>> async def main() -> float:
...     clock = VirtualClock()
...     sleeper = asyncio.create_task(clock.sleep(3600))
...     await clock.advance(3600)
...     await sleeper
...     return clock.monotonic()
>>> asyncio.run(main())
3600.0
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import time
from collections.abc import Iterator
from typing import Protocol

__all__ = ["Clock", "SystemClock", "VirtualClock", "current_clock", "use_clock"]


class Clock(Protocol):
    """What a trigger needs: monotonic time, wall time, and a way to sleep until a moment."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean something)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (what cron expressions are matched against)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``monotonic() >= deadline``."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def time(self) -> float:
        """``time.time()``."""
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until ``time.monotonic() >= deadline``."""
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``."""
        await asyncio.sleep(max(seconds, 0.0))


class VirtualClock:
    """A clock that moves only when told to: ``await clock.advance(seconds)``.

    With ``autojump=True`` it also jumps to the next sleeper's deadline whenever the event loop
    has nothing else to do (as trio's ``autojump_clock``), so a test that waits on an hourly
    trigger finishes at once. Wall time is ``start_time`` plus the virtual seconds elapsed.
    """

    def __init__(self, start_time: float = 1_767_225_600.0, *, autojump: bool = False) -> None:
        # Default start: 2026-01-01T00:00:00Z, a round instant that makes cron tests readable.
        self._now = 0.0
        self._start_time = start_time
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._changed: asyncio.Event | None = None
        self._jumper: asyncio.Task[None] | None = None
        self.autojump = autojump

    def monotonic(self) -> float:
        """Virtual seconds since the clock was made."""
        return self._now

    def time(self) -> float:
        """``start_time`` plus the virtual seconds elapsed."""
        return self._start_time + self._now

    async def sleep_until(self, deadline: float) -> None:
        """Wait until the clock has been advanced to ``deadline``."""
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), fut))
        self._wake_jumper()
        await fut

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time."""
        await self.sleep_until(self._now + seconds)

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking sleepers in deadline order.

        After each wake-up the loop runs until it is idle, so the woken tasks can do their work
        (and go back to sleep) before time moves on.
        """
        target = self._now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await settle()
        self._now = max(self._now, target)
        await settle()

    def _wake_jumper(self) -> None:
        if not self.autojump:
            return
        if self._changed is not None:
            self._changed.set()
        if self._jumper is None or self._jumper.done():
            self._changed = asyncio.Event()
            self._jumper = asyncio.get_running_loop().create_task(self._jump_when_idle())

    async def _jump_when_idle(self) -> None:
        assert self._changed is not None
        while True:
            await settle()
            pending = [s for s in self._sleepers if not s[2].done()]
            self._sleepers = pending
            heapq.heapify(self._sleepers)
            if not pending:
                self._changed.clear()
                await self._changed.wait()
                continue
            await self.advance(self._sleepers[0][0] - self._now)

    async def aclose(self) -> None:
        """Stop the autojump helper task (if any)."""
        if self._jumper is not None:
            self._jumper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._jumper
            self._jumper = None


async def settle(max_rounds: int = 10_000) -> None:
    """Yield until no other callback is ready to run in this loop (the loop is idle).

    Invariant used by the virtual clock: when this returns, every task that could make progress
    without time passing (or without real I/O) has done so.
    """
    loop = asyncio.get_running_loop()
    # ``_ready`` is the loop's queue of runnable callbacks (asyncio's BaseEventLoop and uvloop's
    # compatibility attribute); without it, a fixed number of yields is a good approximation.
    ready = getattr(loop, "_ready", None)
    idle_rounds = 0
    for _ in range(max_rounds):
        await asyncio.sleep(0)
        if ready is None:
            idle_rounds += 1
            if idle_rounds > 50:
                return
        elif not ready:
            idle_rounds += 1
            # Two idle rounds in a row: a callback scheduled by the last one has run too.
            if idle_rounds >= 2:
                return
        else:
            idle_rounds = 0


_CLOCK: contextvars.ContextVar[Clock | None] = contextvars.ContextVar("flowpump_clock", default=None)
_SYSTEM = SystemClock()


def current_clock() -> Clock:
    """The clock in force here: the system clock unless ``use_clock`` or an application set one."""
    return _CLOCK.get() or _SYSTEM


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the current clock inside the block (and in tasks created there)."""
    token = _CLOCK.set(clock)
    try:
        yield clock
    finally:
        _CLOCK.reset(token)
