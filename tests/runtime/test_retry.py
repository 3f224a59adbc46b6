"""A failing sink is retried with backoff; if it keeps failing the run stops with PipelineError."""

from __future__ import annotations

import logging

import pytest

import flowpump as fp


def test_fp_sink_retry_resumes_at_the_failing_event(fuse, fast_retry, caplog):
    written: list[int] = []
    failures = {"left": 2}

    def write(x: int) -> None:
        if x == 17 and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("flaky")
        written.append(x)

    with caplog.at_level(logging.WARNING, logger="flowpump"):
        report = (fp.from_iterable(range(100)) >> fp.map(lambda x: x) >> fp.sink(write)).run(fuse=fuse)

    # Nothing lost, nothing written twice.
    assert written == list(range(100))
    assert report.events_out == 100
    retries = [r for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert [r.getMessage().split(":")[0] for r in retries] == [
        "sink 'sink(write)' failed (attempt 1 of 5)",
        "sink 'sink(write)' failed (attempt 2 of 5)",
    ]


def test_async_fp_sink_retry_resumes_at_the_failing_event(fuse, fast_retry):
    written: list[int] = []
    failures = {"left": 2}

    async def write(x: int) -> None:
        if x == 42 and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("flaky")
        written.append(x)

    (fp.from_iterable(range(100)) >> fp.sink(write)).run(fuse=fuse)
    assert written == list(range(100))


def test_a_batch_sink_is_retried_whole(batch_sink, fuse, fast_retry):
    sink = batch_sink(fail_first=2)
    report = (fp.from_iterable(range(1000)) >> fp.Sink(sink)).run(fuse=fuse)
    assert sink.items == list(range(1000))
    assert sink.calls == len(sink.batches) + 2
    assert report.events_out == 1000


def test_a_sink_that_keeps_failing_stops_the_run(batch_sink, fuse, fast_retry):
    sink = batch_sink(fail_first=10**9, attempts=3)
    with pytest.raises(fp.PipelineError) as info:
        (fp.from_iterable(range(10)) >> fp.Sink(sink)).run(fuse=fuse)
    error = info.value
    assert error.stage == "batch_sink"
    assert str(error).startswith("sink 'batch_sink' failed 3 times in a row, last with ConnectionError")
    assert isinstance(error.__cause__, ConnectionError)
    assert isinstance(error.report, fp.RunReport)
    assert error.report.events_out == 0
    assert sink.calls == 3
    assert sink.closed == 1  # the writer is closed even when the run fails


def test_an_error_sink_that_keeps_failing_stops_the_run(arun, fuse, fast_retry):
    def broken(d: fp.DeadLetter) -> None:
        raise OSError("dead-letter store down")

    def bad(x: int) -> int:
        raise ValueError(x)

    pipeline = (fp.from_iterable(range(100_000)) >> fp.map(bad) >> fp.collect()).on_error(fp.sink(broken))
    with pytest.raises(fp.PipelineError) as info:
        arun(pipeline.arun(fuse=fuse))
    assert info.value.stage == "sink(broken)"
    assert isinstance(info.value.__cause__, OSError)


def test_a_permanent_sink_error_stops_the_run_at_once(fuse, caplog):
    calls: list[int] = []

    def write(x: int) -> None:
        calls.append(x)
        if x == 5:
            raise fp.PermanentSinkError("table 't' does not exist") from KeyError("t")

    with caplog.at_level(logging.WARNING, logger="flowpump"), pytest.raises(fp.PipelineError) as info:
        (fp.from_iterable(range(10)) >> fp.sink(write)).run(fuse=fuse)
    error = info.value
    assert str(error) == (
        "sink 'sink(write)' failed with an error that retrying cannot fix: table 't' does not exist; "
        "the run stopped at once and the unwritten input was not acknowledged."
    )
    assert error.stage == "sink(write)"
    assert isinstance(error.__cause__, fp.PermanentSinkError)
    assert isinstance(error.__cause__.__cause__, KeyError)
    assert calls == [0, 1, 2, 3, 4, 5]  # written once, never retried
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    assert error.report.events_out < 10
