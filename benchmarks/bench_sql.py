"""Rows/s into SQLite and PostgreSQL: ``fp.to_sql`` against hand-written batched insert loops.

Run: ``python benchmarks/bench_sql.py [-n ROWS] [--pg DSN]``. Without ``--pg`` a throwaway
PostgreSQL server is started (initdb + pg_ctl on a free loopback port) when its binaries are
installed. Every contender writes the same rows into a fresh table, in the same process and run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator

import msgspec

import flowpump as fp

BATCH = 4096  # what the hand-written loops use; fp.to_sql gets the runtime's batches


class Click(msgspec.Struct):
    id: int
    user: str
    value: float


def rows(n: int) -> list[Click]:
    return [Click(i, f"u{i % 1000}", i * 0.5) for i in range(n)]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- SQLite ---------------------------------------------------------------------------------------
def sqlite_by_hand(path: str, data: list[Click]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("pragma journal_mode=wal")
    db.execute("pragma synchronous=normal")
    db.execute('create table clicks ("id" INTEGER, "user" TEXT, "value" REAL)')
    for i in range(0, len(data), BATCH):
        db.execute("begin")
        db.executemany("insert into clicks values (?, ?, ?)", [(c.id, c.user, c.value) for c in data[i : i + BATCH]])
        db.execute("commit")
    db.close()


def sqlite_fp(path: str, data: list[Click], key: str | None = None) -> None:
    (fp.from_iterable(data) >> fp.to_sql(fp.SQLite(path), "clicks", key=key)).run()


# -- PostgreSQL -----------------------------------------------------------------------------------
async def _pg_reset(dsn: str) -> None:
    import asyncpg

    con = await asyncpg.connect(dsn)
    await con.execute("drop table if exists clicks")
    await con.close()


async def _pg_by_hand(dsn: str, data: list[Click], copy: bool, upsert: bool = False) -> None:
    import asyncpg

    con = await asyncpg.connect(dsn)
    key = ", primary key (id)" if upsert else ""
    await con.execute(f'create table clicks ("id" BIGINT, "user" TEXT, "value" DOUBLE PRECISION{key})')
    insert = "insert into clicks values ($1, $2, $3)"
    if upsert:
        insert += ' on conflict (id) do update set "user" = excluded."user", "value" = excluded."value"'
    for i in range(0, len(data), BATCH):
        chunk = [(c.id, c.user, c.value) for c in data[i : i + BATCH]]
        if copy:
            await con.copy_records_to_table("clicks", records=chunk)
        else:
            async with con.transaction():
                await con.executemany(insert, chunk)
    await con.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not found:
        yield None
        return
    bindir = os.path.dirname(found[0])
    datadir = tempfile.mkdtemp(prefix="flowpump-bench-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    initdb = [*as_user, f"{bindir}/initdb", "-D", datadir, "-U", "bench", "--auth=trust", "--no-sync"]
    subprocess.run(initdb, check=True, capture_output=True)
    ctl = [*as_user, f"{bindir}/pg_ctl", "-D", datadir]
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {datadir}"
    subprocess.run([*ctl, "-o", opts, "-l", f"{datadir}/log", "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://bench@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(datadir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=int(os.environ.get("FLOWPUMP_BENCH_SQL_ROWS", 200_000)))
    parser.add_argument("--pg", help="PostgreSQL DSN (default: start a throwaway server)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender; the best is reported")
    args = parser.parse_args()
    data = rows(args.n)
    results: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        contenders: list[tuple[str, Callable[[str], None]]] = [
            ("hand-written executemany loop", lambda p: sqlite_by_hand(p, data)),
            ("fp.to_sql", lambda p: sqlite_fp(p, data)),
            ("fp.to_sql(key='id') upsert", lambda p: sqlite_fp(p, data, key="id")),
        ]
        best: dict[str, float] = {}
        for r in range(args.repeat):  # interleaved, so a slow moment of the machine hits everyone
            for i, (name, fn) in enumerate(contenders):
                path = os.path.join(tmp, f"b{r}-{i}.db")
                best[name] = min(best.get(name, float("inf")), timed(lambda fn=fn, path=path: fn(path)))  # type: ignore[misc]
        results.extend(("sqlite", name, args.n / best[name]) for name, _ in contenders)
    with contextlib.ExitStack() as stack:
        dsn = args.pg or stack.enter_context(throwaway_postgres())
        if dsn is None:
            print("PostgreSQL: no server binaries and no --pg DSN; skipped")
        else:
            pg: list[tuple[str, Callable[[], object]]] = [
                ("hand-written executemany loop", lambda: asyncio.run(_pg_by_hand(dsn, data, copy=False))),
                ("hand-written COPY loop", lambda: asyncio.run(_pg_by_hand(dsn, data, copy=True))),
                ("hand-written upsert loop", lambda: asyncio.run(_pg_by_hand(dsn, data, copy=False, upsert=True))),
                ("fp.to_sql (COPY)", lambda: (fp.from_iterable(data) >> fp.to_sql(fp.Postgres(dsn), "clicks")).run()),
                (
                    "fp.to_sql(key='id') upsert",
                    lambda: (fp.from_iterable(data) >> fp.to_sql(fp.Postgres(dsn), "clicks", key="id")).run(),
                ),
            ]
            best = {}
            for _ in range(args.repeat):
                for name, fn in pg:
                    asyncio.run(_pg_reset(dsn))
                    best[name] = min(best.get(name, float("inf")), timed(fn))
            results.extend(("postgres", name, args.n / best[name]) for name, _ in pg)
    print(f"{args.n:,} rows of Click(id: int, user: str, value: float), batches of {BATCH}, best of {args.repeat}")
    for db, name, rate in results:
        print(f"  {db:9} {name:32} {rate:>12,.0f} rows/s")


if __name__ == "__main__":
    main()
