"""Acknowledgement tickets: a source batch is done when every event derived from it is.

A ``Ticket`` counts the holders of a source batch's events (an envelope in a channel, a pending
dead letter, a partial ``batch()`` buffer). Invariant: each holder releases exactly once, and a
holder that hands events to two places (tee, dead letters, a split) takes an extra hold first.
``AckTracker`` calls ``on_done`` callbacks strictly in source order, so a source that records
an offset never records one past an unfinished batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .._connector import SourceBatch


class AckTracker:
    """Per source: runs ``on_done`` callbacks in the order the batches were read."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: deque[Ticket] = deque()

    def ticket(self, on_done: Callable[[], None] | None) -> Ticket:
        """A ticket with one hold, for a batch just read."""
        t = Ticket(self, on_done)
        self._queue.append(t)
        return t

    def _advance(self) -> None:
        q = self._queue
        while q and q[0].holds == 0:
            cb = q.popleft().on_done
            if cb is not None:
                cb()

    @property
    def pending(self) -> int:
        """Batches read but not yet done."""
        return len(self._queue)


class Ticket:
    """One source batch in flight."""

    __slots__ = ("holds", "on_done", "tracker")

    def __init__(self, tracker: AckTracker, on_done: Callable[[], None] | None) -> None:
        self.tracker = tracker
        self.on_done = on_done
        self.holds = 1

    def release(self) -> None:
        """Give up one hold; the last one completes the batch."""
        self.holds -= 1
        if self.holds == 0:
            self.tracker._advance()  # noqa: SLF001 - the tracker's own ticket


class Envelope:
    """What travels with a batch: the tickets it holds, while known its source batch, and when it was read.

    ``read_at`` is the ``time.perf_counter()`` at which the source batch was read; a sink's
    write time minus ``read_at`` is the batch's latency. A merged envelope keeps the oldest.
    """

    __slots__ = ("_index", "origin", "read_at", "tickets")

    def __init__(self, tickets: Sequence[Ticket], origin: SourceBatch | None, read_at: float | None = None) -> None:
        self.tickets = tickets
        self.origin = origin
        self.read_at = time.perf_counter() if read_at is None else read_at
        self._index: dict[int, int] | None = None

    def hold(self, n: int = 1) -> None:
        """Take ``n`` more holds on every ticket (before handing events to more places)."""
        for t in self.tickets:
            t.holds += n

    def release(self) -> None:
        """Release one hold on every ticket."""
        for t in self.tickets:
            t.release()

    def position_of(self, event: Any) -> str | None:
        """The source position of ``event`` if it is an event of the origin batch itself."""
        origin = self.origin
        if origin is None or origin.positions is None:
            return None
        if self._index is None:
            # Built on the first dead letter only: the happy path never pays for it.
            index: dict[int, int] = {}
            for j, e in enumerate(origin.events):
                index.setdefault(id(e), j)
            self._index = index
        i = self._index.get(id(event))
        if i is None or origin.events[i] is not event:
            return None
        return origin.positions.at(i)

    @staticmethod
    def merged(envs: Sequence[Envelope]) -> Envelope:
        """One envelope holding what all of ``envs`` held (their holds move to it)."""
        if len(envs) == 1:
            return envs[0]
        return Envelope([t for env in envs for t in env.tickets], None, min(env.read_at for env in envs))
