"""Connections: shared handles to databases and HTTP services, opened once and closed at the end.

A connection is opened by whoever needs it first and closed by the last user: an
``Application`` holds its connections open for its whole life (``open()`` ... ``close()``); a
pipeline run outside an application acquires the connection in its sink or source and releases
it at the end of the run (``async with conn.use(): ...``).

Drivers are optional extras, imported only when a connection is made:
``fp.SQLite`` uses the standard library; ``fp.Postgres`` needs ``pip install 'flowpump[postgres]'``
(asyncpg); ``fp.HTTPClient`` needs ``pip install 'flowpump[http]'`` (aiohttp).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import FlowpumpError

if TYPE_CHECKING:
    import aiohttp
    import asyncpg

__all__ = [
    "Connection",
    "ConnectionFailedError",
    "HTTPClient",
    "MissingDependencyError",
    "Postgres",
    "SQLConnection",
    "SQLite",
]

R = TypeVar("R")


class MissingDependencyError(FlowpumpError, ImportError):
    """An optional driver is not installed; the message says which extra installs it."""

    def __init__(self, module: str, extra: str, what: str) -> None:
        msg = f"{what} needs the {module!r} package, which is not installed: pip install 'flowpump[{extra}]'"
        super().__init__(msg)
        self.module = module
        self.extra = extra


class ConnectionFailedError(FlowpumpError, ConnectionError):
    """A connection could not be opened or failed its health check."""

    def __init__(self, message: str, *, connection: str) -> None:
        super().__init__(message)
        self.connection = connection


def _require(module: str, extra: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(module, extra, what)


class Connection(ABC):
    """A shared connection: ``open()``, ``health()``, ``close()``, and reference-counted ``use()``."""

    label: str = "connection"

    def __init__(self) -> None:
        self._users = 0
        self._held = False
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_open(self) -> bool:
        """True between a successful open and the close."""
        return self._loop is not None

    def _guard(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop_of_lock is not loop:
            self._lock = asyncio.Lock()
            self._loop_of_lock = loop
        return self._lock

    _loop_of_lock: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        """Open and health-check the connection, and keep it open until ``close()``."""
        async with self._guard():
            self._held = True
            await self._ensure_open()

    async def close(self) -> None:
        """Close the connection (it may be opened again later)."""
        async with self._guard():
            self._held = False
            if self._users == 0:
                await self._ensure_closed()

    async def _ensure_open(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None:
            if self._loop.is_running():
                # Another loop (an Application's) owns it and still uses it: closing it there
                # would break that loop's pipelines, and its handles cannot serve this loop.
                msg = (
                    f"{self.label} is open in another event loop that is still running (an Application's);"
                    " it cannot be used from this one (`pipeline.run()` and `.take()` run on a helper"
                    " thread's loop): use `await pipeline.arun()` in that loop"
                )
                raise ConnectionFailedError(msg, connection=self.label)
            # Opened in a loop that has ended (a previous ``run()``): its handles are unusable.
            await self._ensure_closed()
        try:
            await self._connect()
            self._loop = loop
            await self.health()
        except FlowpumpError:
            await self._ensure_closed()
            raise
        except Exception as exc:
            await self._ensure_closed()
            msg = f"{self.label}: cannot connect: {type(exc).__name__}: {exc}"
            raise ConnectionFailedError(msg, connection=self.label) from exc

    async def _ensure_closed(self) -> None:
        self._loop = None
        await self._disconnect()

    @asynccontextmanager
    async def use(self) -> AsyncIterator[None]:
        """Hold the connection open for the block (opening it if nobody has)."""
        async with self._guard():
            await self._ensure_open()
            self._users += 1
        try:
            yield
        finally:
            async with self._guard():
                self._users -= 1
                if self._users == 0 and not self._held:
                    await self._ensure_closed()

    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _disconnect(self) -> None: ...

    @abstractmethod
    async def health(self) -> None:
        """Raise if the connection does not work (a trivial round trip)."""

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<{type(self).__name__} {self.label} {state}>"


class SQLConnection(Connection):
    """A SQL database: what ``fp.to_sql``, ``fp.read_sql`` and ``Lookup.from_sql`` use."""

    #: ``sqlite`` or ``postgres``: decides placeholders and column types.
    dialect: str = "sql"

    @abstractmethod
    def param(self, index: int) -> str:
        """The placeholder of parameter ``index`` (1-based): ``?`` or ``$1``."""

    @abstractmethod
    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts."""

    @abstractmethod
    async def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Run one statement in its own transaction."""

    @abstractmethod
    async def insert_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``statement`` once per row, all in one transaction (all or nothing)."""

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bool:
        """Bulk-load ``rows`` if the database has a faster path than inserts; False if not."""
        return False

    @abstractmethod
    async def table_exists(self, table: str) -> bool:
        """True if ``table`` exists."""

    def is_permanent(self, exc: BaseException) -> bool:
        """True if ``exc``, raised by this database, would be raised again by the same statement.

        A syntax error, a table or column that does not exist, a constraint the statement needs
        or violates, a value of the wrong type: ``fp.to_sql`` then stops the run at once
        (``fp.PermanentSinkError``) rather than retrying. Lost connections, locks, timeouts and
        anything unknown are not permanent.
        """
        return False

    async def health(self) -> None:
        """``select 1``."""
        await self.fetch("select 1 as ok")


