"""Live progress: the terminal bar, bounded-source percentages, and stopping an interrupted run."""

from __future__ import annotations

import asyncio
import gzip
import io
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

import flowpump as fp
from flowpump._live import SourceTotal, TerminalBar, Ticker, View, choose_view, in_notebook
from flowpump.runtime._report import RunReport
from flowpump.runtime._run import RunHandle


class P(msgspec.Struct):
    x: int


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def square(x: int) -> int:
    return x * x


def pipeline(n: int = 100) -> fp.Pipeline:
    return fp.from_iterable(range(n)) >> fp.map(square) >> fp.collect()


async def endless() -> AsyncIterator[int]:
    i = 0
    while True:
        await asyncio.sleep(0.001)
        i += 1
        yield i


def test_not_a_notebook_here() -> None:
    assert not in_notebook()


def test_progress_true_draws_the_bar_and_ends_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    report = pipeline().run(progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\r")
    assert err.endswith("\n")
    last = err.rstrip("\n").split("\r")[-1]
    assert "100%" in last
    assert f"{report.events_in} in · {report.events_out} out" in last


def test_no_bar_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline().run()
    pipeline().run(progress=False)
    assert capsys.readouterr().err == ""


def test_a_quick_run_on_a_terminal_leaves_no_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    assert isinstance(choose_view(pipeline(), None, keep_table=False, tty=True), TerminalBar)
    assert choose_view(pipeline(), None, keep_table=True, tty=False) is None
    pipeline().run()
    assert tty.getvalue() == ""


def test_start_and_arun_draw_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    handle = pipeline().start(progress=True)
    handle.result(10)
    assert "100%" in capsys.readouterr().err
    pipeline().start().result(10)
    assert capsys.readouterr().err == ""
    asyncio.run(pipeline().arun(progress=True))
    assert "100%" in capsys.readouterr().err


def test_bar_text() -> None:
    out = io.StringIO()
    bar = TerminalBar(pipeline(), out)
    report = pipeline().run()
    bar.rate = 12_345
    line = bar.line(report, 0.25)
    # StringIO has no encoding: the bar falls back to ASCII; a UTF-8 stream gets blocks.
    assert line.startswith("flowpump  25% |#####               | 100 in · 100 out · 12.3k ev/s")
    utf8 = TerminalBar(pipeline(), io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert "|█████     " in utf8.line(report, 0.25)
    assert "%" not in bar.line(report, None)
    bar.update(report)
    bar.finish(report, None)
    assert out.getvalue().count("\r") == 2
    assert out.getvalue().endswith("\n")


def test_failure_is_shown_on_the_bar(capsys: pytest.CaptureFixture[str]) -> None:
    def boom(x: int) -> int:
        raise ValueError(x)

    bad = fp.from_iterable(range(3)) >> fp.map(boom) >> fp.collect()
    bad.run(progress=True)  # per-event failures are dead letters, not run failures
    assert "3 dead" in capsys.readouterr().err


def test_sized_sources_are_exact() -> None:
    total = SourceTotal(pipeline(40))
    assert total.exact
    assert total.total == 40
    assert total.fraction(10) == 0.25
    merged = fp.merge(fp.from_iterable([1, 2]), fp.from_iterable([3, 4])) >> fp.collect()
    assert SourceTotal(merged).total == 4
    assert SourceTotal(fp.from_iterable(endless()) >> fp.collect()).fraction(5) is None


def test_file_sources_are_estimated_from_their_size(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(P(i)) + b"\n" for i in range(5000)))
    total = SourceTotal(fp.read_jsonl(path, P) >> fp.collect())
    assert not total.exact
    assert total.total == pytest.approx(5000, rel=0.05)
    assert total.fraction(10**6) == 0.99  # an estimate never claims to be done
    gz = tmp_path / "p.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert SourceTotal(fp.read_jsonl(gz, P) >> fp.collect()).total is None


def test_a_source_may_report_its_own_progress() -> None:
    p = pipeline(4)
    spec = p.flow.origin
    spec.progress = lambda: (3, 12)  # type: ignore[union-attr]
    try:
        assert SourceTotal(p).fraction(0) == 0.25
    finally:
        del spec.progress  # type: ignore[union-attr]


class Interrupting(View):
    """A view whose first update raises KeyboardInterrupt, as Ctrl-C in a waiting cell would."""

    interval = 0.01

    def __init__(self, p: fp.Pipeline) -> None:
        super().__init__(p)
        self.outcome: tuple[RunReport | None, BaseException | None] | None = None

    def update(self, report: RunReport) -> None:
        raise KeyboardInterrupt

    def finish(self, report: RunReport | None, error: BaseException | None) -> None:
        self.outcome = (report, error)


def test_interrupting_a_blocking_run_stops_it() -> None:
    p = fp.from_iterable(endless()) >> fp.collect()
    handle = RunHandle(p, fuse=True, thread=True)
    view = Interrupting(p)
    with pytest.raises(KeyboardInterrupt):
        handle.block(Ticker(view, handle.snapshot, delay=0))
    assert handle.done
    assert handle.result().stopped_early
    assert view.outcome is not None
    assert isinstance(view.outcome[1], KeyboardInterrupt)
