"""Lookups: keyed tables loaded from a file, a SQL query or a URL, refreshed while pipelines run.

Invariant: a lookup's table is a dict that is built completely before it replaces the old one
with a single assignment, so a reader (``get``, which runs inside a fused loop) always sees
either the whole old table or the whole new one. A refresh that fails raises and leaves the old
table in place; the failure is kept in ``last_error`` for the application's status.

>>> import flowpump as fp, msgspec, os, pathlib, tempfile, asyncio
>>> class User(msgspec.Struct):
...     id: str
...     name: str
>>> path = os.path.join(tempfile.mkdtemp(), "users.jsonl")
>>> _ = pathlib.Path(path).write_text('{"id": "u1", "name": "Ada"}\\n')
>>> users = fp.Lookup.from_jsonl(path, key=lambda u: u.id, type=User)
>>> asyncio.run(users.refresh())
>>> users.get("u1"), users.get("nobody")
(User(id='u1', name='Ada'), None)
"""

from __future__ import annotations

import asyncio
import os
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec

from .._errors import FlowpumpError, PipelineDefinitionError

if TYPE_CHECKING:
    from .connections import HTTPClient, SQLConnection

__all__ = ["KeyLookup", "Lookup", "LookupRefreshError"]

K = TypeVar("K")
V = TypeVar("V")


class LookupRefreshError(FlowpumpError):
    """Loading a lookup failed; the lookup keeps the table it had. The cause is chained."""

    def __init__(self, message: str, *, lookup: str) -> None:
        super().__init__(message)
        self.lookup = lookup


class _NotModified:
    """A loader's answer when the data did not change since the last load (HTTP 304)."""


NOT_MODIFIED = _NotModified()


class _Loader(ABC):
    label: str = "loader"

    @abstractmethod
    async def load(self) -> list[Any] | _NotModified:
        """The rows, converted to the lookup's value type, or NOT_MODIFIED."""


class _JsonlLoader(_Loader):
    def __init__(self, path: str | os.PathLike[str], tp: Any) -> None:
        self.path = os.fspath(path)
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(tp)
        self.label = f"from_jsonl({os.path.basename(self.path)})"

    def _read(self) -> list[Any]:
        with open(self.path, "rb") as f:
            data = f.read()
        return self.decoder.decode_lines(data)

    async def load(self) -> list[Any]:
        return await asyncio.to_thread(self._read)


class _SqlLoader(_Loader):
    def __init__(self, conn: SQLConnection, query: str, tp: Any) -> None:
        self.conn = conn
        self.query = query
        self.list_type: Any = list[tp]
        self.label = f"from_sql({conn.label})"

    async def load(self) -> list[Any]:
        async with self.conn.use():
            rows = await self.conn.fetch(self.query)
        return msgspec.convert(rows, self.list_type, strict=False)  # type: ignore[no-any-return]


class _UrlLoader(_Loader):
    def __init__(self, url: str, tp: Any, client: HTTPClient | None, fmt: Literal["json", "jsonl"]) -> None:
        self.url = url
        self.client = client
        self.fmt = fmt
        self.list_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(list[tp])
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(tp)
        self.etag: str | None = None
        self.label = f"from_url({url})"

    async def load(self) -> list[Any] | _NotModified:
        from .connections import HTTPClient

        client = self.client if self.client is not None else HTTPClient(self.url)
        headers = {"If-None-Match": self.etag} if self.etag else {}
        async with client.use(), client.session.get(client.url(self.url), headers=headers) as resp:
            if resp.status == 304:
                return NOT_MODIFIED
            resp.raise_for_status()
            body = await resp.read()
            etag = resp.headers.get("ETag")
        rows = self.decoder.decode_lines(body) if self.fmt == "jsonl" else self.list_decoder.decode(body)
        # The ETag is kept only once the body decoded: a bad body is fetched again next time.
        self.etag = etag
        return rows


