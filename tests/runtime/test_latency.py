"""Batching adds no latency: a lone event on an idle pipeline goes through at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

import flowpump as fp

#: Only guards against a hang: each event must arrive before the next one is even sent.
GUARD = 30.0


async def idle_source(queue: asyncio.Queue[int | None]) -> AsyncIterator[int]:
    """An async source that is idle until the test feeds it one event."""
    while (x := await queue.get()) is not None:
        yield x


async def _one_at_a_time(build: Callable[[fp.Flow[int], fp.Sink[int]], fp.Pipeline], fuse: bool) -> list[int]:
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    arrived: asyncio.Queue[int] = asyncio.Queue()

    async def deliver(x: int) -> None:
        await arrived.put(x)

    handle = build(fp.from_iterable(idle_source(queue)), fp.sink(deliver)).start(fuse=fuse)
    got = []
    for i in range(5):
        await queue.put(i)
        # The event must reach the sink while the source has nothing else to give.
        got.append(await asyncio.wait_for(arrived.get(), GUARD))
    await queue.put(None)
    report = await handle.wait()
    assert report.events_in == 5
    return got


@pytest.mark.parametrize(
    ("name", "build", "expected"),
    [
        ("direct", lambda src, sink: src >> sink, [0, 1, 2, 3, 4]),
        (
            "fused steps",
            lambda src, sink: src >> fp.map(lambda x: x * 10) >> fp.filter(lambda x: x >= 0) >> sink,
            [0, 10, 20, 30, 40],
        ),
        ("map_async", lambda src, sink: src >> fp.map_async(_plus_one, concurrency=8) >> sink, [1, 2, 3, 4, 5]),
        (
            "batch with timeout",
            lambda src, sink: src >> fp.batch(1000, timeout=0.001) >> fp.unbatch() >> sink,
            [0, 1, 2, 3, 4],
        ),
        ("merge", lambda src, sink: fp.merge(src, fp.from_iterable([])) >> sink, [0, 1, 2, 3, 4]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_lone_event_reaches_the_sink_before_the_next_is_sent(arun, fuse, name, build, expected):
    assert arun(_one_at_a_time(build, fuse)) == expected


async def _plus_one(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


def test_a_lone_event_reaches_a_synchronous_sink(arun, fuse):
    async def main() -> list[str]:
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        got: list[str] = []
        arrived = asyncio.Event()

        def deliver(x: str) -> None:
            got.append(x)
            arrived.set()

        handle = (fp.from_iterable(idle_source(queue)) >> fp.map(str) >> fp.sink(deliver)).start(fuse=fuse)
        for i in range(3):
            arrived.clear()
            await queue.put(i)
            await asyncio.wait_for(arrived.wait(), GUARD)
            assert len(got) == i + 1
        await queue.put(None)
        await handle.wait()
        return got

    assert arun(main()) == ["0", "1", "2"]
