"""fp.batch(size, timeout) and fp.unbatch()."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import flowpump as fp


def test_batch_groups_by_size_with_a_partial_tail(drain, fuse, stage_of):
    got = drain(fp.from_iterable(range(10)) >> fp.batch(3), fuse=fuse)
    assert got.items == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    st = stage_of(got.report, "batch(3)")
    assert (st.events_in, st.events_out) == (10, 4)


def test_batch_of_many_events_keeps_order_and_sizes(drain, fuse):
    got = drain(fp.from_iterable(range(10_000)) >> fp.batch(64), fuse=fuse)
    assert [len(b) for b in got.items[:-1]] == [64] * (len(got.items) - 1)
    assert [x for b in got.items for x in b] == list(range(10_000))


def test_batch_timeout_flushes_a_partial_batch_from_a_slow_source(arun, fuse):
    async def main() -> list[list[int]]:
        written = asyncio.Event()
        got: list[list[int]] = []

        async def slow_source() -> AsyncIterator[int]:
            for i in range(3):
                yield i
            # Nothing more arrives until the partial batch reached the sink: without the
            # timeout flush this would never finish.
            await written.wait()
            for i in range(3, 5):
                yield i

        async def write(b: list[int]) -> None:
            got.append(b)
            written.set()

        await (fp.from_iterable(slow_source()) >> fp.batch(100, timeout=0.005) >> fp.sink(write)).arun(fuse=fuse)
        return got

    assert arun(main()) == [[0, 1, 2], [3, 4]]


def test_unbatch_flattens_lists(drain, fuse, stage_of):
    got = drain(fp.from_iterable([[1, 2], [], [3]]) >> fp.unbatch(), fuse=fuse)
    assert got.items == [1, 2, 3]
    st = stage_of(got.report, "unbatch()")
    assert (st.events_in, st.events_out) == (3, 3)


def test_batch_then_unbatch_is_the_identity(drain, fuse):
    got = drain(fp.from_iterable(range(1000)) >> fp.batch(7) >> fp.unbatch(), fuse=fuse)
    assert got.items == list(range(1000))


def test_batch_labels():
    assert fp.batch(3).label == "batch(3)"
    assert fp.batch(3, timeout=0.5).label == "batch(3, 0.5s)"


@pytest.mark.parametrize(
    ("size", "timeout", "message"),
    [
        (0, None, "size must be an int >= 1"),
        (2.5, None, "size must be an int >= 1"),
        (2, 0, "timeout must be > 0 seconds"),
        (2, -1.0, "timeout must be > 0 seconds"),
    ],
)
def test_batch_arguments_are_validated(size, timeout, message):
    with pytest.raises(fp.PipelineDefinitionError, match=message):
        fp.batch(size, timeout)
