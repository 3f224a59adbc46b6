"""fp.Postgres, to_sql/read_sql/Lookup.from_sql on a real PostgreSQL server started by the fixture."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import msgspec
import pytest

import flowpump as fp

from .conftest import PgServer

pytestmark = pytest.mark.slow


class Click(msgspec.Struct):
    id: int
    user: str
    value: float


class User(msgspec.Struct):
    id: str
    name: str


async def _fetch(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    import asyncpg

    con = await asyncpg.connect(dsn)
    try:
        return [tuple(r.values()) for r in await con.fetch(sql)]
    finally:
        await con.close()


def test_to_sql_and_read_sql_round_trip(pg_dsn: str) -> None:
    db = fp.Postgres(pg_dsn)
    clicks = [Click(i, f"u{i % 7}", i / 2) for i in range(5000)]
    report = (fp.from_iterable(clicks) >> fp.to_sql(db, "clicks")).run()
    assert report.events_out == 5000
    assert not db.is_open
    assert asyncio.run(_fetch(pg_dsn, "select count(*), sum(value) from clicks")) == [
        (5000, sum(c.value for c in clicks))
    ]
    back = fp.read_sql(db, 'select id, "user", value from clicks where id < $1 order by id', Click, params=[3]).take(10)
    assert back == clicks[:3]


def test_upsert_on_postgres(pg_dsn: str) -> None:
    db = fp.Postgres(pg_dsn)
    (fp.from_iterable([Click(1, "a", 1.0), Click(2, "b", 2.0)]) >> fp.to_sql(db, "c", key="id")).run()
    (fp.from_iterable([Click(2, "b2", 20.0)]) >> fp.to_sql(db, "c", key="id")).run()
    assert asyncio.run(_fetch(pg_dsn, 'select id, "user", value from c order by id')) == [
        (1, "a", 1.0),
        (2, "b2", 20.0),
    ]


def test_cursor_source_reads_each_row_once(pg_dsn: str) -> None:
    db = fp.Postgres(pg_dsn)
    (fp.from_iterable([Click(i, "u", 0.0) for i in range(10)]) >> fp.to_sql(db, "clicks")).run()
    src = fp.read_sql(db, "select * from clicks", Click, cursor="id", batch_size=4)
    out = fp.collect[Click]()
    (src >> out).run()
    assert [c.id for c in out.items] == list(range(10))
    (fp.from_iterable([Click(10, "u", 0.0)]) >> fp.to_sql(db, "clicks")).run()
    (src >> out).run()
    assert [c.id for c in out.items] == [10]


def test_lookup_from_sql_in_an_application(pg_dsn: str) -> None:
    app = fp.Application()
    db = app.connection("db", fp.Postgres(pg_dsn))
    (fp.from_iterable([User("u1", "Ada")]) >> fp.to_sql(db, "users")).run()
    users = app.lookup("users", fp.Lookup.from_sql(db, "select id, name from users", key=lambda u: u.id, type=User))
    app.add(
        "named",
        fp.from_iterable([Click(1, "u1", 1.0), Click(2, "u2", 2.0)])
        >> fp.enrich(users, key=lambda c: c.user, merge=lambda c, u: {"id": c.id, "name": u.name if u else "?"})
        >> fp.to_sql(db, "named"),
    )
    status = app.run()
    assert status.pipelines["named"].state == "finished"
    assert status.connections["db"].open is False
    assert asyncio.run(_fetch(pg_dsn, "select id, name from named order by id")) == [(1, "Ada"), (2, "?")]


def test_the_database_goes_away_mid_run_and_nothing_is_lost(pg_server: PgServer, pg_dsn: str) -> None:
    """The server stops while rows are being written; once it is back every row is there once."""
    n = 3000
    db = fp.Postgres(pg_dsn, timeout=2.0)
    written = threading.Event()
    outage: dict[str, float] = {}

    async def slow_source() -> Any:
        for i in range(n):
            if i == 1000:
                written.set()
            yield Click(i, "u", float(i))
            if i % 100 == 0:
                await asyncio.sleep(0.01)

    def outage_thread() -> None:
        written.wait(30)
        t0 = time.monotonic()
        pg_server.stop()
        time.sleep(1.5)
        pg_server.start()
        outage["seconds"] = time.monotonic() - t0

    t = threading.Thread(target=outage_thread)
    t.start()
    try:
        report = (fp.from_iterable(slow_source()) >> fp.to_sql(db, "clicks", key="id")).run()
    finally:
        t.join()
    assert outage["seconds"] >= 1.5
    assert report.events_out == n
    rows = asyncio.run(_fetch(pg_dsn, "select count(*), count(distinct id), min(id), max(id) from clicks"))
    assert rows == [(n, n, 0, n - 1)]


def _stops_at_once(pipeline: fp.Pipeline) -> fp.PipelineError:
    t0 = time.perf_counter()
    with pytest.raises(fp.PipelineError) as info:
        pipeline.run()
    assert time.perf_counter() - t0 < 5  # twelve attempts with backoff take about 15 s
    assert isinstance(info.value.__cause__, fp.PermanentSinkError)
    return info.value


@pytest.mark.parametrize("key", [None, "id"], ids=["copy", "insert"])
def test_a_missing_table_with_create_false_stops_at_once(pg_dsn: str, key: str | None) -> None:
    import asyncpg

    db = fp.Postgres(pg_dsn)
    error = _stops_at_once(fp.from_iterable([Click(1, "a", 1.0)]) >> fp.to_sql(db, "nope", key=key, create=False))
    assert isinstance(error.__cause__.__cause__, asyncpg.exceptions.UndefinedTableError)
    assert "asyncpg.UndefinedTableError" in str(error)
    assert "(table 'nope' does not exist; create it first, or leave fp.to_sql(..., create=True))" in str(error)


def test_an_upsert_without_a_unique_constraint_stops_at_once(pg_dsn: str) -> None:
    import asyncpg

    db = fp.Postgres(pg_dsn)
    asyncio.run(_fetch(pg_dsn, 'create table c (id bigint, "user" text, value double precision)'))
    error = _stops_at_once(fp.from_iterable([Click(1, "a", 1.0)]) >> fp.to_sql(db, "c", key="id"))
    assert isinstance(error.__cause__.__cause__, asyncpg.exceptions.InvalidColumnReferenceError)
    assert "no unique or exclusion constraint matching the ON CONFLICT specification" in str(error)
    assert "create unique index c_id_key on c (id)" in str(error)


def test_a_value_of_the_wrong_type_for_its_column_stops_at_once(pg_dsn: str) -> None:
    db = fp.Postgres(pg_dsn)
    asyncio.run(_fetch(pg_dsn, "create table w (id bigint primary key, name text)"))
    error = _stops_at_once(fp.from_iterable([{"id": "seven", "name": "x"}]) >> fp.to_sql(db, "w", key="id"))
    assert "invalid input for query argument $1" in str(error)


def test_postgres_tells_permanent_errors_from_passing_ones(pg_dsn: str) -> None:
    import asyncpg

    db = fp.Postgres(pg_dsn)

    async def syntax_error() -> BaseException:
        async with db.use():
            try:
                await db.fetch("selec 1")
            except asyncpg.exceptions.PostgresError as exc:
                return exc
        raise AssertionError

    error = asyncio.run(syntax_error())
    assert isinstance(error, asyncpg.exceptions.PostgresSyntaxError)
    assert db.is_permanent(error)
    assert not db.is_permanent(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    assert not db.is_permanent(asyncpg.exceptions.CannotConnectNowError("the database system is starting up"))
    assert not db.is_permanent(asyncpg.exceptions.DeadlockDetectedError("deadlock detected"))
    assert not db.is_permanent(OSError("connection refused"))


def test_a_sync_read_while_an_app_runs_in_the_loop_is_refused_and_the_app_goes_on(pg_dsn: str) -> None:
    class R(msgspec.Struct):
        id: int

    db = fp.Postgres(pg_dsn)

    async def gen() -> Any:
        for i in range(1_000_000):
            await asyncio.sleep(0.005)
            yield R(i)

    async def main() -> None:
        app = fp.Application(restart_delay=0.05)
        app.connection("db", db)
        app.add("w", fp.from_iterable(gen()) >> fp.to_sql(db, "t"))
        h = app.start()
        await asyncio.sleep(0.3)
        with pytest.raises(Exception, match=r"await pipeline.arun\(\)"):
            fp.read_sql(db, "select count(*)::int as id from t", R).take(1)
        # In the application's loop it works.
        out = fp.collect[R]()
        await (fp.read_sql(db, "select count(*)::int as id from t", R) >> out).arun()
        assert len(out.items) == 1
        await asyncio.sleep(0.3)
        h.stop()
        st = (await h.wait()).pipelines["w"]
        assert st.restarts == 0
        assert st.last_error is None
        assert st.events_out > 0

    asyncio.run(main())


def test_read_sql_cursor_with_repeating_values_reads_every_row(pg_dsn: str) -> None:
    class Ev(msgspec.Struct):
        id: int
        ts: int

    db = fp.Postgres(pg_dsn)
    (fp.from_iterable([Ev(i, i // 3) for i in range(10)]) >> fp.to_sql(db, "ev")).run()
    for batch_size in (1, 2, 4, 100):
        src = fp.read_sql(db, "select id, ts from ev", Ev, cursor="ts", batch_size=batch_size)
        got = src.take(100)
        assert sorted(e.id for e in got) == list(range(10)), batch_size
