"""`flowpump run app.py:app --config ... --http ...` in a subprocess; SIGTERM drains without loss."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import msgspec
import pytest

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import asyncio

    import msgspec

    import flowpump as fp


    class Settings(msgspec.Struct):
        input: str
        db: str
        delay: float = 0.0
        upsert: bool = False


    class Row(msgspec.Struct):
        id: int
        payload: str


    app = fp.Application(config=Settings, drain_timeout=30)
    db = app.connection("db", fp.SQLite(app.settings.db))


    async def slow(r: Row) -> Row:
        # An I/O-bound step (think: an API call per event), so the run takes a few seconds.
        if app.settings.delay:
            await asyncio.sleep(app.settings.delay)
        return r


    app.add(
        "load",
        fp.read_jsonl(app.settings.input, Row)
        >> fp.map_async(slow, concurrency=128)
        >> fp.to_sql(db, "rows", key="id" if app.settings.upsert else None),
    )
    """
)


def _ids(db: Path) -> list[int]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("select id from rows order by id")]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _flowpump(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowpump", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_sigterm_drains_and_every_row_lands_exactly_once(tmp_path: Path, port: int) -> None:
    n = 200_000
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b"".join(b'{"id": %d, "payload": "row %d"}\n' % (i, i) for i in range(n)))
    db = tmp_path / "out.db"
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "settings.toml").write_text(f'input = "{src}"\ndb = "{db}"\ndelay = 0.005\n')
    target = f"{tmp_path / 'app.py'}:app"
    proc = _flowpump("run", target, "--config", str(tmp_path / "settings.toml"), "--http", f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while not _ids(db):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no rows written within 30 s"
            time.sleep(0.05)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as resp:
            status = msgspec.json.decode(resp.read())
        assert status["pipelines"]["load"]["state"] == "running"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "load: stopped" in out
    ids = _ids(db)
    # Stopped mid-file; what was read was written whole: a prefix of the input, no gaps, no repeats.
    # (What was already read when the signal came, up to the channels' capacity, is finished.)
    assert 0 < len(ids) < n
    assert ids == list(range(len(ids)))

    # Run again to the end with an upsert key (the table made without one gets a unique index):
    # every input row is in the table exactly once.
    con = sqlite3.connect(db)
    con.execute("create unique index rows_id on rows (id)")
    con.close()
    env = {"FLOWPUMP_DELAY": "0", "FLOWPUMP_UPSERT": "true"}
    proc = _flowpump("run", target, "--config", str(tmp_path / "settings.toml"), env=env)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "load: finished" in out
    assert _ids(db) == list(range(n))


def test_run_reports_bad_settings_with_the_key(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "settings.toml").write_text('input = "x.jsonl"\ndb = 3\n')
    proc = _flowpump("run", f"{tmp_path / 'app.py'}:app", "--config", str(tmp_path / "settings.toml"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "ConfigError: setting `db`" in err
    assert "expected `str`" in err


def test_run_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """`flowpump run app.py:app` with stderr on a terminal: a bar for the bounded pipeline."""
    import pty

    n = 40_000  # about 1.5 s at 5 ms an event, 128 at a time: the bar shows after 1 s
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b"".join(b'{"id": %d, "payload": "row %d"}\n' % (i, i) for i in range(n)))
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "settings.toml").write_text(f'input = "{src}"\ndb = "{tmp_path / "out.db"}"\ndelay = 0.005\n')
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowpump",
                "run",
                f"{tmp_path / 'app.py'}:app",
                "--config",
                str(tmp_path / "settings.toml"),
            ],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
        )
        os.close(slave)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert "load: finished" in out
    bar = b"".join(chunks).decode()
    last = bar.replace("\r\n", "\n").split("\r")[-1]
    assert last.startswith("flowpump load ~100% |"), bar
    assert bar.count("\r") >= 2  # drawn while running, then the final line
    assert f"{n:,} in · {n:,} out" in last


def test_run_of_an_app_whose_pipeline_failed_exits_1(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        textwrap.dedent(
            """
            import flowpump as fp

            def bad(x):
                raise fp.PermanentSinkError("read-only archive")

            app = fp.Application()
            app.add("archive", fp.from_iterable(range(10)) >> fp.sink(bad))
            app.add("beat", fp.from_iterable(range(3)) >> fp.collect(), background=True)
            """
        )
    )
    proc = _flowpump("run", f"{tmp_path / 'bad.py'}:app")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "archive: failed" in out


ENDLESS = textwrap.dedent(
    """
    import asyncio, itertools
    import flowpump as fp

    async def gen():
        for i in itertools.count():
            if i % 100 == 0:
                await asyncio.sleep(0.001)
            yield {"i": i}

    pipe = fp.from_iterable(gen()) >> fp.write_jsonl(OUT)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_pipeline_target_gracefully(tmp_path: Path, sig: signal.Signals) -> None:
    out_path = tmp_path / "endless.jsonl"
    (tmp_path / "endless.py").write_text(ENDLESS.replace("OUT", repr(str(out_path))))
    proc = _flowpump("run", f"{tmp_path / 'endless.py'}:pipe", "--no-progress")
    try:
        deadline = time.monotonic() + 30
        while not out_path.exists() or out_path.stat().st_size == 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped early" in out
    data = out_path.read_bytes()
    assert data.endswith(b"\n")  # the sink flushed whole lines
    lines = data.splitlines()
    assert [msgspec.json.decode(x)["i"] for x in lines] == list(range(len(lines)))
    assert f"out {len(lines)}," in out
