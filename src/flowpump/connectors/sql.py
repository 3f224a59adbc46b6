"""SQL connectors: ``fp.to_sql`` (a sink) and ``fp.read_sql`` (a source, one-shot or polling).

Rows map to events through msgspec: a Struct's fields (or a dict's keys) are the columns of
``to_sql``; ``read_sql`` converts each row (a dict of column -> value) into ``type``.

Delivery: ``to_sql`` writes each batch in one transaction, so a batch that fails is rolled back
whole and the runtime's retry writes it again without duplicates. An error that the same batch
would meet again (a syntax error, a missing table or column, an upsert key without a unique
constraint, a constraint violation: ``SQLConnection.is_permanent``) is not retried: it becomes
``fp.PermanentSinkError`` (the driver's error chained) and the run stops at once. ``read_sql(..., cursor=col)``
reads rows in ``col`` order (keyset pages; rows sharing a value are read as one group, never
split) and remembers the last *acknowledged* value, so a restarted
pipeline goes on after the last row that was fully processed (each row is read once per run,
and at least once across restarts).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import re
import types
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from .._connector import Positions, RunContext, SinkSpec, SinkWriter, SourceBatch, SourceSpec
from .._errors import DeadLetter, PermanentSinkError, PipelineDefinitionError
from .._graph import Sink, Source

if TYPE_CHECKING:
    from ..app.connections import SQLConnection
    from ..app.triggers import Trigger

__all__ = ["read_sql", "to_sql"]

T = TypeVar("T")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

#: Python type -> column type, per dialect, for tables ``to_sql`` creates.
_COLUMN_TYPES: dict[str, dict[Any, str]] = {
    "sqlite": {
        bool: "INTEGER",
        int: "INTEGER",
        float: "REAL",
        str: "TEXT",
        bytes: "BLOB",
        datetime.datetime: "TIMESTAMP",
        datetime.date: "DATE",
        decimal.Decimal: "NUMERIC",
        uuid.UUID: "TEXT",
    },
    "postgres": {
        bool: "BOOLEAN",
        int: "BIGINT",
        float: "DOUBLE PRECISION",
        str: "TEXT",
        bytes: "BYTEA",
        datetime.datetime: "TIMESTAMPTZ",
        datetime.date: "DATE",
        decimal.Decimal: "NUMERIC",
        uuid.UUID: "UUID",
    },
}
#: Values every driver binds as they are; the rest is converted (nested values to JSON text).
_NATIVE = (str, int, float, bytes, type(None))
_PG_NATIVE = (datetime.datetime, datetime.date, decimal.Decimal, uuid.UUID)


def _ident(name: str, what: str) -> str:
    if not _IDENT.match(name):
        msg = f"{what} {name!r} is not a plain SQL identifier (letters, digits, _; optionally schema.table)"
        raise PipelineDefinitionError(msg)
    return name


def _q(name: str) -> str:
    """Quote an identifier (checked by ``_ident``): ``user`` is a reserved word in PostgreSQL."""
    return ".".join(f'"{part}"' for part in name.split("."))


def _check_conn(conn: object, where: str) -> None:
    from ..app.connections import SQLConnection

    if not isinstance(conn, SQLConnection):
        msg = f"{where} expects a SQL connection such as fp.SQLite('app.db') or fp.Postgres(dsn), got {conn!r}"
        raise PipelineDefinitionError(msg)


def _fields_of(event: Any) -> tuple[str, ...]:
    if isinstance(event, msgspec.Struct):
        return tuple(event.__struct_fields__)
    if isinstance(event, dict):
        return tuple(event)
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return tuple(f.name for f in dataclasses.fields(event))
    msg = f"to_sql writes msgspec Structs, dataclasses or dicts, got {type(event).__name__}"
    raise TypeError(msg)


def _column_type(tp: Any, dialect: str) -> str:
    table = _COLUMN_TYPES.get(dialect, _COLUMN_TYPES["sqlite"])
    args = [a for a in getattr(tp, "__args__", ()) if a is not type(None)]
    if tp not in table and len(args) == 1:  # Optional[X]
        tp = args[0]
    if isinstance(tp, type) and tp in table:
        return table[tp]
    return table[str]  # nested values are stored as JSON text


def _field_types(event: Any) -> dict[str, Any]:
    if isinstance(event, msgspec.Struct):
        return {f.name: f.type for f in msgspec.structs.fields(type(event))}
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        import typing

        hints = typing.get_type_hints(type(event))
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(event)}
    return {k: type(v) for k, v in event.items()}


def _binds_as_is(tp: Any, dialect: str) -> bool:
    """True if values declared as ``tp`` go to the driver unconverted (``X | None`` too)."""
    if tp is bool or tp in _NATIVE or (dialect == "postgres" and tp in _PG_NATIVE):
        return True
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return all(_binds_as_is(a, dialect) for a in args)
    return False


class _SqlWriter(SinkWriter):
    def __init__(self, spec: _ToSqlSpec, conn: SQLConnection, release: Any) -> None:
        self.spec = spec
        self.conn = conn
        self.release = release
        self.columns: tuple[str, ...] | None = None
        self.statement = ""
        self.rejects: list[DeadLetter] = []
        self._json = msgspec.json.Encoder()
        #: A Struct type whose fields all bind as they are: its events become rows by ``astuple``.
        self._fast: type[msgspec.Struct] | None = None
        #: Per event type (not dicts): why its events do not fit the columns, or None if they do.
        self._misfit: dict[type, str | None] = {}
        self._colset: frozenset[str] = frozenset()

    async def _prepare(self, first: Any) -> None:
        spec, conn = self.spec, self.conn
        columns = tuple(_ident(c, "column") for c in _fields_of(first))
        for k in spec.key:
            if k not in columns:
                msg = f"{spec.label}: upsert key {k!r} is not a field of {type(first).__name__} ({', '.join(columns)})"
                raise PipelineDefinitionError(msg)
        if spec.create and not await conn.table_exists(spec.table):
            types = _field_types(first)
            cols = [f"{_q(c)} {_column_type(types.get(c), conn.dialect)}" for c in columns]
            if spec.key:
                cols.append(f"primary key ({', '.join(map(_q, spec.key))})")
            await conn.execute(f"create table if not exists {_q(spec.table)} ({', '.join(cols)})")
        params = ", ".join(conn.param(i) for i in range(1, len(columns) + 1))
        statement = f"insert into {_q(spec.table)} ({', '.join(map(_q, columns))}) values ({params})"
        if spec.key:
            rest = [_q(c) for c in columns if c not in spec.key]
            action = "do update set " + ", ".join(f"{c} = excluded.{c}" for c in rest) if rest else "do nothing"
            statement += f" on conflict ({', '.join(map(_q, spec.key))}) {action}"
        self.columns, self.statement, self._colset = columns, statement, frozenset(columns)
        if isinstance(first, msgspec.Struct) and all(
            _binds_as_is(f.type, conn.dialect) for f in msgspec.structs.fields(type(first))
        ):
            self._fast = type(first)

    def _value(self, v: Any) -> Any:
        if isinstance(v, _NATIVE):
            return v
        if self.conn.dialect == "postgres" and isinstance(v, _PG_NATIVE):
            return v
        if isinstance(v, (datetime.datetime, datetime.date)):
            return v.isoformat()
        if isinstance(v, (decimal.Decimal, uuid.UUID)):
            return str(v)
        return self._json.encode(v).decode()

    def _rows(self, events: list[Any]) -> list[tuple[Any, ...]]:
        columns = self.columns
        assert columns is not None
        rows: list[tuple[Any, ...]] = []
        value = self._value
        fast, astuple = self._fast, msgspec.structs.astuple
        for e in events:
            if type(e) is fast:
                rows.append(astuple(e))
                continue
            misfit = self._extra(e, columns)
            if misfit is not None:
                self.rejects.append(DeadLetter(stage=self.spec.label, error=misfit, event=e))
                continue
            try:
                if isinstance(e, dict):
                    rows.append(tuple(value(e[c]) for c in columns))
                else:
                    rows.append(tuple(value(getattr(e, c)) for c in columns))
            except (AttributeError, KeyError, TypeError, msgspec.EncodeError) as exc:
                err = f"{type(exc).__name__}: {exc} (to_sql columns: {', '.join(columns)})"
                self.rejects.append(DeadLetter(stage=self.spec.label, error=err, event=e))
        return rows

    def _extra(self, event: Any, columns: tuple[str, ...]) -> str | None:
        """Why ``event`` has a field that is not a column (it would be lost silently), or None."""
        tp = type(event)
        if tp is dict:
            if event.keys() <= self._colset:
                return None
            return self._misfit_message([k for k in event if k not in self._colset], columns)
        try:
            return self._misfit[tp]
        except KeyError:
            pass
        try:
            names = _fields_of(event)
        except TypeError:
            return None  # not a row at all: the conversion says so
        found = self._misfit[tp] = self._misfit_message([f for f in names if f not in columns], columns)
        return found

    def _misfit_message(self, extra: list[str], columns: tuple[str, ...]) -> str | None:
        if not extra:
            return None
        table, cols = self.spec.table, ", ".join(columns)
        what = f"field {extra[0]!r} is" if len(extra) == 1 else f"fields {', '.join(map(repr, extra))} are"
        return (
            f"ValueError: {what} not a column of {table} (to_sql writes the fields of the first event: {cols}); "
            "give every event the same fields (fp.map them to one Struct) or add the column to the table"
        )

    def write(self, events: list[Any]) -> Awaitable[None]:
        return self._write(events)

    def _permanent(self, exc: BaseException) -> PermanentSinkError:
        """The error that stops the run, with a hint for the usual causes."""
        spec = self.spec
        text = str(exc)
        state = getattr(exc, "sqlstate", None)
        hint = ""
        if state == "42P01" or "no such table" in text:
            hint = f" (table {spec.table!r} does not exist"
            hint += "; create it first, or leave fp.to_sql(..., create=True))" if not spec.create else ")"
        elif state == "42P10" or "ON CONFLICT clause does not match" in text:
            cols = ", ".join(spec.key)
            index = "_".join((spec.table.rpartition(".")[2], *spec.key, "key"))
            hint = (
                f" (an upsert on key ({cols}) needs a primary key or unique index on exactly those columns: "
                f"create unique index {index} on {spec.table} ({cols}))"
            )
        origin = f"{type(exc).__module__.split('.')[0]}.{type(exc).__name__}"
        return PermanentSinkError(f"{spec.label}: {origin}: {text}{hint}")

    async def _write(self, events: list[Any]) -> None:
        try:
            await self._write_rows(events)
        except PermanentSinkError:
            raise
        except (PipelineDefinitionError, TypeError) as exc:
            # The first event does not fit the table's definition: every retry would say so again.
            msg = f"{self.spec.label}: {exc}"
            raise PermanentSinkError(msg) from exc
        except Exception as exc:
            if self.conn.is_permanent(exc):
                raise self._permanent(exc) from exc
            raise

    async def _write_rows(self, events: list[Any]) -> None:
        if self.columns is None:
            await self._prepare(events[0])
        # A retried batch is converted again: drop the rejects of the failed attempt first.
        self.rejects.clear()
        rows = self._rows(events)
        if not rows:
            return
        if not self.spec.key and await self.conn.copy_rows(self.spec.table, self.columns or (), rows):
            return
        await self.conn.insert_many(self.statement, rows)

    async def close(self) -> None:
        await self.release()


class _ToSqlSpec(SinkSpec):
    is_async = True

    def __init__(self, conn: SQLConnection, table: str, key: tuple[str, ...], create: bool, attempts: int) -> None:
        self.conn = conn
        self.table = table
        self.key = key
        self.create = create
        self.attempts = attempts
        self.label = f"to_sql({table})"

    async def open(self, ctx: RunContext) -> SinkWriter:
        use = self.conn.use()
        await use.__aenter__()

        async def release() -> None:
            await use.__aexit__(None, None, None)

        return _SqlWriter(self, self.conn, release)


def to_sql(
    conn: SQLConnection,
    table: str,
    *,
    key: str | Sequence[str] | None = None,
    create: bool = True,
    attempts: int = 12,
) -> Sink[object]:
    """Insert events (msgspec Structs, dataclasses or dicts) into ``table``, one transaction per batch.

    ``key`` names the column(s) of an upsert: a row whose key exists is updated instead. With
    ``create=True`` a missing table is created from the first event's fields (``key`` becomes
    its primary key). A failing batch is retried ``attempts`` times with backoff (about 15 s in
    all with the default), long enough to ride out a database restart.

    >>> import flowpump as fp, msgspec, os, tempfile
    >>> class Row(msgspec.Struct):
    ...     id: int
    ...     name: str
    >>> db = fp.SQLite(os.path.join(tempfile.mkdtemp(), "doc.db"))
    >>> _ = (fp.from_iterable([Row(1, "a"), Row(2, "b")]) >> fp.to_sql(db, "rows")).run()
    >>> fp.read_sql(db, "select id, name from rows order by id", Row).take(5)
    [Row(id=1, name='a'), Row(id=2, name='b')]
    """
    _check_conn(conn, "fp.to_sql()")
    keys = (key,) if isinstance(key, str) else tuple(key or ())
    if not isinstance(attempts, int) or attempts < 1:
        msg = f"fp.to_sql(attempts={attempts!r}): attempts must be an int >= 1"
        raise PipelineDefinitionError(msg)
    return Sink(
        _ToSqlSpec(conn, _ident(table, "table"), tuple(_ident(k, "key column") for k in keys), create, attempts)
    )


class _ReadSqlSpec(SourceSpec):
    is_async = True

    def __init__(
        self,
        conn: SQLConnection,
        query: str,
        tp: Any,
        params: tuple[Any, ...],
        cursor: str | None,
        start: Any,
        every: Trigger | None,
        batch_size: int,
    ) -> None:
        self.conn = conn
        self.query = query.strip().rstrip(";")
        self.out_type = tp
        self.list_type: Any = list[tp]
        self.params = params
        self.cursor = cursor
        self.every = every
        self.batch_size = batch_size
        name = re.sub(r"\s+", " ", self.query)
        self.label = f"read_sql({name if len(name) <= 40 else name[:37] + '...'})"
        #: The cursor value of the last row whose events were all written (kept across runs).
        self.acked: Any = start

    def _convert(self, rows: list[dict[str, Any]], first: int) -> SourceBatch:
        tp = self.out_type
        try:
            return SourceBatch(msgspec.convert(rows, self.list_type, strict=False), Positions(self.label, first))
        except msgspec.ValidationError:
            pass
        events: list[Any] = []
        lines: list[int] = []
        dead: list[DeadLetter] = []
        for i, row in enumerate(rows):
            try:
                events.append(msgspec.convert(row, tp, strict=False))
                lines.append(first + i)
            except msgspec.ValidationError as exc:
                raw = msgspec.json.encode({k: repr(v) for k, v in row.items()})
                where = f"{self.label}#{first + i}"
                dead.append(DeadLetter(stage=self.label, error=f"ValidationError: {exc}", raw=raw, position=where))
        return SourceBatch(events, Positions(self.label, 0, lines), dead)

    def _page(self, after: Any, op: str = ">") -> tuple[str, tuple[Any, ...]]:
        """The next page: rows whose cursor is ``> after`` (at most ``batch_size``), or the whole
        group whose cursor is ``= after`` (``op="="``: the rest of a group a full page cut)."""
        conn, cursor = self.conn, self.cursor
        assert cursor is not None
        n = len(self.params)
        where = f" where {_q(cursor)} is not null"
        if after is not None:
            where += f" and {_q(cursor)} {op} {conn.param(n + 1)}"
        limit = f" limit {self.batch_size}" if op == ">" else ""
        sql = f"select * from ({self.query}) as _flowpump_q{where} order by {_q(cursor)}{limit}"
        return sql, self.params + (() if after is None else (after,))

    def _ack(self, value: Any) -> Any:
        def done() -> None:
            self.acked = value

        return done

    async def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        async with self.conn.use():
            if self.cursor is None:
                async for b in self._plain(ctx):
                    yield b
            else:
                async for b in self._by_cursor(ctx):
                    yield b

    async def _plain(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        from ..app.poll import wait_tick

        ticks = self.every.ticks() if self.every is not None else None
        n = 0
        while not ctx.stopping:
            rows = await self.conn.fetch(self.query, self.params)
            for i in range(0, len(rows), self.batch_size):
                yield self._convert(rows[i : i + self.batch_size], n + i + 1)
            n += len(rows)
            if ticks is None or not await wait_tick(ticks, ctx.stop):
                return

    async def _by_cursor(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:
        from ..app.poll import wait_tick

        cursor = self.cursor
        assert cursor is not None
        ticks = self.every.ticks() if self.every is not None else None
        # Invariant: rows up to ``read`` have been emitted in this run; up to ``self.acked``
        # they are done. A new run starts after ``acked``, so nothing done is read twice.
        read = self.acked
        n = 0
        while not ctx.stopping:
            sql, params = self._page(read)
            rows = await self.conn.fetch(sql, params)
            full = len(rows) == self.batch_size
            if rows:
                if cursor not in rows[-1]:
                    msg = f"{self.label}: the query has no column {cursor!r} to use as the cursor"
                    raise PipelineDefinitionError(msg)
                read = rows[-1][cursor]
                if full:
                    # The limit may have cut the group of rows sharing the last value: read that
                    # group whole, since the next page starts after the value (``> read``).
                    while rows and rows[-1][cursor] == read:
                        rows.pop()
                    sql, params = self._page(read, "=")
                    rows.extend(await self.conn.fetch(sql, params))
                batch = self._convert(rows, n + 1)
                batch.on_done = self._ack(read)
                n += len(rows)
                yield batch
            if full:
                continue
            if ticks is None or not await wait_tick(ticks, ctx.stop):
                return


def read_sql(
    conn: SQLConnection,
    query: str,
    type: type[T],  # noqa: A002 - the contract's name
    *,
    params: Sequence[Any] = (),
    cursor: str | None = None,
    start: Any = None,
    every: Trigger | None = None,
    batch_size: int = 1000,
) -> Source[T]:
    """Read the rows of ``query`` as events of ``type`` (converted by msgspec).

    - plain: run the query once and end;
    - ``every=trigger``: run it again each time the trigger fires;
    - ``cursor="id"``: read in ``id`` order, each row once — with ``every=`` this is a polling
      source that picks up new rows as they are inserted. ``start`` is the value to read after.
      Pages are read by ``cursor > last value``; rows may share a cursor value (a page that a
      group of equal values would straddle is extended to the whole group, so a batch may hold
      more than ``batch_size`` rows). Requirements: a new row's cursor value is greater than
      every value already read (a serial id; a timestamp only if rows with equal timestamps
      are committed together), and rows whose cursor is NULL are not read.

    A row that does not convert becomes a dead letter.

    >>> import flowpump as fp, msgspec
    >>> class One(msgspec.Struct):
    ...     x: int
    >>> fp.read_sql(fp.SQLite(":memory:"), "select 1 as x", One).take(1)
    [One(x=1)]
    """
    _check_conn(conn, "fp.read_sql()")
    if cursor is not None:
        _ident(cursor, "cursor column")
    if not isinstance(batch_size, int) or batch_size < 1:
        msg = f"fp.read_sql(batch_size={batch_size!r}): batch_size must be an int >= 1"
        raise PipelineDefinitionError(msg)
    return Source(_ReadSqlSpec(conn, query, type, tuple(params), cursor, start, every, batch_size))
