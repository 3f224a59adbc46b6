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