class Lookup(Generic[K, V]):
    """A table of ``V`` by key ``K``, shared by pipelines: ``get(key) -> V | None``.

    Make one with ``Lookup.from_jsonl``, ``Lookup.from_sql`` or ``Lookup.from_url``; load it with
    ``await lookup.refresh()`` (an ``Application`` loads it at start and on its trigger). Use it
    in a pipeline with ``fp.enrich(lookup, key=..., merge=...)``.
    """

    def __init__(self, loader: _Loader, key: Callable[[V], K], name: str | None = None) -> None:
        if not callable(key):
            msg = f"Lookup key= expects a callable such as `lambda u: u.id`, got {key!r}"
            raise PipelineDefinitionError(msg)
        self._loader = loader
        self._key = key
        self.name = name or loader.label
        self._table: Mapping[K, V] = {}
        #: How many times a new table was swapped in (0: never loaded).
        self.version = 0
        #: ``time.time()`` of the last successful refresh (including "not modified").
        self.loaded_at: float | None = None
        #: The error text of the last failed refresh, cleared by the next success.
        self.last_error: str | None = None
        self.failures = 0

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str], *, key: Callable[[V], K], type: type[V]) -> Lookup[K, V]:  # noqa: A002
        """A lookup loaded from a JSON-lines file, each line decoded into ``type``."""
        return cls(_JsonlLoader(path, type), key)

    @classmethod
    def from_sql(cls, conn: SQLConnection, query: str, *, key: Callable[[V], K], type: type[V]) -> Lookup[K, V]:  # noqa: A002
        """A lookup loaded from the rows of ``query`` on ``conn``, each converted into ``type``."""
        from ..connectors.sql import _check_conn

        _check_conn(conn, "Lookup.from_sql()")
        return cls(_SqlLoader(conn, query, type), key)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key: Callable[[V], K],
        type: type[V],  # noqa: A002 - the contract's name
        client: HTTPClient | None = None,
        format: Literal["json", "jsonl"] = "json",  # noqa: A002 - the natural name
    ) -> Lookup[K, V]:
        """A lookup loaded by GET ``url``: a JSON array (or JSON lines) of ``type``.

        With ``client`` (an ``fp.HTTPClient``), ``url`` may be a path relative to its base URL.
        The response's ``ETag`` is sent back as ``If-None-Match``; a 304 keeps the table.
        """
        if format not in ("json", "jsonl"):
            msg = f"Lookup.from_url(format={format!r}): format must be 'json' or 'jsonl'"
            raise PipelineDefinitionError(msg)
        return cls(_UrlLoader(url, type, client, format), key)

    # -- use --------------------------------------------------------------------------------
    def get(self, key: K) -> V | None:
        """The value for ``key``, or None."""
        return self._table.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._table

    def __len__(self) -> int:
        return len(self._table)

    @property
    def table(self) -> Mapping[K, V]:
        """The current table (read-only by convention: it is replaced whole on refresh)."""
        return self._table

    async def refresh(self) -> None:
        """Load the table again and swap it in; on failure raise and keep the old table."""
        try:
            rows = await self._loader.load()
            if isinstance(rows, _NotModified):
                table = None
            else:
                key = self._key
                table = {key(v): v for v in rows}
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            kept = f"kept the previous table ({len(self._table)} entries)" if self.version else "it has no table yet"
            msg = f"lookup {self.name!r}: refresh from {self._loader.label} failed ({self.last_error}); {kept}"
            raise LookupRefreshError(msg, lookup=self.name) from exc
        if table is not None:
            self._table = table  # the atomic swap
            self.version += 1
        self.loaded_at = time.time()
        self.last_error = None

    @staticmethod
    def per_key(
        fetch: Callable[[K], Awaitable[V | None]], *, ttl: float | None = 60.0, maxsize: int = 10_000
    ) -> KeyLookup[K, V]:
        """A lookup that fetches one key at a time (an API, a slow query), with a cache.

        Answers (None too) are kept ``ttl`` seconds (None: until evicted), at most ``maxsize``
        keys, least recently used evicted first; concurrent requests for one key share one fetch.
        ``fp.enrich`` on such a lookup awaits it (an async step).
        """
        return KeyLookup(fetch, ttl=ttl, maxsize=maxsize)

    def __repr__(self) -> str:
        return f"<Lookup {self.name}: {len(self._table)} entries, version {self.version}>"


class KeyLookup(Generic[K, V]):
    """A per-key async lookup with a TTL/LRU cache and request coalescing: ``await aget(key)``.

    Made by ``Lookup.per_key(fetch, ttl=..., maxsize=...)``. A fetch that raises is not cached;
    every caller waiting on it gets the exception.
    """

    def __init__(self, fetch: Callable[[K], Awaitable[V | None]], *, ttl: float | None, maxsize: int) -> None:
        if not callable(fetch):
            msg = f"Lookup.per_key() expects an async function key -> value, got {fetch!r}"
            raise PipelineDefinitionError(msg)
        if not isinstance(maxsize, int) or maxsize < 1:
            msg = f"Lookup.per_key(maxsize={maxsize!r}): maxsize must be an int >= 1"
            raise PipelineDefinitionError(msg)
        self._fetch = fetch
        self.ttl = ttl
        self.maxsize = maxsize
        self.name = f"per_key({getattr(fetch, '__name__', 'fetch')})"
        self._cache: OrderedDict[K, tuple[float, V | None]] = OrderedDict()
        self._inflight: dict[K, asyncio.Future[V | None]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    async def aget(self, key: K) -> V | None:
        """The value for ``key``: from the cache, from a fetch already under way, or fetched now."""
        from .clock import current_clock

        now = current_clock().monotonic()
        cached = self._cache.get(key)
        if cached is not None and (self.ttl is None or now - cached[0] < self.ttl):
            self._cache.move_to_end(key)
            self.hits += 1
            return cached[1]
        pending = self._inflight.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending)
        self.misses += 1
        fut: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await self._fetch(key)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved here: a fetch nobody else waited on is not "never retrieved"
            raise
        else:
            fut.set_result(value)
            self._cache[key] = (current_clock().monotonic(), value)
            self._cache.move_to_end(key)
            while len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
            return value
        finally:
            del self._inflight[key]

    def invalidate(self, key: K | None = None) -> None:
        """Forget ``key`` (or every key) so the next ``aget`` fetches again."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)

    def __repr__(self) -> str:
        return f"<KeyLookup {self.name}: {len(self._cache)} cached, {self.hits} hits, {self.misses} misses>"
