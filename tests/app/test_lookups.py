"""Lookups from files, SQL and HTTP (ETag); failed refreshes keep the table; fp.enrich."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

import flowpump as fp


class User(msgspec.Struct):
    id: str
    name: str


class Click(msgspec.Struct):
    user: str
    value: float


class Named(msgspec.Struct):
    user: str
    name: str
    value: float


def _users(path: Path, *users: User) -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(u) + b"\n" for u in users))
    return path


def test_from_jsonl_refresh_swaps_and_a_failed_refresh_keeps_the_old_table(tmp_path: Path) -> None:
    path = _users(tmp_path / "users.jsonl", User("u1", "Ada"), User("u2", "Bob"))
    users = fp.Lookup.from_jsonl(path, key=lambda u: u.id, type=User)
    assert users.get("u1") is None
    asyncio.run(users.refresh())
    assert (users.get("u1"), len(users), users.version) == (User("u1", "Ada"), 2, 1)
    path.write_text('{"id": "u1", "name": "Ada"}\n{"id": "u2", "nom": 3}\n')
    with pytest.raises(fp.LookupRefreshError, match=re.escape("kept the previous table (2 entries)")) as info:
        asyncio.run(users.refresh())
    assert isinstance(info.value.__cause__, msgspec.ValidationError)
    assert users.get("u2") == User("u2", "Bob")
    assert users.version == 1
    assert users.last_error is not None
    assert "Object missing required field `name`" in users.last_error
    _users(path, User("u3", "Cy"))
    asyncio.run(users.refresh())
    assert (users.get("u2"), users.get("u3"), users.version, users.last_error) == (None, User("u3", "Cy"), 2, None)


def test_from_sql_on_sqlite(tmp_path: Path) -> None:
    db = fp.SQLite(tmp_path / "u.db")
    (fp.from_iterable([User("u1", "Ada"), User("u2", "Bob")]) >> fp.to_sql(db, "users")).run()
    users = fp.Lookup.from_sql(db, "select id, name from users", key=lambda u: u.id, type=User)
    asyncio.run(users.refresh())
    assert users.get("u2") == User("u2", "Bob")
    assert not db.is_open


def test_from_url_uses_etag_and_keeps_the_table_on_errors(http_server: Any) -> None:
    from aiohttp import web

    state: dict[str, Any] = {"body": [{"id": "u1", "name": "Ada"}], "etag": '"v1"', "fail": False, "hits": []}

    async def users_handler(request: web.Request) -> web.Response:
        state["hits"].append(request.headers.get("If-None-Match"))
        if state["fail"]:
            return web.Response(status=503, text="maintenance")
        if request.headers.get("If-None-Match") == state["etag"]:
            return web.Response(status=304)
        return web.json_response(state["body"], headers={"ETag": state["etag"]})

    async def main() -> None:
        async with http_server({"/users": users_handler}) as base:
            client = fp.HTTPClient(base)
            users = fp.Lookup.from_url("/users", key=lambda u: u.id, type=User, client=client)
            await users.refresh()
            assert (users.get("u1"), users.version) == (User("u1", "Ada"), 1)
            await users.refresh()  # 304: the table stays, the version too
            assert users.version == 1
            assert users.loaded_at is not None
            state["body"], state["etag"] = [{"id": "u2", "name": "Bob"}], '"v2"'
            await users.refresh()
            assert (users.get("u1"), users.get("u2"), users.version) == (None, User("u2", "Bob"), 2)
            state["fail"] = True
            with pytest.raises(fp.LookupRefreshError, match="503"):
                await users.refresh()
            assert users.get("u2") == User("u2", "Bob")
            # A full URL without a client: its own session per refresh.
            state["fail"] = False
            direct = fp.Lookup.from_url(f"{base}/users", key=lambda u: u.id, type=User)
            await direct.refresh()
            assert direct.get("u2") == User("u2", "Bob")
        assert state["hits"] == [None, '"v1"', '"v1"', '"v2"', None]

    asyncio.run(main())


def test_readers_see_the_old_table_until_the_new_one_is_complete(http_server: Any) -> None:
    from aiohttp import web

    release = asyncio.Event()
    version = {"n": 0}

    async def handler(_: web.Request) -> web.Response:
        version["n"] += 1
        if version["n"] > 1:
            await release.wait()
        rows = [{"id": f"u{i}", "name": f"v{version['n']}"} for i in range(1000)]
        return web.json_response(rows)

    async def main() -> None:
        async with http_server({"/u": handler}) as base:
            users = fp.Lookup.from_url(f"{base}/u", key=lambda u: u.id, type=User)
            await users.refresh()
            refreshing = asyncio.create_task(users.refresh())
            seen = set()
            for _ in range(50):
                await asyncio.sleep(0.001)
                seen.add(frozenset(u.name for u in users.table.values()))
            release.set()
            await refreshing
            seen.add(frozenset(u.name for u in users.table.values()))
            assert seen == {frozenset({"v1"}), frozenset({"v2"})}

    asyncio.run(main())


def test_enrich_joins_events_with_a_lookup_and_is_typed(tmp_path: Path) -> None:
    users = fp.Lookup.from_jsonl(_users(tmp_path / "u.jsonl", User("u1", "Ada")), key=lambda u: u.id, type=User)
    users.name = "users"
    asyncio.run(users.refresh())

    def user_of(c: Click) -> str:
        return c.user

    def named(c: Click, u: User | None) -> Named:
        return Named(c.user, u.name if u else "?", c.value)

    step = fp.enrich(users, key=user_of, merge=named)
    assert step.label == "enrich(users)"
    assert (step.in_type, step.out_type) == (Click, Named)
    flow = fp.from_iterable([Click("u1", 1.0), Click("u9", 2.0)]) >> step
    assert flow.out_type is Named
    assert flow.take(5) == [Named("u1", "Ada", 1.0), Named("u9", "?", 2.0)]

    def shout(s: str) -> str:
        return s

    with pytest.raises(fp.PipelineTypeError, match=re.escape("stage 'map(shout)' expects `str`, but 'enrich(users)'")):
        flow >> fp.map(shout)  # type: ignore[operator]


def test_enrich_reads_the_current_table_at_each_event(tmp_path: Path) -> None:
    path = _users(tmp_path / "u.jsonl", User("u1", "Ada"))
    users = fp.Lookup.from_jsonl(path, key=lambda u: u.id, type=User)
    asyncio.run(users.refresh())
    flow = fp.from_iterable(["u1"]) >> fp.enrich(users, key=lambda s: s, merge=lambda s, u: u.name if u else "?")
    assert flow.take(1) == ["Ada"]
    _users(path, User("u1", "Ada Lovelace"))
    asyncio.run(users.refresh())
    assert flow.take(1) == ["Ada Lovelace"]


def test_lookup_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(fp.PipelineDefinitionError, match="Lookup key= expects a callable"):
        fp.Lookup.from_jsonl(tmp_path / "x", key="id", type=User)  # type: ignore[arg-type]
    with pytest.raises(fp.PipelineDefinitionError, match=re.escape("fp.enrich() expects a lookup")):
        fp.enrich({}, key=lambda c: c, merge=lambda c, u: c)  # type: ignore[arg-type]


def test_per_key_lookup_caches_with_ttl_and_lru_and_coalesces_requests() -> None:
    from flowpump.app.clock import VirtualClock, use_clock

    fetched: list[str] = []
    gate = asyncio.Event()

    async def fetch(uid: str) -> User | None:
        fetched.append(uid)
        await gate.wait()
        return User(uid, uid.upper()) if uid != "nobody" else None

    users = fp.Lookup.per_key(fetch, ttl=60, maxsize=2)
    clock = VirtualClock()

    async def main() -> None:
        with use_clock(clock):
            # Three concurrent requests for one key: one fetch.
            many = asyncio.gather(*(users.aget("u1") for _ in range(3)))
            await asyncio.sleep(0)
            gate.set()
            assert await many == [User("u1", "U1")] * 3
            assert await users.aget("nobody") is None  # None is cached too
            assert await users.aget("nobody") is None
            assert fetched == ["u1", "nobody"]
            await users.aget("u2")  # maxsize 2: the least recently used ("u1") goes
            await users.aget("u1")
            assert fetched == ["u1", "nobody", "u2", "u1"]
            await clock.advance(61)  # expired
            await users.aget("u1")
            assert fetched[-1] == "u1"
            assert len(fetched) == 5

    asyncio.run(main())


def test_per_key_lookup_failures_are_not_cached_and_enrich_awaits_it() -> None:
    calls = 0

    async def fetch(uid: str) -> User | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            msg = "api down"
            raise ConnectionError(msg)
        return User(uid, "Ada")

    users = fp.Lookup.per_key(fetch)
    with pytest.raises(ConnectionError):
        asyncio.run(users.aget("u1"))

    def named(c: Click, u: User | None) -> Named:
        return Named(c.user, u.name if u else "?", c.value)

    step = fp.enrich(users, key=lambda c: c.user, merge=named)
    assert step.label == "enrich(per_key(fetch))"
    assert step.out_type is Named
    out = (fp.from_iterable([Click("u1", 1.0), Click("u1", 2.0)]) >> step).take(2)
    assert out == [Named("u1", "Ada", 1.0), Named("u1", "Ada", 2.0)]
    assert calls == 2
