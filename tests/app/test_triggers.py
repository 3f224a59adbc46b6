"""Triggers and fp.poll, on virtual time (no real sleeps)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest

import flowpump as fp
from flowpump.app.clock import VirtualClock, use_clock

from .conftest import until


async def _collect(trigger: fp.app.Trigger, clock: VirtualClock, advance: float, *, step: float = 1.0) -> list[float]:
    seen: list[float] = []

    async def consume() -> None:
        async for t in trigger.ticks(clock):
            seen.append(t)

    task = asyncio.create_task(consume())
    moved = 0.0
    while moved < advance:
        await clock.advance(step)
        moved += step
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return seen


def test_every_fires_at_a_fixed_rate() -> None:
    clock = VirtualClock()
    assert asyncio.run(_collect(fp.every(10), clock, 35)) == [10.0, 20.0, 30.0]


def test_every_immediately_fires_at_the_start_too() -> None:
    clock = VirtualClock()
    assert asyncio.run(_collect(fp.every(10, immediately=True), clock, 25)) == [0.0, 10.0, 20.0]


def test_every_does_not_make_up_missed_ticks_twice() -> None:
    # A consumer busy for 25s after the first tick gets one late tick at once (the missed
    # ones at 20 and 30 are not replayed), then the schedule continues on the 10s grid.
    clock = VirtualClock()

    async def main() -> list[float]:
        ticks = fp.every(10).ticks(clock)
        first = asyncio.ensure_future(anext(ticks))
        await clock.advance(35)
        out = [await first]
        for _ in range(2):
            nxt = asyncio.ensure_future(anext(ticks))
            await clock.advance(5)
            out.append(await nxt)
        await ticks.aclose()  # type: ignore[attr-defined]
        return out

    assert asyncio.run(main()) == [10.0, 35.0, 40.0]


@pytest.mark.parametrize("bad", [0, -1, "5", True])
def test_every_rejects_bad_periods(bad: object) -> None:
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("seconds must be a number > 0")):
        fp.every(bad)  # type: ignore[arg-type]


def test_cron_fires_on_wall_clock_minutes() -> None:
    start = datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC).timestamp()
    clock = VirtualClock(start)
    ticks = asyncio.run(_collect(fp.cron("*/5 * * * *"), clock, 700, step=10))
    walls = [datetime.fromtimestamp(start + t, UTC).strftime("%H:%M:%S") for t in ticks]
    assert walls == ["00:05:00", "00:10:00"]


def test_cron_rejects_a_bad_expression() -> None:
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("not a valid cron expression")):
        fp.cron("every five minutes")


def test_once_fires_once_then_ends() -> None:
    async def main() -> list[float]:
        return [t async for t in fp.once().ticks(VirtualClock())]

    assert asyncio.run(main()) == [0.0]


def test_on_fires_on_publish_and_coalesces_bursts() -> None:
    hub = fp.app.triggers.Hub()

    async def main() -> int:
        fired = 0
        with fp.app.triggers.use_hub(hub):
            ticks = fp.on("refresh").ticks(VirtualClock())

            async def consume() -> None:
                nonlocal fired
                async for _ in ticks:
                    fired += 1

            task = asyncio.create_task(consume())
            await asyncio.sleep(0)
            hub.publish("refresh")
            hub.publish("refresh")  # before the subscriber ran: coalesced
            hub.publish("other")
            for _ in range(5):
                await asyncio.sleep(0)
            hub.publish("refresh")
            for _ in range(5):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return fired

    assert asyncio.run(main()) == 2


def test_poll_calls_a_sync_function_on_each_tick() -> None:
    calls: list[float] = []
    clock = VirtualClock(autojump=True)

    def probe() -> int:
        calls.append(clock.monotonic())
        return len(calls)

    src = fp.poll(probe, every=fp.every(60))
    assert src.out_type is int
    with use_clock(clock):
        assert src.take(3) == [1, 2, 3]
    assert calls == [60.0, 120.0, 180.0]


def test_poll_async_function_none_skipped_and_errors_dead_lettered() -> None:
    n = 0

    async def probe() -> str | None:
        nonlocal n
        n += 1
        if n == 2:
            return None
        if n == 3:
            msg = "probe is down"
            raise RuntimeError(msg)
        return f"v{n}"

    src = fp.poll(probe, every=fp.every(1))
    assert src.out_type is str
    out = fp.collect[str]()
    dead = fp.collect[fp.DeadLetter]()
    with use_clock(VirtualClock(autojump=True)):
        handle_report = asyncio.run(_run_until(src >> out, dead, lambda: len(out.items) >= 2))
    assert out.items == ["v1", "v4"]
    assert [d.error for d in dead.items] == ["RuntimeError: probe is down"]
    assert dead.items[0].position == "poll(probe, every(1s))#3"
    assert handle_report.dead_lettered == 1


async def _run_until(pipeline: fp.Pipeline, dead: fp.Collect[fp.DeadLetter], cond: object) -> fp.RunReport:
    handle = pipeline.on_error(dead).start()
    await until(cond, step=0)  # type: ignore[arg-type]
    handle.stop()
    return await handle.wait()


def test_poll_types_flow_into_the_build_time_check() -> None:
    def probe() -> int:
        return 1

    def shout(s: str) -> str:
        return s.upper()

    with pytest.raises(
        fp.PipelineTypeError, match=re.escape("expects `str`, but 'poll(probe, every(5s))' produces `int`")
    ):
        fp.poll(probe, every=fp.every(5)) >> fp.map(shout)  # type: ignore[operator]


def test_poll_stops_promptly_while_waiting_for_a_tick() -> None:
    async def main() -> fp.RunReport:
        clock = VirtualClock()
        with use_clock(clock):
            handle = (fp.poll(lambda: 1, every=fp.cron("0 0 1 1 *")) >> fp.collect[int]()).start()
            await clock.advance(1)
            handle.stop()
            return await asyncio.wait_for(handle.wait(), 5)

    report = asyncio.run(main())
    assert report.events_in == 0
    assert report.stopped_early


def test_poll_once_in_an_application_and_on_topic_via_publish() -> None:
    app = fp.Application(clock=VirtualClock(autojump=True))
    got = fp.collect[str]()
    app.add("once", fp.poll(lambda: "hello", every=fp.once()) >> got)
    assert app.run().pipelines["once"].state == "finished"
    assert got.items == ["hello"]

    app2 = fp.Application()
    pings = fp.collect[int]()
    counter = iter(range(100))
    app2.add("pinged", fp.poll(lambda: next(counter), every=fp.on("ping")) >> pings)

    async def main() -> None:
        handle = app2.start()
        for _ in range(3):
            await until(lambda: app2.state == "running", step=0)
            for _ in range(20):
                await asyncio.sleep(0)
            app2.publish("ping")
            for _ in range(50):
                await asyncio.sleep(0)
        handle.stop()
        await handle.wait()

    asyncio.run(main())
    assert pings.items == [0, 1, 2]


def test_poll_rejects_non_callables_and_non_triggers() -> None:
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("fp.poll() expects a callable")):
        fp.poll(42, every=fp.once())  # type: ignore[call-overload]
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("expects a trigger such as fp.every(60)")):
        fp.poll(lambda: 1, every=60)  # type: ignore[arg-type]