#: SQLite result codes that a retry of the same statement gets again.
_SQLITE_PERMANENT = frozenset({"SQLITE_ERROR", "SQLITE_MISMATCH", "SQLITE_RANGE", "SQLITE_TOOBIG", "SQLITE_AUTH"})
#: SQLSTATE classes that a retry of the same statement gets again: cardinality (an upsert that
#: touches a row twice), data, integrity, syntax or access (no such table or column, no unique
#: constraint for ON CONFLICT), feature not supported, WITH CHECK OPTION.
_PG_PERMANENT = frozenset({"21", "22", "23", "42", "0A", "44"})


class SQLite(SQLConnection):
    """An SQLite database file, used from one worker thread (sqlite3 is blocking).

    >>> import flowpump as fp
    >>> fp.SQLite(":memory:")
    <SQLite sqlite(:memory:) closed>
    """

    dialect = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.timeout = timeout
        self.label = f"sqlite({os.path.basename(self.path) or self.path})"
        self._db: sqlite3.Connection | None = None
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None

    def param(self, index: int) -> str:
        """``?``."""
        return "?"

    async def _call(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        # Invariant: every use of ``_db`` happens on the single worker thread, in call order.
        if self._thread is None or self._db is None:
            msg = f"{self.label} is not open: use it inside an Application, or `async with conn.use():`"
            raise ConnectionFailedError(msg, connection=self.label)
        db = self._db
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, db)

    async def _connect(self) -> None:
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flowpump-sqlite")

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(self.path, timeout=self.timeout, check_same_thread=False, isolation_level=None)
            if self.path != ":memory:":
                # WAL lets readers (lookups, other processes) read while a pipeline writes.
                db.execute("pragma journal_mode=wal")
                db.execute("pragma synchronous=normal")
            return db

        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._thread, connect)

    async def _disconnect(self) -> None:
        db, thread = self._db, self._thread
        self._db, self._thread = None, None
        if thread is None:
            return
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(thread, db.close)
        thread.shutdown(wait=False)

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts."""

        def run(db: sqlite3.Connection) -> list[dict[str, Any]]:
            cur = db.execute(query, tuple(params))
            try:
                names = [d[0] for d in cur.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            finally:
                cur.close()

        return await self._call(run)

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""

        def run(db: sqlite3.Connection) -> None:
            db.execute(statement, tuple(params)).close()

        await self._call(run)

    async def insert_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """``executemany`` in one transaction."""

        def run(db: sqlite3.Connection) -> None:
            db.execute("begin")
            try:
                db.executemany(statement, rows)
            except BaseException:
                db.execute("rollback")
                raise
            db.execute("commit")

        await self._call(run)

    def is_permanent(self, exc: BaseException) -> bool:
        """Programming, integrity and data errors, and SQLITE_ERROR (no such table, syntax error)."""
        if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.DataError)):
            return True
        if isinstance(exc, (sqlite3.InterfaceError, sqlite3.NotSupportedError)):
            return True
        # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL ... may pass on a retry.
        name = getattr(exc, "sqlite_errorname", None)
        return isinstance(exc, sqlite3.OperationalError) and name in _SQLITE_PERMANENT

    async def table_exists(self, table: str) -> bool:
        """Look ``table`` up in ``sqlite_master``."""
        rows = await self.fetch("select 1 from sqlite_master where type in ('table', 'view') and name = ?", (table,))
        return bool(rows)


class Postgres(SQLConnection):
    """A PostgreSQL database through an asyncpg connection pool (extra ``postgres``).

    >>> import flowpump as fp
    >>> fp.Postgres("postgresql://app@localhost/app")  # doctest: +SKIP
    <Postgres postgres(localhost/app) closed>
    """

    dialect = "postgres"

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 4, timeout: float = 10.0) -> None:
        _require("asyncpg", "postgres", "fp.Postgres()")
        super().__init__()
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        where = dsn.rpartition("@")[2] if "@" in dsn else dsn.partition("://")[2]
        self.label = f"postgres({where.split('?')[0]})"
        self._pool: asyncpg.Pool | None = None

    def param(self, index: int) -> str:
        """``$index``."""
        return f"${index}"

    def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            msg = f"{self.label} is not open: use it inside an Application, or `async with conn.use():`"
            raise ConnectionFailedError(msg, connection=self.label)
        return self._pool

    async def _connect(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=self.min_size, max_size=self.max_size, timeout=self.timeout
        )

    async def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except Exception:  # noqa: BLE001 - a pool whose server went away cannot close cleanly
                pool.terminate()

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts."""
        records = await self._ready().fetch(query, *params)
        return [dict(r.items()) for r in records]

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        await self._ready().execute(statement, *params)

    async def insert_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """``executemany`` in one transaction."""
        async with self._ready().acquire() as con, con.transaction():
            await con.executemany(statement, rows)

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bool:
        """``COPY`` (binary) into ``table``: the fast path for plain inserts."""
        schema, _, name = table.rpartition(".")
        async with self._ready().acquire() as con:
            await con.copy_records_to_table(name, records=rows, columns=list(columns), schema_name=schema or None)
        return True

    def is_permanent(self, exc: BaseException) -> bool:
        """Server errors of SQLSTATE class 21, 22, 23, 42, 0A and 44; asyncpg's own bad-argument errors."""
        import asyncpg

        if isinstance(exc, asyncpg.exceptions.PostgresError):
            return (exc.sqlstate or "")[:2] in _PG_PERMANENT
        # asyncpg's client-side DataError (a value that cannot be encoded for its column) is
        # both an InterfaceError and a ValueError; "connection is closed" & co. are not ValueErrors.
        return isinstance(exc, asyncpg.exceptions.InterfaceError) and isinstance(exc, ValueError)

    async def table_exists(self, table: str) -> bool:
        """``to_regclass(table) is not null``."""
        rows = await self.fetch("select to_regclass($1) is not null as found", (table,))
        return bool(rows and rows[0]["found"])


