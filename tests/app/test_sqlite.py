"""fp.SQLite, fp.to_sql and fp.read_sql on SQLite files; missing-driver errors."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

import flowpump as fp

from .conftest import until


class Click(msgspec.Struct):
    id: int
    user: str
    value: float


class Tagged(msgspec.Struct):
    id: int
    tags: list[str]
    meta: dict[str, int]
    note: str | None = None


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_to_sql_creates_the_table_and_inserts_structs(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    db = fp.SQLite(path)
    clicks = [Click(i, f"u{i % 3}", i * 1.5) for i in range(1000)]
    report = (fp.from_iterable(clicks) >> fp.to_sql(db, "clicks")).run()
    assert report.events_out == 1000
    assert not db.is_open  # a standalone run releases the connection
    assert _rows(path, "select count(*), sum(value) from clicks") == [(1000, sum(c.value for c in clicks))]
    cols = [r[1:3] for r in _rows(path, "pragma table_info(clicks)")]
    assert cols == [("id", "INTEGER"), ("user", "TEXT"), ("value", "REAL")]


def test_to_sql_upsert_key_updates_existing_rows(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "up.db")
    (fp.from_iterable([Click(1, "a", 1.0), Click(2, "b", 2.0)]) >> fp.to_sql(db, "c", key="id")).run()
    (fp.from_iterable([Click(2, "b2", 20.0), Click(3, "c", 3.0)]) >> fp.to_sql(db, "c", key="id")).run()
    assert _rows(tmp_path / "up.db", "select id, user, value from c order by id") == [
        (1, "a", 1.0),
        (2, "b2", 20.0),
        (3, "c", 3.0),
    ]


def test_to_sql_writes_dicts_and_nested_values_as_json(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "n.db")
    (fp.from_iterable([Tagged(1, ["x", "y"], {"a": 1})]) >> fp.to_sql(db, "t")).run()
    (fp.from_iterable([{"id": 2, "tags": "[]", "meta": "{}", "note": "n"}]) >> fp.to_sql(db, "t")).run()
    assert _rows(tmp_path / "n.db", "select * from t order by id") == [
        (1, '["x","y"]', '{"a":1}', None),
        (2, "[]", "{}", "n"),
    ]
    back = fp.read_sql(db, "select * from t where id = 1", Tagged)
    # JSON text does not convert back to a list by itself: that row is a dead letter, not a crash.
    dead = fp.collect[fp.DeadLetter]()
    report = (back >> fp.collect[Tagged]()).on_error(dead).run()
    assert report.dead_lettered == 1
    assert dead.items[0].stage.startswith("read_sql(")


def test_an_event_missing_a_column_is_dead_lettered(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "d.db")
    dead = fp.collect[fp.DeadLetter]()
    events: list[dict[str, object]] = [{"id": 1, "name": "a"}, {"id": 2}, {"id": 3, "name": "c"}]
    report = (fp.from_iterable(events) >> fp.to_sql(db, "d")).on_error(dead).run()
    assert (report.events_out, report.dead_lettered) == (2, 1)
    assert "KeyError" in dead.items[0].error
    assert _rows(tmp_path / "d.db", "select id from d order by id") == [(1,), (3,)]


def test_an_event_with_a_field_that_is_not_a_column_is_dead_lettered(tmp_path: Path) -> None:
    class Short(msgspec.Struct):
        id: int
        user: str

    db = fp.SQLite(tmp_path / "x.db")
    dead = fp.collect[fp.DeadLetter]()
    events: list[object] = [
        Short(1, "a"),
        {"id": 2, "user": "b"},
        {"id": 3, "user": "c", "amount": 3.0},
        Click(4, "d", 4.0),
        Click(5, "e", 5.0),
        Short(6, "f"),
    ]
    report = (fp.from_iterable(events) >> fp.to_sql(db, "t")).on_error(dead).run()
    assert (report.events_out, report.dead_lettered) == (3, 3)
    assert [d.event for d in dead.items] == [events[2], events[3], events[4]]
    assert "field 'amount' is not a column of t" in dead.items[0].error
    assert all("field 'value' is not a column of t" in d.error for d in dead.items[1:])
    assert _rows(tmp_path / "x.db", "select id from t order by id") == [(1,), (2,), (6,)]


def test_read_sql_converts_rows_into_the_type(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "r.db")
    (fp.from_iterable([Click(i, "u", float(i)) for i in range(5)]) >> fp.to_sql(db, "clicks")).run()
    src = fp.read_sql(db, "select id, user, value from clicks where id >= ? order by id", Click, params=[3])
    assert src.out_type is Click
    assert src.take(10) == [Click(3, "u", 3.0), Click(4, "u", 4.0)]


class Ev(msgspec.Struct):
    id: int
    ts: int


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 5, 100])
def test_read_sql_cursor_reads_rows_sharing_a_value_across_a_page_boundary(tmp_path: Path, batch_size: int) -> None:
    db = fp.SQLite(tmp_path / "ties.db")
    rows = [Ev(i, i // 3) for i in range(10)] + [Ev(10, 7), Ev(11, 7), Ev(12, 7), Ev(13, 7)]
    (fp.from_iterable(rows) >> fp.to_sql(db, "ev")).run()
    src = fp.read_sql(db, "select id, ts from ev", Ev, cursor="ts", batch_size=batch_size)
    got = src.take(100)
    assert sorted(e.id for e in got) == list(range(14))
    assert [e.ts for e in got] == sorted(e.ts for e in got)
    assert src.take(100) == []  # every row acknowledged: a new run reads nothing


def test_read_sql_cursor_reads_each_row_once_across_runs(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "cur.db")
    (fp.from_iterable([Click(i, "u", float(i)) for i in range(7)]) >> fp.to_sql(db, "clicks")).run()
    src = fp.read_sql(db, "select * from clicks", Click, cursor="id", batch_size=3)
    out = fp.collect[Click]()
    pipeline = src >> out
    pipeline.run()
    assert [c.id for c in out.items] == list(range(7))
    (fp.from_iterable([Click(i, "u", float(i)) for i in range(7, 9)]) >> fp.to_sql(db, "clicks")).run()
    pipeline.run()  # the same source goes on after the last acknowledged row
    assert [c.id for c in out.items] == [7, 8]


def test_read_sql_cursor_with_every_polls_new_rows(tmp_path: Path) -> None:
    path = tmp_path / "poll.db"
    db = fp.SQLite(path)
    (fp.from_iterable([Click(0, "u", 0.0)]) >> fp.to_sql(db, "clicks")).run()
    src = fp.read_sql(db, "select * from clicks", Click, cursor="id", every=fp.every(0.02))
    out = fp.collect[Click]()

    async def main() -> fp.RunReport:
        handle = (src >> out).start()
        for i in range(1, 4):
            await until(lambda i=i: len(out.items) >= i, step=0.005)
            writer = sqlite3.connect(path)
            writer.execute("insert into clicks values (?, 'u', 0.0)", (i,))
            writer.commit()
            writer.close()
        await until(lambda: len(out.items) >= 4, step=0.005)
        handle.stop()
        return await handle.wait()

    report = asyncio.run(asyncio.wait_for(main(), 20))
    assert [c.id for c in out.items] == [0, 1, 2, 3]
    assert report.events_in == 4


def test_read_sql_with_a_missing_cursor_column_says_so(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "m.db")
    (fp.from_iterable([Click(0, "u", 0.0)]) >> fp.to_sql(db, "clicks")).run()
    with pytest.raises(fp.PipelineError):
        fp.read_sql(db, "select user from clicks", Click, cursor="user2").take(1)


def test_sqlite_connection_is_reference_counted_and_health_checked(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "h.db")

    async def main() -> None:
        async with db.use():
            assert db.is_open
            async with db.use():
                await db.health()
            assert db.is_open
        assert not db.is_open
        await db.open()
        async with db.use():
            pass
        assert db.is_open  # held open by open() until close()
        await db.close()
        assert not db.is_open

    asyncio.run(main())


def test_using_a_closed_connection_says_how_to_open_it(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "c.db")
    with pytest.raises(fp.app.ConnectionFailedError, match=re.escape("is not open: use it inside an Application")):
        asyncio.run(db.fetch("select 1"))


def test_a_bad_table_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(fp.PipelineDefinitionError, match="not a plain SQL identifier"):
        fp.to_sql(fp.SQLite(tmp_path / "x.db"), "x; drop table y")
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("expects a SQL connection")):
        fp.to_sql("x.db", "t")  # type: ignore[arg-type]


# -- errors that no retry can fix stop the run at once ---------------------------------------------


def _permanent(pipeline: fp.Pipeline) -> fp.PipelineError:
    """Run ``pipeline``; it must stop with a permanent sink error, well before retries would end."""
    t0 = time.perf_counter()
    with pytest.raises(fp.PipelineError) as info:
        pipeline.run()
    assert time.perf_counter() - t0 < 2  # twelve attempts with backoff take about 15 s
    assert isinstance(info.value.__cause__, fp.PermanentSinkError)
    return info.value


def test_a_missing_table_with_create_false_stops_at_once(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "p.db")
    error = _permanent(fp.from_iterable([Click(1, "a", 1.0)]) >> fp.to_sql(db, "nope", create=False))
    assert str(error).startswith(
        "sink 'to_sql(nope)' failed with an error that retrying cannot fix: to_sql(nope): "
        "sqlite3.OperationalError: no such table: nope (table 'nope' does not exist; create it first, "
        "or leave fp.to_sql(..., create=True)); the run stopped at once"
    )
    assert isinstance(error.__cause__.__cause__, sqlite3.OperationalError)
    assert error.report.events_out == 0


def test_an_upsert_without_a_unique_constraint_stops_at_once_and_says_what_to_create(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    con = sqlite3.connect(path)
    con.execute("create table c (id integer, user text, value real)")
    con.close()
    error = _permanent(fp.from_iterable([Click(1, "a", 1.0)]) >> fp.to_sql(fp.SQLite(path), "c", key="id"))
    assert "ON CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint" in str(error)
    assert "create unique index c_id_key on c (id)" in str(error)
    # The hint works as written.
    con = sqlite3.connect(path)
    con.execute("create unique index c_id_key on c (id)")
    con.close()
    (fp.from_iterable([Click(1, "a", 1.0), Click(1, "b", 2.0)]) >> fp.to_sql(fp.SQLite(path), "c", key="id")).run()
    assert _rows(path, "select id, user from c") == [(1, "b")]


def test_a_constraint_violation_stops_at_once(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "k.db")
    (fp.from_iterable([Click(1, "a", 1.0)]) >> fp.to_sql(db, "k", key="id")).run()
    error = _permanent(fp.from_iterable([Click(1, "a", 1.0)]) >> fp.to_sql(db, "k"))
    assert "sqlite3.IntegrityError: UNIQUE constraint failed: k.id" in str(error)


def test_an_upsert_key_that_is_not_a_field_stops_at_once(tmp_path: Path) -> None:
    error = _permanent(
        fp.from_iterable([Click(1, "a", 1.0)]) >> fp.to_sql(fp.SQLite(tmp_path / "f.db"), "f", key="uid")
    )
    assert "upsert key 'uid' is not a field of Click (id, user, value)" in str(error)


def test_sqlite_tells_permanent_errors_from_passing_ones(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    db = fp.SQLite(path)
    con = sqlite3.connect(path, timeout=0)
    con.execute("create table t (id integer)")
    con.commit()
    with pytest.raises(sqlite3.OperationalError) as syntax:
        con.execute("selec 1")
    assert db.is_permanent(syntax.value)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("begin exclusive")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked") as locked:
            con.execute("insert into t values (1)")
    finally:
        holder.execute("rollback")
        holder.close()
        con.close()
    assert not db.is_permanent(locked.value)
    assert not db.is_permanent(ConnectionError("gone"))


def test_an_application_does_not_restart_a_pipeline_with_a_permanent_error(tmp_path: Path) -> None:
    app = fp.Application(restart_delay=0.01)
    db = app.connection("db", fp.SQLite(tmp_path / "a.db"))
    app.add("load", fp.from_iterable([Click(1, "a", 1.0)]) >> fp.to_sql(db, "missing", create=False))
    p = app.run().pipelines["load"]
    assert (p.state, p.restarts, p.runs) == ("failed", 0, 1)
    assert p.last_error is not None
    assert "no such table: missing" in p.last_error


@pytest.mark.parametrize(
    ("module", "make", "extra"),
    [
        ("asyncpg", lambda: fp.Postgres("postgresql://x@127.0.0.1/db"), "postgres"),
        ("aiohttp", lambda: fp.HTTPClient("http://127.0.0.1:1"), "http"),
        ("croniter", lambda: fp.cron("* * * * *"), "app"),
    ],
)
def test_a_missing_driver_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, module: str, make: Any, extra: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    with pytest.raises(fp.MissingDependencyError, match=re.escape(f"pip install 'flowpump[{extra}]'")) as info:
        make()
    assert isinstance(info.value, ImportError)
    assert info.value.extra == extra


def test_importing_flowpump_does_not_import_optional_drivers() -> None:
    import subprocess
    import sys

    code = (
        "import sys, flowpump\n"
        "heavy = [m for m in ('asyncpg', 'aiohttp', 'croniter', 'prometheus_client') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
