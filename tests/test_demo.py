"""`flowpump demo` in a subprocess: the service runs to completion and every click is accounted for."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

pytestmark = pytest.mark.slow

N = 3000


def _count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def _demo(workdir: Path) -> tuple[str, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "flowpump", "demo", "--dir", str(workdir), "-n", str(N)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    status: dict[str, Any] = msgspec.json.decode((workdir / "status.json").read_bytes())
    return proc.stdout, status


def test_demo_runs_the_service_to_completion_and_accounts_for_every_click(tmp_path: Path) -> None:
    out, status = _demo(tmp_path)
    db = tmp_path / "demo.db"
    assert (tmp_path / "clicks.jsonl").read_bytes().count(b"\n") == N

    clicks, heartbeat = status["pipelines"]["clicks"], status["pipelines"]["heartbeat"]
    assert clicks["state"] == "finished"
    assert (heartbeat["state"], heartbeat["background"]) == ("finished", True)
    assert status["state"] == "stopped"
    assert status["lookups"]["users"]["size"] == 1000
    assert status["lookups"]["users"]["version"] >= 1

    # Every generated click is written, filtered or dead-lettered, and the tables agree with the report.
    assert clicks["events_in"] == N
    written = _count(db, "select count(*) from scored_clicks")
    dead = _count(db, "select count(*) from dead_letters")
    assert written == clicks["events_out"] > 0
    assert dead == clicks["dead_lettered"] > 0
    assert written + clicks["filtered"] + dead == N
    assert clicks["filtered"] > 0
    assert _count(db, "select count(*) from scored_clicks where score < 50") == 0  # filter(keep)
    # Both kinds of dead letters: corrupt lines (4) and clicks by unknown users.
    assert _count(db, "select count(*) from dead_letters where raw is not null") == 4
    assert _count(db, "select count(*) from dead_letters where error like 'LookupError: unknown user%'") == dead - 4
    assert _count(db, "select count(*) from dead_letters where position like 'clicks.jsonl:%'") == dead
    # The heartbeat wrote what its report says, at least the probe fired at the start.
    assert _count(db, "select count(*) from probes") == heartbeat["events_out"] >= 1
    assert clicks["latency"]["count"] == written
    assert clicks["latency_p50"] is not None

    # The output: the plan, each pipeline's report, and rows read back from SQLite.
    assert "enrich(users) >> map(score) >> filter(keep)" in out
    assert "pipeline 'clicks': finished" in out
    assert "pipeline 'heartbeat': finished (background)" in out
    assert f"events in {N}, out {written}, filtered {clicks['filtered']}, dead-lettered {dead} in " in out
    assert f"written {written:,} + filtered {clicks['filtered']:,} + dead-lettered {dead:,} = {N:,}" in out
    assert "LookupError: unknown user 'guest" in out


def test_demo_starts_afresh_in_a_directory_it_used_before(tmp_path: Path) -> None:
    _demo(tmp_path)
    _, status = _demo(tmp_path)
    db = tmp_path / "demo.db"
    clicks = status["pipelines"]["clicks"]
    assert _count(db, "select count(*) from scored_clicks") == clicks["events_out"]
    assert _count(db, "select count(*) from users") == 1000