class HTTPClient(Connection):
    """An HTTP service: one aiohttp session with a base URL (extra ``http``).

    ``health_path``, if given, is fetched by the health check and must answer 2xx.

    >>> import flowpump as fp
    >>> fp.HTTPClient("http://127.0.0.1:8000")  # doctest: +SKIP
    <HTTPClient http(127.0.0.1:8000) closed>
    """

    def __init__(
        self,
        base_url: str,
        *,
        health_path: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        _require("aiohttp", "http", "fp.HTTPClient()")
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.health_path = health_path
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.label = f"http({self.base_url.partition('://')[2] or self.base_url})"
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open aiohttp session."""
        if self._session is None:
            msg = f"{self.label} is not open: use it inside an Application, or `async with conn.use():`"
            raise ConnectionFailedError(msg, connection=self.label)
        return self._session

    def url(self, path: str) -> str:
        """``base_url`` joined with ``path`` (an absolute URL is returned as it is)."""
        if "://" in path:
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    async def _connect(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            headers=self.headers, timeout=aiohttp.ClientTimeout(total=self.timeout), raise_for_status=False
        )

    async def _disconnect(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def health(self) -> None:
        """GET ``health_path`` (if set) and expect a 2xx answer."""
        if self.health_path is None:
            return
        async with self.session.get(self.url(self.health_path)) as resp:
            resp.raise_for_status()
