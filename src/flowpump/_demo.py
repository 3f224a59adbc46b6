"""``flowpump demo``: a small service on SQLite, with a lookup and a trigger, run to completion.

In ``DIR`` (``--dir``, default ``demo-out``) the demo writes a clickstream of ``n`` clicks as JSON
lines (a few corrupt lines, a few clicks by users nobody knows) and a ``users`` table in the
SQLite file ``demo.db``; then it runs this application::

    app = fp.Application()
    db = app.connection("db", fp.SQLite("demo.db"))
    users = app.lookup("users", fp.Lookup.from_sql(db, "select id, name, tier from users",
                       key=lambda u: u.id, type=User), refresh=fp.every(0.2))
    app.add("clicks",
            (fp.read_jsonl("clicks.jsonl", Click)
             >> fp.enrich(users, key=lambda c: c.user, merge=named)   # unknown user: dead letter
             >> fp.map(score) >> fp.filter(keep)
             >> fp.to_sql(db, "scored_clicks")).on_error(fp.to_sql(db, "dead_letters")))
    app.add("heartbeat", fp.poll(probe, every=fp.every(0.1, immediately=True))
            >> fp.to_sql(db, "probes"), background=True)
    app.run()

``clicks`` ends with its file; ``heartbeat`` is a background pipeline, stopped once ``clicks``
has ended, so the application runs to completion by itself. The demo prints each pipeline's
report, reads a few results back from SQLite, and writes the final status (what ``/status``
serves) to ``status.json``. It needs nothing beyond flowpump's core dependencies and the
standard library's sqlite3.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path

import msgspec

from . import _ops as ops
from ._errors import DeadLetter
from ._graph import Pipeline
from .app.application import Application, AppStatus
from .app.connections import SQLite
from .app.lookups import Lookup
from .app.poll import poll
from .app.triggers import every
from .connectors.files import read_jsonl
from .connectors.sql import read_sql, to_sql

KINDS = ("view", "click", "buy", "share")
KIND_WEIGHT = {"view": 0.5, "click": 1.0, "buy": 4.0, "share": 2.0}
TIERS = ("free", "pro", "team")
TIER_WEIGHT = {"free": 1.0, "pro": 1.5, "team": 2.0}
NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus")
#: Users in the users table; clicks name them, and now and then a guest nobody knows.
USERS = 1000
#: The lookup's refresh and the heartbeat's period, in seconds.
REFRESH = 0.2
HEARTBEAT = 0.1


class Click(msgspec.Struct):
    """One raw click from the sample clickstream."""

    id: int
    user: str
    kind: str
    value: float
    ts: float


class User(msgspec.Struct):
    """A row of the users table: what the lookup holds."""

    id: str
    name: str
    tier: str


class Named(msgspec.Struct):
    """A click joined with its user."""

    click: Click
    user: User


class Scored(msgspec.Struct):
    """A scored click, as the demo writes it to ``scored_clicks``."""

    id: int
    user: str
    name: str
    tier: str
    kind: str
    score: float


class Probe(msgspec.Struct):
    """One heartbeat: when, the lookup's size and version, and how far ``clicks`` has read."""

    at: float
    users: int
    users_version: int
    clicks_read: int


def named(c: Click, u: User | None) -> Named:
    """Join a click with its user; a click by an unknown user is an error (a dead letter)."""
    if u is None:
        msg = f"unknown user {c.user!r}"
        raise LookupError(msg)
    return Named(c, u)


def score(n: Named) -> Scored:
    """Score a click: its value weighted by the kind of click and the user's tier."""
    c, u = n.click, n.user
    return Scored(c.id, c.user, u.name, u.tier, c.kind, c.value * KIND_WEIGHT[c.kind] * TIER_WEIGHT[u.tier])


def keep(s: Scored) -> bool:
    """Keep the clicks that scored 50 or more."""
    return s.score >= 50


