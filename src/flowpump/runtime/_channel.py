"""Bounded channels between tasks.

A channel carries ``(events, envelope)`` items and an end-of-stream mark. Producers wait when it
is full (backpressure). The consumer takes every item already waiting, up to ``max_batch``
events, and joins them: batches grow under load and stay single events when idle.

Time a producer waits on a full channel is added to the channel's ``blocked_seconds`` and to
the ``blocked_seconds`` of the stage the producing task runs (``blocked_stats``, set by each
task of the executor): the report then shows which stage was held back, and for how long.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from ._acks import Envelope
from ._report import StageStats

_EOS = object()

#: The stats of the stage whose task is running: the one a wait on a full channel is charged to.
blocked_stats: contextvars.ContextVar[StageStats | None] = contextvars.ContextVar("flowpump_blocked", default=None)


class Channel:
    """A bounded multi-producer, single-consumer queue of batches."""

    __slots__ = ("_producers", "_queue", "blocked_seconds", "capacity", "max_batch")

    def __init__(self, capacity: int, producers: int, max_batch: int) -> None:
        self.capacity = capacity
        self.max_batch = max_batch
        self._queue: asyncio.Queue[Any] = asyncio.Queue(capacity)
        self._producers = max(producers, 1)
        self.blocked_seconds = 0.0

    async def put(self, events: list[Any], env: Envelope) -> None:
        """Send one batch; waits while the channel is full."""
        q = self._queue
        if q.full():
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await q.put((events, env))
            waited = loop.time() - t0
            self.blocked_seconds += waited
            st = blocked_stats.get()
            if st is not None:
                st.blocked_seconds += waited
        else:
            q.put_nowait((events, env))

    async def close(self) -> None:
        """One producer is done; the last one ends the stream."""
        self._producers -= 1
        if self._producers == 0:
            await self._queue.put(_EOS)

    async def get(self) -> tuple[list[Any], Envelope] | None:
        """The next batch (joined with any others already waiting), or None at the end."""
        q = self._queue
        item = await q.get()
        if item is _EOS:
            return None
        events, env = item
        if q.empty() or len(events) >= self.max_batch:
            return events, env
        joined = list(events)
        envs = [env]
        while not q.empty() and len(joined) < self.max_batch:
            nxt = q.get_nowait()
            if nxt is _EOS:
                # Put the end mark back so the next get() sees it after this batch.
                q.put_nowait(_EOS)
                break
            joined.extend(nxt[0])
            envs.append(nxt[1])
        return joined, Envelope.merged(envs)
