"""RunReport: totals, one entry per stage, and a readable table."""

from __future__ import annotations

import itertools
import threading

import pytest

import flowpump as fp


def parse(s: str) -> int:
    return int(s)


def positive(x: int) -> bool:
    return x > 0


def inverse(x: int) -> float:
    return 1 / (x - 5)


def noop(x: float) -> None:
    return None


def pipeline(out: fp.Sink[float]) -> fp.Pipeline:
    data = ["3", "x", "-1", "5", "0", "7", "y", "10", "5"]
    return fp.from_iterable(data) >> fp.map(parse) >> fp.filter(positive) >> fp.map(inverse) >> fp.tap(noop) >> out


def test_per_stage_counts(fuse):
    out: fp.Collect[float] = fp.collect()
    report = pipeline(out).run(fuse=fuse)
    rows = [(s.label, s.kind, s.role, s.events_in, s.events_out, s.filtered, s.dead_lettered) for s in report.stages]
    assert rows == [
        ("from_iterable(list)", "source", "source", 9, 9, 0, 0),
        ("map(parse)", "map", "step", 9, 7, 0, 2),
        ("filter(positive)", "filter", "step", 7, 5, 2, 0),
        ("map(inverse)", "map", "step", 5, 3, 0, 2),
        ("tap(noop)", "tap", "step", 3, 3, 0, 0),
        ("collect()", "sink", "sink", 3, 3, 0, 0),
    ]
    assert out.items == [1 / (3 - 5), 1 / (7 - 5), 1 / (10 - 5)]
    assert (report.events_in, report.events_out, report.filtered, report.dead_lettered) == (9, 3, 2, 4)
    assert report.events_in == report.events_out + report.filtered + report.dead_lettered
    for s in report.stages:
        if s.kind != "source":
            assert s.events_in == s.events_out + s.filtered + s.dead_lettered, s.label


def test_fused_steps_share_a_group_and_unfused_do_not(fuse):
    report = pipeline(fp.collect()).run(fuse=fuse)
    groups = [s.group for s in report.stages]
    assert groups == ([1, 2, 2, 2, 2, 3] if fuse else [1, 2, 3, 4, 5, 6])
    assert all(s.seconds >= 0 for s in report.stages)
    assert report.seconds > 0
    assert report.events_per_second > 0


def test_str_shows_every_stage_and_the_totals(fuse):
    report = pipeline(fp.collect()).on_error(fp.collect()).run(fuse=fuse)
    text = str(report)
    lines = text.splitlines()
    assert lines[0].split() == ["stage", "in", "out", "filtered", "dead", "seconds"]
    labels = [
        "from_iterable(list)",
        "map(parse)",
        "filter(positive)",
        "map(inverse)",
        "tap(noop)",
        "collect()",
        "collect()",
    ]
    assert len(lines) == 1 + len(labels) + 1
    for line, label, s in zip(lines[1:-1], labels, report.stages, strict=True):
        assert f"[{s.group}] {label}" in line
        assert line.split()[-5:-1] == [str(s.events_in), str(s.events_out), str(s.filtered), str(s.dead_lettered)]
    assert lines[-1].startswith("events in 9, out 3, filtered 2, dead-lettered 4 in ")
    assert "stopped early" not in text


def test_error_branch_is_listed_last_and_kept_out_of_the_totals(fuse):
    report = pipeline(fp.collect()).on_error(fp.filter(lambda d: True) >> fp.collect()).run(fuse=fuse)
    roles = [s.role for s in report.stages]
    assert roles == ["source", "step", "step", "step", "step", "sink", "errors", "errors"]
    errors_sink = report.stages[-1]
    assert (errors_sink.events_in, errors_sink.events_out) == (4, 4)
    assert (report.events_out, report.dead_lettered) == (3, 4)


def test_tee_counts_each_sinks_writes(fuse):
    report = (fp.from_iterable(range(10)) >> fp.tee(fp.collect(), fp.filter(positive) >> fp.collect())).run(fuse=fuse)
    assert report.events_in == 10
    assert report.events_out == 10 + 9
    assert report.filtered == 1


def test_splitting_stages_report_what_they_emitted(fuse):
    report = (fp.from_iterable(range(10)) >> fp.flat_map(lambda x: [x] * 3) >> fp.batch(4) >> fp.collect()).run(
        fuse=fuse
    )
    counts = [(s.kind, s.events_in, s.events_out) for s in report.stages]
    assert counts == [("source", 10, 10), ("flat_map", 10, 30), ("batch", 30, 8), ("sink", 8, 8)]


def test_a_stopped_run_says_so(no_thread_leak):
    enough = threading.Event()

    def write(x: int) -> None:
        if x == 100:
            enough.set()

    handle = (fp.from_iterable(itertools.count()) >> fp.sink(write)).start()
    assert enough.wait(30)
    handle.stop()
    report = handle.result()
    assert report.stopped_early
    assert str(report).endswith(", stopped early")


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_identity_for_one_to_one_pipelines(fuse, n):
    report = (
        fp.from_iterable(range(n))
        >> fp.map(lambda x: x if x % 13 else 1 // 0)
        >> fp.filter(lambda x: x % 3)
        >> fp.tap(lambda x: None)
        >> fp.collect()
    ).run(fuse=fuse)
    assert report.events_in == n
    assert report.events_in == report.events_out + report.filtered + report.dead_lettered