def make_clicks(path: Path, n: int, *, seed: int = 7) -> None:
    """Write ``n`` sample clicks as JSON lines: 4 corrupt lines, about 1 % by unknown users."""
    rng = random.Random(seed)
    bad_every = max(n // 4, 2)
    guest_every = max(n // 100, 3)
    enc = msgspec.json.Encoder()
    t0 = 1_700_000_000.0
    with path.open("wb") as f:
        for i in range(n):
            if i % bad_every == bad_every - 1:
                f.write(b'{"id": %d, "user": "u1", "kind": "click", "value": "oops"}\n' % i)
                continue
            user = f"guest{i}" if i % guest_every == guest_every - 2 else f"u{rng.randrange(USERS)}"
            c = Click(i, user, rng.choice(KINDS), round(rng.uniform(0, 100), 2), t0 + i)
            f.write(enc.encode(c) + b"\n")


def make_users(db: Path, *, seed: int = 11) -> None:
    """Create the ``users`` table (``USERS`` rows) in a fresh SQLite file."""
    rng = random.Random(seed)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    con = sqlite3.connect(db)
    try:
        con.execute("create table users (id text primary key, name text not null, tier text not null)")
        rows = [(f"u{i}", f"{NAMES[i % len(NAMES)]} {i}", rng.choice(TIERS)) for i in range(USERS)]
        con.executemany("insert into users values (?, ?, ?)", rows)
        con.commit()
    finally:
        con.close()


def build(src: Path, db_path: Path) -> tuple[Application[None], Pipeline]:
    """The demo application (a SQLite connection, the users lookup, ``clicks``, ``heartbeat``) and ``clicks``."""
    app: Application[None] = Application()
    db = app.connection("db", SQLite(db_path))
    users = app.lookup(
        "users",
        Lookup.from_sql(db, "select id, name, tier from users", key=lambda u: u.id, type=User),
        refresh=every(REFRESH),
    )
    clicks = app.add(
        "clicks",
        (
            read_jsonl(src, Click)
            >> ops.enrich(users, key=lambda c: c.user, merge=named)
            >> ops.map(score)
            >> ops.filter(keep)
            >> to_sql(db, "scored_clicks")
        ).on_error(to_sql(db, "dead_letters")),
    )

    def probe() -> Probe:
        read = app.status().pipelines["clicks"].events_in
        return Probe(time.time(), len(users), users.version, read)

    app.add("heartbeat", poll(probe, every=every(HEARTBEAT, immediately=True)) >> to_sql(db, "probes"), background=True)
    return app, clicks


class _Row(msgspec.Struct):
    tier: str
    clicks: int
    avg_score: float


def _count(db: Path, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(f"select count(*) from {table}").fetchone()[0])
    finally:
        con.close()


def _show(status: AppStatus, app: Application[None], root: Path, db_path: Path) -> None:
    for name, report in app.reports.items():
        p = status.pipelines[name]
        print(f"\npipeline {name!r}: {p.state}{' (background)' if p.background else ''}")
        print(report)
    lk = status.lookups["users"]
    times = "once" if lk.version == 1 else f"{lk.version} times"
    print(f"\nlookup 'users': {lk.size:,} entries, loaded {times} (at the start, then every {REFRESH:g}s)")

    clicks = status.pipelines["clicks"]
    written, dead, probes = (_count(db_path, t) for t in ("scored_clicks", "dead_letters", "probes"))
    print(f"\nread back from {db_path}:")
    print(
        f"  scored_clicks {written:>9,} rows   written {written:,} + filtered {clicks.filtered:,} + "
        f"dead-lettered {dead:,} = {written + clicks.filtered + dead:,} of {clicks.events_in:,} clicks"
    )
    db = SQLite(db_path)
    by_tier = read_sql(
        db,
        "select tier, count(*) as clicks, round(avg(score), 1) as avg_score from scored_clicks "
        "group by tier order by tier",
        _Row,
    ).take(10)
    print("    by tier: " + ", ".join(f"{r.tier} {r.clicks:,} (avg score {r.avg_score})" for r in by_tier))
    for s in read_sql(db, "select * from scored_clicks order by score desc, id limit 3", Scored).take(3):
        print(f"    {s}")
    print(f"  dead_letters  {dead:>9,} rows")
    # One of each kind: a line that did not decode (its raw bytes kept), a click by an unknown user.
    for where in ("raw is not null", "event is not null"):
        query = f"select * from dead_letters where {where} order by rowid limit 1"
        for d in read_sql(db, query, DeadLetter).take(1):
            print(f"    {d.position}  {d.stage}: {d.error}")
    print(f"  probes        {probes:>9,} rows")
    for pr in read_sql(db, "select * from probes order by at limit 2", Probe).take(2):
        print(f"    {pr}")
    print(f"\nfinal status (as /status serves it) in {root / 'status.json'}")


def main(workdir: str = "demo-out", n: int = 200_000) -> int:
    """Generate the data, run the application to completion, print reports and results."""
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    src, db_path = root / "clicks.jsonl", root / "demo.db"
    t0 = time.perf_counter()
    make_clicks(src, n)
    make_users(db_path)
    print(
        f"generated {n:,} clicks in {src} ({os.path.getsize(src) / 1e6:.1f} MB) and {USERS:,} users "
        f"in {db_path} ({time.perf_counter() - t0:.2f}s)"
    )
    app, clicks = build(src, db_path)
    print(
        "\nan fp.Application on SQLite: connection 'db', lookup 'users' (refreshed every "
        f"{REFRESH:g}s),\npipelines 'clicks' and 'heartbeat' (a poll every {HEARTBEAT:g}s, in the "
        "background: stopped when 'clicks' ends)"
    )
    print("\nthe plan of 'clicks':")
    print(clicks.explain())
    t1 = time.perf_counter()
    status = app.run()
    print(f"\nthe application ran to completion in {time.perf_counter() - t1:.2f}s")
    (root / "status.json").write_bytes(msgspec.json.format(msgspec.json.encode(status)))
    _show(status, app, root, db_path)
    failed = [p.name for p in status.pipelines.values() if p.state != "finished"]
    return 1 if failed else 0
