"""Bounded channels (backpressure, coalescing, end of stream) and ack tickets, unit by unit."""

from __future__ import annotations

import asyncio

from flowpump.runtime._acks import AckTracker, Envelope
from flowpump.runtime._channel import Channel


def envelope(tracker: AckTracker, done: list[int], i: int) -> Envelope:
    return Envelope([tracker.ticket(lambda: done.append(i))], None)


def test_put_waits_while_the_channel_is_full(arun):
    async def body() -> None:
        tracker, done = AckTracker(), []
        ch = Channel(capacity=2, producers=1, max_batch=100)
        await ch.put([1], envelope(tracker, done, 1))
        await ch.put([2], envelope(tracker, done, 2))
        third = asyncio.create_task(ch.put([3], envelope(tracker, done, 3)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not third.done()  # held back: the channel is full
        item = await ch.get()
        assert item is not None
        assert item[0] == [1, 2]
        await third
        assert (await ch.get() or ([], None))[0] == [3]

    arun(body())


def test_get_joins_waiting_batches_up_to_max_batch(arun):
    async def body() -> None:
        tracker, done = AckTracker(), []
        ch = Channel(capacity=8, producers=1, max_batch=5)
        for i in range(4):
            await ch.put([i * 2, i * 2 + 1], envelope(tracker, done, i))
        await ch.close()
        first = await ch.get()
        second = await ch.get()
        assert first is not None
        assert second is not None
        assert first[0] == [0, 1, 2, 3, 4, 5]  # joined until at least max_batch events
        assert second[0] == [6, 7]
        assert await ch.get() is None  # the end mark survives the join
        first[1].release()
        assert done == [0, 1, 2]
        second[1].release()
        assert done == [0, 1, 2, 3]

    arun(body())


def test_a_lone_batch_keeps_its_envelope(arun):
    async def body() -> None:
        tracker, done = AckTracker(), []
        ch = Channel(capacity=8, producers=1, max_batch=100)
        env = envelope(tracker, done, 0)
        events = [1]
        await ch.put(events, env)
        item = await ch.get()
        assert item is not None
        assert item[0] is events
        assert item[1] is env

    arun(body())


def test_end_of_stream_after_the_last_producer_closes(arun):
    async def body() -> None:
        tracker, done = AckTracker(), []
        ch = Channel(capacity=8, producers=3, max_batch=100)
        await ch.close()
        await ch.close()
        await ch.put(["late"], envelope(tracker, done, 0))
        item = await ch.get()
        assert item is not None
        assert item[0] == ["late"]
        await ch.close()
        assert await ch.get() is None

    arun(body())


def test_acks_run_in_source_order_whatever_the_release_order():
    tracker, done = AckTracker(), []
    envs = [envelope(tracker, done, i) for i in range(4)]
    envs[2].release()
    envs[1].hold()
    envs[1].release()
    assert done == []
    assert tracker.pending == 4
    envs[0].release()
    assert done == [0]
    envs[1].release()
    assert done == [0, 1, 2]
    envs[3].release()
    assert done == [0, 1, 2, 3]
    assert tracker.pending == 0


def test_a_merged_envelope_releases_every_ticket():
    tracker, done = AckTracker(), []
    merged = Envelope.merged([envelope(tracker, done, i) for i in range(3)])
    merged.hold(2)
    merged.release()
    merged.release()
    assert done == []
    merged.release()
    assert done == [0, 1, 2]
