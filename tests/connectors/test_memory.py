"""In-memory connectors: from_iterable (sync and async), collect(), sink(f)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

import pytest

import flowpump as fp


def test_from_iterable_list_generator_and_string(fuse):
    assert fp.from_iterable([3, 1]).take(5, fuse=fuse) == [3, 1]
    assert fp.from_iterable(x * x for x in range(4)).take(5, fuse=fuse) == [0, 1, 4, 9]
    assert fp.from_iterable("ab").take(5, fuse=fuse) == ["a", "b"]


def test_from_iterable_async_generator(fuse):
    async def numbers() -> AsyncIterator[int]:
        for i in range(1000):
            if i % 100 == 0:
                await asyncio.sleep(0)
            yield i

    assert fp.from_iterable(numbers()).take(2000, fuse=fuse) == list(range(1000))


def test_from_iterable_async_iterable_class(fuse):
    class Countdown:
        def __init__(self, n: int) -> None:
            self.n = n

        def __aiter__(self) -> Countdown:
            return self

        async def __anext__(self) -> int:
            if self.n == 0:
                raise StopAsyncIteration
            self.n -= 1
            return self.n

    assert fp.from_iterable(Countdown(3)).take(10, fuse=fuse) == [2, 1, 0]


def test_from_iterable_rejects_non_iterables():
    with pytest.raises(fp.PipelineDefinitionError, match="expects an iterable or async iterable, got int"):
        fp.from_iterable(5)  # type: ignore[call-overload]


def test_collect_holds_the_latest_runs_events(fuse):
    out: fp.Collect[int] = fp.collect[int]()
    pipeline = fp.from_iterable(range(3)) >> out
    pipeline.run(fuse=fuse)
    pipeline.run(fuse=fuse)
    assert out.items == [0, 1, 2]
    assert out.label == "collect()"


def test_sink_calls_a_sync_or_async_function_per_event(fuse):
    got: list[int] = []

    async def store(x: int) -> None:
        await asyncio.sleep(0)
        got.append(-x)

    (fp.from_iterable(range(3)) >> fp.sink(got.append)).run(fuse=fuse)
    (fp.from_iterable(range(3)) >> fp.sink(store)).run(fuse=fuse)
    assert got == [0, 1, 2, 0, -1, -2]
    assert fp.sink(store).label == "sink(store)"
    assert re.fullmatch(r"sink\(<lambda> at test_memory\.py:\d+\)", fp.sink(lambda x: None).label)


def test_sink_rejects_a_non_callable():
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("write fp.sink(print)")):
        fp.sink("out.txt")  # type: ignore[call-overload]


def test_sink_type_is_checked_against_the_flow():
    def store(x: bytes) -> None:
        return None

    with pytest.raises(fp.PipelineTypeError):
        fp.from_iterable([1]) >> fp.map(str) >> fp.sink(store)  # type: ignore[operator]


def test_sink_awaits_async_callables_that_iscoroutinefunction_misses(fuse):
    got: list[int] = []

    async def store(x: int) -> None:
        await asyncio.sleep(0)
        got.append(x)

    class Store:
        async def __call__(self, x: int) -> None:
            await asyncio.sleep(0)
            got.append(-x)

    assert fp.sink(Store()).terminal.is_async
    r1 = (fp.from_iterable(range(5)) >> fp.sink(lambda x: store(x))).run(fuse=fuse)
    r2 = (fp.from_iterable(range(3)) >> fp.sink(Store())).run(fuse=fuse)
    assert got == [0, 1, 2, 3, 4, 0, -1, -2]
    assert (r1.events_out, r2.events_out) == (5, 3)


def test_sink_lambda_returning_a_coroutine_resumes_a_retried_batch_at_the_failed_event(fuse, fast_retry):
    got: list[int] = []
    failed: list[int] = []

    async def store(x: int) -> None:
        if x == 2 and not failed:
            failed.append(x)
            raise OSError("flaky")
        got.append(x)

    (fp.from_iterable([0, 1, 2, 3]) >> fp.sink(lambda x: store(x))).run(fuse=fuse)
    assert got == [0, 1, 2, 3]


def test_from_iterable_over_a_generator_refuses_a_second_run(fuse):
    src = fp.from_iterable(i for i in range(100))
    assert src.take(3, fuse=fuse) == [0, 1, 2]
    with pytest.raises(fp.PipelineDefinitionError, match="consumed by an earlier run; pass a list, or a zero-argument"):
        (src >> fp.collect()).run(fuse=fuse)


def test_from_iterable_over_an_async_generator_refuses_a_second_run(fuse):
    async def numbers() -> AsyncIterator[int]:
        for i in range(100):
            yield i

    src = fp.from_iterable(numbers())
    assert src.take(3, fuse=fuse) == [0, 1, 2]
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("from_iterable(async_generator): this iterator")):
        src.take(3, fuse=fuse)


def test_from_iterable_over_a_list_or_a_reiterable_runs_again(fuse):
    for xs in ([1, 2], range(1, 3), "ab"):
        src = fp.from_iterable(xs)
        assert src.take(5, fuse=fuse) == src.take(5, fuse=fuse) == list(xs)


def test_from_iterable_takes_a_factory_called_once_per_run(fuse):
    calls: list[int] = []

    def fresh() -> Iterator[int]:
        calls.append(1)
        return iter(range(3))

    async def numbers() -> AsyncIterator[int]:
        for i in range(3):
            await asyncio.sleep(0)
            yield -i

    src = fp.from_iterable(fresh)
    assert src.take(5, fuse=fuse) == src.take(5, fuse=fuse) == [0, 1, 2]
    assert len(calls) == 2
    assert src.label == "from_iterable(fresh)"
    asrc = fp.from_iterable(numbers)
    assert asrc.take(5, fuse=fuse) == asrc.take(5, fuse=fuse) == [0, -1, -2]


def test_from_iterable_rejects_a_callable_with_arguments():
    with pytest.raises(fp.PipelineDefinitionError, match="must take no arguments"):
        fp.from_iterable(lambda n: range(n))  # type: ignore[call-overload]
