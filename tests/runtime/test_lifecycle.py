"""Running and stopping: run/arun/start/take, and nothing a run creates outlives it."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import flowpump as fp

#: Only guards against a hang.
GUARD = 30.0


class Closing:
    """An endless async generator that records whether its ``finally`` ran."""

    def __init__(self) -> None:
        self.closed = False
        self.produced = 0

    async def events(self) -> AsyncIterator[int]:
        try:
            for i in itertools.count():
                self.produced += 1
                yield i
        finally:
            self.closed = True


async def _tasks_left_by(coro: Any) -> tuple[Any, set[asyncio.Task[Any]]]:
    """Await ``coro`` and return its result (or exception) and the tasks it left behind."""
    before = asyncio.all_tasks()
    try:
        result = await coro
    except Exception as exc:  # noqa: BLE001 - returned to the test
        result = exc
    await asyncio.sleep(0)
    return result, {t for t in asyncio.all_tasks() - before if not t.done()}


def test_run_from_sync_code_returns_the_report(no_thread_leak, fuse):
    out: fp.Collect[int] = fp.collect()
    report = (fp.from_iterable(range(10)) >> fp.map(lambda x: x + 1) >> out).run(fuse=fuse)
    assert isinstance(report, fp.RunReport)
    assert out.items == list(range(1, 11))
    assert not report.stopped_early


def test_arun_leaves_no_task(arun, fuse):
    async def body() -> None:
        async def slow(x: int) -> int:
            await asyncio.sleep(0)
            return x

        out: fp.Collect[int] = fp.collect()
        pipeline = fp.from_iterable(range(100)) >> fp.map_async(slow, concurrency=4) >> fp.batch(7) >> out
        report, left = await _tasks_left_by(pipeline.on_error(fp.collect()).arun(fuse=fuse))
        assert left == set()
        assert isinstance(report, fp.RunReport)
        assert sum(len(b) for b in out.items) == 100

    arun(body())


def test_run_inside_a_running_loop_uses_a_helper_thread(arun, no_thread_leak):
    async def body() -> list[int]:
        out: fp.Collect[int] = fp.collect()
        (fp.from_iterable(range(5)) >> out).run()  # what a notebook cell does
        return out.items

    assert arun(body()) == [0, 1, 2, 3, 4]


def test_start_in_a_running_loop_then_stop_and_wait(arun, fuse):
    async def body() -> None:
        enough = asyncio.Event()
        written: list[int] = []

        def write(x: int) -> None:
            written.append(x)
            if len(written) >= 1000:
                enough.set()

        before = asyncio.all_tasks()
        handle = (fp.from_iterable(itertools.count()) >> fp.map(lambda x: x * 2) >> fp.sink(write)).start(fuse=fuse)
        await enough.wait()
        handle.stop()
        handle.stop()  # harmless
        report = await handle.wait()
        assert report is await handle.wait()
        assert handle.done
        handle.stop()  # after the end: harmless too
        assert report.stopped_early
        # In-flight events still reached the sink: nothing read was lost.
        assert report.events_in == report.events_out == len(written)
        assert written == [2 * x for x in range(len(written))]
        await asyncio.sleep(0)
        assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()
        with pytest.raises(RuntimeError, match=re.escape("use `await handle.wait()`")):
            handle.result()

    arun(body())


def test_start_from_sync_code_runs_on_a_thread(no_thread_leak, fuse):
    written: list[int] = []
    enough = threading.Event()

    def write(x: int) -> None:
        written.append(x)
        if len(written) == 100:
            enough.set()

    handle = (fp.from_iterable(itertools.count()) >> fp.sink(write)).start(fuse=fuse)
    assert enough.wait(GUARD)
    handle.stop()
    report = handle.result()
    assert report.stopped_early
    assert report.events_out == len(written) >= 100
    assert written == list(range(len(written)))


def test_start_from_sync_code_to_completion(no_thread_leak):
    out: fp.Collect[int] = fp.collect()
    handle = (fp.from_iterable(range(50)) >> out).start()
    report = handle.result()
    assert not report.stopped_early
    assert out.items == list(range(50))


@pytest.mark.parametrize("n", [0, 1, 7, 5000])
def test_take_n_on_an_endless_source_returns_exactly_n(fuse, n):
    assert fp.from_iterable(itertools.count()).take(n, fuse=fuse) == list(range(n))


def test_take_after_a_filter_and_flat_map(fuse):
    flow = fp.from_iterable(itertools.count()).filter(lambda x: x % 3 == 0).flat_map(lambda x: [x, -x])
    assert flow.take(5, fuse=fuse) == [0, 0, 3, -3, 6]


def test_take_more_than_there_is():
    assert fp.from_iterable(range(3)).take(10) == [0, 1, 2]


def test_take_rejects_a_negative_count():
    with pytest.raises(fp.PipelineDefinitionError, match="n must be an int >= 0"):
        fp.from_iterable(range(3)).take(-1)


def test_take_on_an_endless_async_generator_closes_it(fuse, no_thread_leak):
    gen = Closing()
    assert fp.from_iterable(gen.events()).take(10, fuse=fuse) == list(range(10))
    assert gen.closed


def test_stopping_an_async_generator_source_closes_it_in_the_running_loop(arun, fuse):
    async def body() -> None:
        gen = Closing()
        out: fp.Collect[int] = fp.collect()
        flowing = asyncio.Event()
        handle = (fp.from_iterable(gen.events()) >> fp.tap(lambda x: x < 100 or flowing.set()) >> out).start(fuse=fuse)
        await flowing.wait()
        handle.stop()
        report = await handle.wait()
        # Its ``finally`` ran when the run ended, not whenever the loop shuts down.
        assert gen.closed
        assert report.events_out == len(out.items)

    arun(body())


def test_a_failing_run_leaves_no_task_and_closes_its_source(arun, fuse, fast_retry):
    def broken(x: int) -> None:
        raise OSError("disk full")

    async def body() -> None:
        gen = Closing()
        pipeline = fp.from_iterable(gen.events()) >> fp.map(lambda x: x) >> fp.sink(broken)
        error, left = await _tasks_left_by(pipeline.arun(fuse=fuse))
        assert isinstance(error, fp.PipelineError)
        assert left == set()
        assert gen.closed

    arun(body())


def test_a_failing_source_stops_the_run_naming_it(arun, fuse):
    async def flaky() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise ConnectionResetError("peer went away")

    async def body() -> None:
        out: fp.Collect[int] = fp.collect()
        error, left = await _tasks_left_by((fp.from_iterable(flaky()) >> out).arun(fuse=fuse))
        assert isinstance(error, fp.PipelineError)
        assert error.stage == "from_iterable(async_generator)"
        assert "peer went away" in str(error)
        assert isinstance(error.__cause__, ConnectionResetError)
        assert left == set()

    arun(body())


def test_a_failing_sync_source_stops_the_run(fuse):
    def numbers() -> Any:
        yield 1
        raise ValueError("bad input")

    with pytest.raises(fp.PipelineError, match="bad input") as info:
        (fp.from_iterable(numbers()) >> fp.collect()).run(fuse=fuse)
    assert info.value.stage == "from_iterable(generator)"
    assert info.value.report is not None


def test_a_pipeline_can_run_again():
    out: fp.Collect[int] = fp.collect()
    pipeline = fp.from_iterable(range(3)) >> out
    first = pipeline.run()
    second = pipeline.run()
    assert out.items == [0, 1, 2]
    assert first.events_out == second.events_out == 3


def test_take_inside_a_running_loop_leaves_no_task_and_no_thread(arun, no_thread_leak, fuse):
    async def body() -> list[int]:
        result, left = await _tasks_left_by(_call(lambda: fp.from_iterable(itertools.count()).take(5, fuse=fuse)))
        assert left == set()
        return result

    assert arun(body()) == [0, 1, 2, 3, 4]


def test_atake_in_a_running_loop_closes_its_async_generator(arun, no_thread_leak, fuse):
    async def body() -> list[int]:
        gen = Closing()
        result, left = await _tasks_left_by(fp.from_iterable(gen.events()).atake(5, fuse=fuse))
        assert left == set()
        assert gen.closed
        return result

    assert arun(body()) == [0, 1, 2, 3, 4]


def test_run_or_take_inside_a_running_loop_refuses_an_async_iterable_source(arun, no_thread_leak):
    async def body() -> list[int]:
        queue: asyncio.Queue[int | None] = asyncio.Queue()

        async def items() -> AsyncIterator[int]:
            while (x := await queue.get()) is not None:
                yield x

        for x in (1, 2, None):
            queue.put_nowait(x)
        src = fp.merge(fp.from_iterable([0]), fp.from_iterable(items()))
        hint = "use `await pipeline.arun()` (or `await flow.atake(n)`)"
        with pytest.raises(fp.PipelineDefinitionError, match=re.escape(hint)):
            src.take(3)
        with pytest.raises(fp.PipelineDefinitionError, match=re.escape("'from_iterable(async_generator)'")):
            (src >> fp.collect()).run()
        return sorted(await src.atake(3))  # nothing was read by the refused runs

    assert arun(body()) == [0, 1, 2]


def test_stop_from_another_thread_wakes_a_run_in_the_loop(arun):
    async def body() -> fp.RunReport:
        async def quiet() -> AsyncIterator[int]:
            yield 1
            await asyncio.sleep(3600)
            yield 2

        handle = (fp.from_iterable(quiet()) >> fp.collect()).start()
        await asyncio.sleep(0.05)
        errors: list[BaseException] = []

        def stop() -> None:
            time.sleep(0.1)  # the loop is idle meanwhile, waiting in select()
            try:
                handle.stop()
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        t = threading.Thread(target=stop)
        t.start()
        try:
            # Handed to the loop's thread, the stop wakes the idle loop at once; set from the
            # other thread directly (not thread-safe), it would wait for the loop's next timer.
            return await asyncio.wait_for(handle.wait(), 2)
        finally:
            t.join(GUARD)
            assert errors == []

    assert arun(body()).stopped_early


async def _call(f: Any) -> Any:
    return f()


def test_a_failing_blocking_run_leaves_no_thread(no_thread_leak, fuse, fast_retry):
    def broken(x: int) -> None:
        raise OSError("disk full")

    with pytest.raises(fp.PipelineError):
        (fp.from_iterable(itertools.count()) >> fp.sink(broken)).run(fuse=fuse)
    handle = (fp.from_iterable(itertools.count()) >> fp.sink(broken)).start(fuse=fuse)
    with pytest.raises(fp.PipelineError, match="disk full"):
        handle.result()


def test_every_source_is_checked_before_any_sink_is_opened(fuse):
    from flowpump._connector import RunContext, SinkSpec, SinkWriter, SourceBatch, SourceSpec

    class Unreachable(SourceSpec):
        label = "unreachable"

        def check(self) -> None:
            raise OSError("host down")

        async def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
            yield SourceBatch([1])

    opened: list[str] = []

    class Opening(SinkSpec):
        async def open(self, ctx: RunContext) -> SinkWriter:
            opened.append(self.label)
            raise AssertionError("opened before the sources were checked")

    merged = fp.merge(fp.from_iterable([1]), fp.Source(Unreachable()))
    with pytest.raises(
        fp.PipelineError, match=re.escape("source 'unreachable' cannot be read: OSError: host down")
    ) as info:
        (merged >> fp.Sink(Opening())).on_error(fp.Sink(Opening())).run(fuse=fuse)
    assert info.value.stage == "unreachable"
    assert opened == []
