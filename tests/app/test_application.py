"""fp.Application: lifecycle, supervision, drain, lookup refreshes, status and HTTP."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import flowpump as fp
from flowpump._connector import SinkSpec, SinkWriter
from flowpump.app.clock import VirtualClock
from flowpump.app.connections import Connection

from .conftest import until


class Recorder(Connection):
    """A connection that records when it is opened and closed."""

    def __init__(self, log: list[str], *, fail: bool = False) -> None:
        super().__init__()
        self.log = log
        self.fail = fail
        self.label = "recorder"

    async def _connect(self) -> None:
        self.log.append("open")
        if self.fail:
            msg = "connection refused"
            raise OSError(msg)

    async def _disconnect(self) -> None:
        self.log.append("close")

    async def health(self) -> None:
        self.log.append("health")


class User(msgspec.Struct):
    id: str
    name: str


def _users(path: Path, *users: User) -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(u) + b"\n" for u in users))
    return path


def test_lifecycle_connections_then_lookups_then_pipelines_then_close(tmp_path: Path) -> None:
    log: list[str] = []
    app = fp.Application()
    app.connection("rec", Recorder(log))
    path = _users(tmp_path / "u.jsonl", User("u1", "Ada"))
    users = app.lookup("users", fp.Lookup.from_jsonl(path, key=lambda u: u.id, type=User))

    def first(x: str) -> str:
        log.append(f"pipeline sees {len(users)} user(s)")
        return x

    out = fp.collect[str]()
    app.add(
        "p",
        fp.from_iterable(["u1", "u2"])
        >> fp.map(first)
        >> fp.enrich(users, key=lambda s: s, merge=lambda s, u: u.name if u else "?")
        >> out,
    )
    status = app.run()
    assert log[:3] == ["open", "health", "pipeline sees 1 user(s)"]
    assert log[-1] == "close"
    assert out.items == ["Ada", "?"]
    assert status.state == "stopped"
    p = status.pipelines["p"]
    assert (p.state, p.runs, p.events_in, p.events_out) == ("finished", 1, 2, 2)
    assert status.lookups["users"].size == 1
    assert status.connections["rec"].open is False
    assert msgspec.json.decode(msgspec.json.encode(status))["pipelines"]["p"]["state"] == "finished"


def test_a_connection_that_cannot_open_stops_the_start() -> None:
    log: list[str] = []
    app = fp.Application()
    app.connection("db", Recorder(log, fail=True))
    out = fp.collect[int]()
    app.add("p", fp.from_iterable([1]) >> out)
    with pytest.raises(fp.ApplicationError, match=re.escape("connection 'db' (recorder) failed to open")):
        app.run()
    assert out.items == []
    assert app.state == "failed"


def test_a_lookup_that_cannot_load_stops_the_start(tmp_path: Path) -> None:
    app = fp.Application()
    app.lookup("users", fp.Lookup.from_jsonl(tmp_path / "missing.jsonl", key=lambda u: u.id, type=User))
    with pytest.raises(fp.ApplicationError, match=re.escape("lookup 'users' could not be loaded at start")):
        app.run()


def test_names_are_unique_and_arguments_checked() -> None:
    app = fp.Application()
    app.add("p", fp.from_iterable([1]) >> fp.collect[int]())
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("the name 'p' is already used")):
        app.add("p", fp.from_iterable([1]) >> fp.collect[int]())
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("expects a pipeline (flow >> sink)")):
        app.add("q", fp.from_iterable([1]))  # type: ignore[arg-type]
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("expects fp.SQLite, fp.Postgres or fp.HTTPClient")):
        app.connection("c", "sqlite://x")  # type: ignore[type-var]


class Flaky:
    """A source that breaks in its first ``failures`` runs, after emitting ``per_run`` events."""

    def __init__(self, failures: int, per_run: int = 2) -> None:
        self.failures = failures
        self.per_run = per_run
        self.runs = 0

    def __iter__(self) -> Iterator[int]:
        self.runs += 1
        yield from range(self.per_run)
        if self.runs <= self.failures:
            msg = f"source broke in run {self.runs}"
            raise ConnectionError(msg)


def test_a_failing_pipeline_is_restarted_with_exponential_backoff(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(autojump=True)
    app = fp.Application(clock=clock, restart_delay=1.0, max_restart_delay=8.0)
    flaky = Flaky(failures=4)
    out = fp.collect[int]()
    app.add("flaky", fp.from_iterable(flaky) >> out)
    with caplog.at_level(logging.WARNING, logger="flowpump.app"):
        status = app.run()
    p = status.pipelines["flaky"]
    assert (p.state, p.restarts, p.runs) == ("finished", 4, 5)
    assert p.last_error is not None
    assert "source broke in run 4" in p.last_error
    # Delays 1, 2, 4, 8 seconds of virtual time between the five runs.
    assert clock.monotonic() == 15.0
    delays = [r.getMessage().rsplit(" in ", 1)[1] for r in caplog.records if "restart" in r.getMessage()]
    assert delays == ["1.00s", "2.00s", "4.00s", "8.00s"]
    # Counts add up over all five runs (what a broken run had read is counted, too).
    assert p.events_in == p.events_out > len(out.items) == 2


def test_a_pipeline_that_keeps_failing_is_marked_failed_after_max_restarts() -> None:
    app = fp.Application(clock=VirtualClock(autojump=True), max_restarts=2)
    app.add("bad", fp.from_iterable(Flaky(failures=99)) >> fp.collect[int]())
    app.add("good", fp.from_iterable([1, 2]) >> fp.collect[int]())
    status = app.run()
    assert status.pipelines["bad"].state == "failed"
    assert status.pipelines["bad"].restarts == 2
    assert status.pipelines["good"].state == "finished"


def test_restart_false_fails_at_once() -> None:
    app = fp.Application()
    app.add("bad", fp.from_iterable(Flaky(failures=1)) >> fp.collect[int](), restart=False)
    p = app.run().pipelines["bad"]
    assert (p.state, p.restarts, p.runs) == ("failed", 0, 1)


def test_state_is_visible_while_restarting() -> None:
    clock = VirtualClock()
    app = fp.Application(clock=clock, restart_delay=10.0)
    app.add("flaky", fp.from_iterable(Flaky(failures=1)) >> fp.collect[int]())

    async def main() -> list[str]:
        states = []
        handle = app.start()
        await until(lambda: app.status().pipelines["flaky"].state == "restarting", step=0)
        states.append(app.status().pipelines["flaky"].state)
        await clock.advance(9)
        states.append(app.status().pipelines["flaky"].state)
        await clock.advance(1)
        await handle.wait()
        states.append(app.status().pipelines["flaky"].state)
        return states

    assert asyncio.run(main()) == ["restarting", "restarting", "finished"]


async def _endless() -> AsyncIterator[int]:
    i = 0
    while True:
        yield i
        i += 1
        await asyncio.sleep(0.001)


def test_stop_drains_and_returns_within_the_deadline() -> None:
    log: list[str] = []
    app = fp.Application(drain_timeout=5)
    app.connection("rec", Recorder(log))
    out = fp.collect[int]()
    app.add("endless", fp.from_iterable(_endless()) >> out)

    async def main() -> fp.app.AppStatus:
        handle = app.start()
        await until(lambda: len(out.items) >= 20)
        handle.stop()
        return await asyncio.wait_for(handle.wait(), 5)

    status = asyncio.run(main())
    p = status.pipelines["endless"]
    assert p.state == "stopped"
    assert p.events_in == p.events_out == len(out.items)
    assert out.items == list(range(len(out.items)))
    assert log[-1] == "close"


def test_a_pipeline_that_ignores_stop_is_cancelled_at_the_deadline() -> None:
    release = asyncio.Event()

    async def stuck(x: int) -> int:
        await release.wait()
        return x

    app = fp.Application(drain_timeout=0.2)
    app.add("stuck", fp.from_iterable([1]) >> fp.map_async(stuck) >> fp.collect[int]())

    async def main() -> fp.app.AppStatus:
        handle = app.start()
        await asyncio.sleep(0.05)
        handle.stop()
        return await asyncio.wait_for(handle.wait(), 5)

    assert asyncio.run(main()).pipelines["stuck"].state == "stopped"


def test_lookup_refresh_by_trigger_and_a_failed_refresh_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _users(tmp_path / "u.jsonl", User("u1", "Ada"))
    clock = VirtualClock()
    app = fp.Application(clock=clock)
    users = app.lookup("users", fp.Lookup.from_jsonl(path, key=lambda u: u.id, type=User), refresh=fp.every(60))
    app.add("idle", fp.poll(lambda: 1, every=fp.cron("0 0 1 1 *")) >> fp.collect[int]())

    async def main() -> None:
        handle = app.start()
        await until(lambda: app.state == "running", step=0)
        assert users.version == 1
        _users(path, User("u1", "Ada"), User("u2", "Bob"))
        await clock.advance(60)
        await asyncio.to_thread(lambda: None)  # let the file read (a thread) finish
        await until(lambda: users.version >= 2)
        path.write_text("not json\n")
        with caplog.at_level(logging.WARNING, logger="flowpump.app"):
            await clock.advance(60)
            await until(lambda: app.status().lookups["users"].last_error is not None)
        st = app.status().lookups["users"]
        assert (st.size, st.version, st.failures) == (2, 2, 1)
        assert users.get("u2") == User("u2", "Bob")
        assert any("kept the previous table (2 entries)" in r.getMessage() for r in caplog.records)
        handle.stop()
        await handle.wait()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_publish_refreshes_a_lookup_on_topic(tmp_path: Path) -> None:
    path = _users(tmp_path / "u.jsonl", User("u1", "Ada"))
    app = fp.Application()
    users = app.lookup("users", fp.Lookup.from_jsonl(path, key=lambda u: u.id, type=User), refresh=fp.on("users"))
    app.add("idle", fp.poll(lambda: 1, every=fp.on("never")) >> fp.collect[int]())

    async def main() -> None:
        handle = app.start()
        await until(lambda: app.state == "running", step=0)
        for _ in range(10):
            await asyncio.sleep(0)
        _users(path, User("u9", "Zed"))
        app.publish("users")
        await until(lambda: users.version >= 2)
        assert users.get("u9") == User("u9", "Zed")
        handle.stop()
        await handle.wait()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_start_on_a_thread_and_serve_status_and_metrics(port: int) -> None:
    pytest.importorskip("aiohttp")
    pytest.importorskip("prometheus_client")
    import urllib.request

    app = fp.Application()
    out = fp.collect[int]()
    app.add("numbers", fp.from_iterable(_endless()) >> fp.filter(lambda x: x % 2 == 0) >> out)
    handle = app.start(http=f"127.0.0.1:{port}")
    try:
        handle.wait_until(lambda s: s.state == "running" and s.pipelines["numbers"].events_in > 10)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as resp:
            status: dict[str, Any] = msgspec.json.decode(resp.read())
        assert status["state"] == "running"
        assert status["pipelines"]["numbers"]["state"] == "running"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
        assert re.search(
            r'flowpump_stage_events_in_total\{group="1",pipeline="numbers",role="source",'
            r'stage="from_iterable\(async_generator\)"\} \d+',
            text,
        )
        assert re.search(
            r'flowpump_stage_filtered_total\{group="\d+",pipeline="numbers",role="step",stage="filter\(<lambda> at',
            text,
        )
        assert 'flowpump_pipeline_state{pipeline="numbers",state="running"} 1.0' in text
    finally:
        handle.stop()
        final = handle.result(timeout=10)
    assert final.pipelines["numbers"].state == "stopped"


def test_running_twice_is_refused_and_definitions_are_frozen_once_started() -> None:
    app = fp.Application()
    app.add("idle", fp.poll(lambda: 1, every=fp.on("never")) >> fp.collect[int]())

    async def main() -> None:
        handle = app.start()
        await until(lambda: app.state == "running", step=0)
        with pytest.raises(fp.ApplicationError, match="already running"):
            await app.arun()
        with pytest.raises(fp.PipelineDefinitionError, match="must be called before the application starts"):
            app.add("late", fp.from_iterable([1]) >> fp.collect[int]())
        handle.stop()
        await handle.wait()

    asyncio.run(main())


# -- background pipelines, reports, metrics, progress -------------------------------------------


def test_background_pipelines_are_stopped_once_the_main_ones_end() -> None:
    clock = VirtualClock(autojump=True)
    app = fp.Application(clock=clock)
    out, beats = fp.collect[int](), fp.collect[float]()
    app.add("work", fp.from_iterable(range(100)) >> out)
    app.add("heartbeat", fp.poll(clock.monotonic, every=fp.every(1, immediately=True)) >> beats, background=True)
    status = app.run()
    assert status.state == "stopped"
    assert status.pipelines["work"].state == "finished"
    hb = status.pipelines["heartbeat"]
    assert (hb.state, hb.background) == ("finished", True)
    assert hb.events_in == hb.events_out == len(beats.items) >= 1
    assert set(app.reports) == {"work", "heartbeat"}
    assert app.reports["work"].events_out == 100
    assert app.reports["heartbeat"].events_out == len(beats.items)


def test_a_background_pipeline_waiting_to_restart_is_released_too() -> None:
    clock = VirtualClock()
    app = fp.Application(clock=clock, restart_delay=1000.0)
    app.add("work", fp.from_iterable([1]) >> fp.collect[int]())
    app.add("flaky", fp.from_iterable(Flaky(failures=99)) >> fp.collect[int](), background=True)

    async def main() -> fp.app.AppStatus:
        return await asyncio.wait_for(app.arun(), 10)

    p = asyncio.run(main()).pipelines["flaky"]
    # Released during its 1000 s wait before a restart: it ends at once, as stopped (it had failed).
    assert (p.state, p.runs, p.restarts) == ("stopped", 1, 1)
    assert p.last_error is not None


def test_an_application_of_background_pipelines_only_runs_until_stopped() -> None:
    app = fp.Application()
    out = fp.collect[int]()
    app.add("endless", fp.from_iterable(_endless()) >> out, background=True)

    async def main() -> fp.app.AppStatus:
        handle = app.start()
        await until(lambda: len(out.items) >= 20)
        assert app.state == "running"
        handle.stop()
        return await asyncio.wait_for(handle.wait(), 5)

    assert asyncio.run(main()).pipelines["endless"].state == "stopped"


def test_status_has_latency_and_blocked_time(batch_sink: Any) -> None:
    async def slow_write(events: list[Any]) -> None:
        await asyncio.sleep(0.002)

    n = 200_000  # many more batches than the sink's channel holds: the source waits for room
    app = fp.Application()
    app.add("slow", fp.from_iterable(range(n)) >> fp.Sink(batch_sink(on_write=slow_write)))
    p = app.run().pipelines["slow"]
    assert p.latency.count == p.events_out == n
    assert p.latency_p50 is not None
    assert p.latency_p99 is not None
    assert 0.002 <= p.latency_p50 <= p.latency_p99
    assert p.blocked_seconds == pytest.approx(sum(s.blocked_seconds for s in p.stages))
    assert p.blocked_seconds > 0.02
    encoded = msgspec.json.decode(msgspec.json.encode(app.status()))
    assert encoded["pipelines"]["slow"]["latency"]["count"] == n


def test_metrics_export_latency_as_a_histogram_and_blocked_seconds() -> None:
    pytest.importorskip("prometheus_client")
    from flowpump.app.metrics import metrics_text

    app = fp.Application()
    app.add("nums", fp.from_iterable(range(50)) >> fp.collect[int]())
    app.run()
    text = metrics_text(app).decode()
    assert "# TYPE flowpump_pipeline_latency_seconds histogram" in text
    assert 'flowpump_pipeline_latency_seconds_bucket{le="0.0005",pipeline="nums"}' in text
    assert 'flowpump_pipeline_latency_seconds_bucket{le="+Inf",pipeline="nums"} 50.0' in text
    assert 'flowpump_pipeline_latency_seconds_count{pipeline="nums"} 50.0' in text
    assert re.search(
        r'flowpump_stage_blocked_seconds_total\{group="\d+",pipeline="nums",role="sink",'
        r'stage="collect\(\)"\} [0-9.e-]+',
        text,
    )


def test_metrics_series_are_unique_when_stages_share_a_label() -> None:
    import collections

    from flowpump.app.metrics import metrics_text

    app = fp.Application()
    tee = fp.tee(fp.collect[str](), fp.map(str) >> fp.collect[str]())
    app.add("p", fp.from_iterable(range(10)) >> fp.map(str) >> fp.map(str) >> tee)
    st = app.run().pipelines["p"]
    assert sorted(s.role for s in st.stages).count("sink") == 2
    text = metrics_text(app).decode()
    series = [line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert [k for k, n in collections.Counter(series).items() if n > 1] == []
    sinks = [
        line
        for line in text.splitlines()
        if line.startswith("flowpump_stage_events_in_total") and 'role="sink"' in line
    ]
    assert len(sinks) == 2
    assert all(line.endswith(" 10.0") for line in sinks)


def test_run_draws_a_progress_bar_for_bounded_pipelines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "n.jsonl"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(5000)))
    app = fp.Application()
    app.add("load", fp.read_jsonl(path, int) >> fp.collect[int]())
    app.add("idle", fp.poll(lambda: 1, every=fp.on("never")) >> fp.collect[int](), background=True)
    app.run(progress=True)
    err = capsys.readouterr().err
    last = err.split("\r")[-1]
    # Only the bounded, main pipeline is counted; the bar ends at 100 % (of an estimate: "~").
    assert re.match(r"flowpump load ~?100% \|", last)
    assert "5,000 in · 5,000 out" in last
    assert last.endswith("\n")


def test_no_progress_bar_unless_asked_or_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    app = fp.Application()
    app.add("load", fp.from_iterable(range(10)) >> fp.collect[int]())
    app.run()
    assert capsys.readouterr().err == ""


class _Outage(SinkSpec):
    """A batch sink that is down (writes nothing of a batch) while ``down`` is set."""

    label = "outage"

    def __init__(self, written: list[int], fail_at: int) -> None:
        self.written = written
        self.fail_at = fail_at
        self.attempts = 2
        self.failures = 0

    async def open(self, ctx: Any) -> Any:
        spec = self

        class W(SinkWriter):
            def write(self, events: list[Any]) -> None:
                if spec.failures < 2 and any(e.x == spec.fail_at for e in events):
                    spec.failures += 1
                    raise OSError("target down")
                spec.written.extend(e.x for e in events)

        return W()


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_restarted_file_pipeline_resumes_after_the_acknowledged_lines(tmp_path: Path, suffix: str) -> None:
    import gzip

    class P(msgspec.Struct):
        x: int

    path = tmp_path / f"in{suffix}"
    data = "".join(f'{{"x": {i}}}\n' for i in range(60_000)).encode()
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    written: list[int] = []
    src = fp.read_jsonl(str(path), P)
    app = fp.Application(restart_delay=0.01)
    app.add("load", src >> fp.Sink(_Outage(written, 50_000)))
    st = app.run(progress=False).pipelines["load"]
    assert st.restarts == 1
    assert st.state == "finished"
    assert sorted(written) == list(range(60_000))  # every line exactly once
    assert src.origin.acked_line == 60_000  # type: ignore[union-attr]
    # A fresh run starts at the top.
    again: list[int] = []
    (src >> fp.sink(lambda p: again.append(p.x))).run()
    assert again == list(range(60_000))


def test_run_inside_a_running_loop_says_to_use_arun_or_start() -> None:
    app = fp.Application()
    app.add("p", fp.from_iterable([1]) >> fp.collect[int]())

    async def main() -> None:
        with pytest.raises(fp.ApplicationError, match=r"await app.arun\(\)` or `app.start\(\)"):
            app.run()

    asyncio.run(main())
    assert app.run().pipelines["p"].state == "finished"
