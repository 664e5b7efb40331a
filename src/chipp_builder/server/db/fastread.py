"""The reader: every read of a request, on SQLite and PostgreSQL. SELECTs are built with SQLAlchemy Core,
compiled once per dialect and run on the driver itself; each row comes back as its wire shape.

Why not SQLAlchemy's engine: measured on the sessions page (issue 7), its async execution path cost about ten
times the query itself: checking a connection out of the pool and resetting it (about 0.3 ms), building the
statement and its cache key, four aiosqlite thread hops per statement, and per-value result processing. Here a
`ReadQuery` is compiled once per dialect (`CompiledRead`), a request runs it with one driver call (one thread
hop on SQLite, or none for an `on_loop` query; one round trip on PostgreSQL), and one generated function per
query turns each driver row into its wire dict, nested objects included, converting each column once through
`CONVERSIONS`, the one table of column-type converters (UUIDs as strings, timestamps as `…Z` strings on
SQLite, JSON as its stored text). A column type the table does not cover is refused when the query is built.

`Reader` is the seam: `SQLiteReader` keeps one sqlite3 connection per thread of a small pool (WAL readers never
block the writer); `PostgresReader` keeps an asyncpg pool with the same connect and statement timeouts as the
engine. Either is created lazily in the running event loop, and closed when the app's engine is disposed, so
its lifetime follows the engine's. The engine stays for writes, migrations and transactions.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import JSON, Boolean, Date, Float, Integer, LargeBinary, String, Uuid, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import asyncpg as pg_dialect
from sqlalchemy.dialects.sqlite import aiosqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from chipp_builder.server.compat import bind_processors, expanding_placeholder
from chipp_builder.server.db.tables import UTCDateTime

Converter = Callable[[Any], Any]
DIALECTS = ("sqlite", "postgresql")
# no-untyped-call: SQLAlchemy leaves the asyncpg dialect's __init__ unannotated (its aiosqlite one is typed).
_SQLALCHEMY_DIALECTS = {
    "sqlite": sqlite_dialect.dialect(), "postgresql": pg_dialect.dialect()  # type: ignore[no-untyped-call]
}


def _hex_to_uuid(value: str | None) -> str | None:
    # SQLite keeps UUIDs as 32 hex digits. (%-formatting measured faster here than an f-string or str(UUID()).)
    if value is None:
        return None
    return "%s-%s-%s-%s-%s" % (value[:8], value[8:12], value[12:16], value[16:20], value[20:])  # noqa: UP031


def _sqlite_stamp(value: str | None) -> str | None:
    # SQLite keeps UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff'; the wire form is orjson's: no fraction
    # when it is zero, else six digits, and a Z.
    if value is None:
        return None
    if value[20:] in ("000000", ""):
        return f"{value[:10]}T{value[11:19]}Z"
    return f"{value[:10]}T{value[11:]}Z"


def timestamp_key(value: datetime) -> str:
    """A timestamp as a sort key's text: naive UTC ISO 8601 with six fraction digits (what cursors carry)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _sqlite_stamp_key(value: str) -> str:
    # The same text as timestamp_key, cut from SQLite's stored UTC text without parsing it.
    return f"{value[:10]}T{value[11:19]}.{value[20:26].ljust(6, '0')}"


def _to_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _uuid_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _sqlite_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _sqlite_date(value: str | None) -> date | None:
    # A SQLite day is text ('YYYY-MM-DD': a Date column, or a day computed in SQL); orjson writes a date so.
    return None if value is None else date.fromisoformat(value)


def _hex_to_uuid_object(value: str | None) -> Any:
    from uuid import UUID

    return None if value is None else UUID(hex=value)


def _json_loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _per_dialect(sqlite: Converter | None, postgresql: Converter | None) -> Mapping[str, Converter | None]:
    return {"sqlite": sqlite, "postgresql": postgresql}


_AS_IS = _per_dialect(None, None)


@dataclass(frozen=True)
class Conversion:
    """How one column type's driver values become values, per dialect (None: as the driver gives them).

    `wire`: what the API sends, ready for orjson (responses.dumps); `python`: what SQLAlchemy's engine would
    give (for reads whose values the server computes with, such as a key's expiry); `key`: the text a cursor
    carries, for the types a list may be sorted by.
    """

    wire: Mapping[str, Converter | None]
    python: Mapping[str, Converter | None]
    key: Mapping[str, Converter | None] | None = None


# The one converter table, keyed by column type (a subclass takes its nearest ancestor's row). A type missing
# here is refused when a query selecting it is built: give a computed column its type (`type_=`).
CONVERSIONS: dict[type, Conversion] = {
    Uuid: Conversion(
        wire=_per_dialect(_hex_to_uuid, _uuid_str),
        python=_per_dialect(_hex_to_uuid_object, None),
        key=_per_dialect(_hex_to_uuid, _uuid_str),
    ),
    UTCDateTime: Conversion(
        # PostgreSQL gives aware datetimes, which orjson writes with a Z.
        wire=_per_dialect(_sqlite_stamp, None),
        python=_per_dialect(_sqlite_datetime, None),
        key=_per_dialect(_sqlite_stamp_key, timestamp_key),
    ),
    Date: Conversion(wire=_per_dialect(_sqlite_date, None), python=_per_dialect(_sqlite_date, None)),
    Boolean: Conversion(wire=_per_dialect(_to_bool, None), python=_per_dialect(_to_bool, None)),
    # On the wire, JSON is its stored text, for the caller to send on as an orjson.Fragment (no re-encoding).
    JSON: Conversion(wire=_AS_IS, python=_per_dialect(_json_loads, _json_loads)),
    String: Conversion(wire=_AS_IS, python=_AS_IS, key=_AS_IS),
    Integer: Conversion(wire=_AS_IS, python=_AS_IS),
    Float: Conversion(wire=_AS_IS, python=_AS_IS),
    LargeBinary: Conversion(wire=_AS_IS, python=_AS_IS),
}


def conversion_of(column_type: Any) -> Conversion:
    """The table's row for a column type, or a TypeError naming the type (raised when a query is built)."""
    for kind in type(column_type).__mro__:
        found = CONVERSIONS.get(kind)
        if found is not None:
            return found
    raise TypeError(
        f"no read conversion for column type {column_type!r}: add it to fastread.CONVERSIONS, or give the "
        "computed column its type (type_=...)"
    )


@dataclass(frozen=True)
class Nested:
    """A wire object built from some of a query's columns, e.g. a session's `consumer` from the joined
    consumer's email and name: null when the `null_when` column is null, else `{key: column's value}`."""

    null_when: str
    fields: Mapping[str, str]

    def __init__(self, null_when: str, **fields: str) -> None:
        object.__setattr__(self, "null_when", null_when)
        object.__setattr__(self, "fields", dict(fields))


# A wire key whose value the caller fills in after the read (null until then), e.g. a message's tags.
FILLED_LATER = None
Shape = Mapping[str, "str | Nested | None"]


@dataclass(frozen=True)
class CompiledRead:
    """A ReadQuery compiled for one dialect: SQL text, parameter names in order with their bind processors,
    and the functions turning a driver row into its wire dict and into its cursor key."""

    sql: str
    params: tuple[str, ...]
    processors: tuple[Converter | None, ...]
    expanding: str | None
    placeholder: str | None  # the text of the expanding parameter in `sql`, replaced at run time
    dialect: str
    defaults: dict[str, Any]  # values the statement carries itself (e.g. SQLite's OFFSET beside a bound LIMIT)
    make_record: Callable[[Sequence[Any]], dict[str, Any]]  # one row -> its dict of wire values
    make_key: Callable[[Sequence[Any]], tuple[str, ...]] | None  # one row -> its cursor key (cursor queries)

    def arguments(self, values: dict[str, Any]) -> tuple[str, list[Any]]:
        """The SQL to run and its positional arguments, an expanding (IN) list spliced in last."""
        args = []
        for name, process in zip(self.params, self.processors, strict=True):
            if name == self.expanding:
                continue
            value = values[name] if name in values else self.defaults[name]
            args.append(value if process is None or value is None else process(value))
        sql = self.sql
        if self.expanding is not None:
            assert self.placeholder is not None
            items = list(values[self.expanding])
            first = len(args) + 1
            if self.dialect == "postgresql":
                marks = ", ".join(f"${n}" for n in range(first, first + len(items)))
            else:
                marks = ", ".join("?" * len(items))
            sql = sql.replace(self.placeholder, marks or "NULL")
            args.extend(items)
        return sql, args

    def convert(self, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Rows in their wire shape; for a cursor query, a CursorRows that can also give a row's cursor key."""
        if self.make_key is None:
            return list(map(self.make_record, rows))
        return CursorRows(map(self.make_record, rows), rows, self.make_key)


class CursorRows(list[dict[str, Any]]):
    """The wire rows of a cursor query, able to give any row's sort key from its driver row (so a cursor is
    made from the stored value, never by parsing a wire value back)."""

    __slots__ = ("_driver_rows", "_make_key")

    def __init__(
        self, records: Iterable[dict[str, Any]], driver_rows: Sequence[Sequence[Any]],
        make_key: Callable[[Sequence[Any]], tuple[str, ...]],
    ) -> None:
        super().__init__(records)
        self._driver_rows = driver_rows
        self._make_key = make_key

    def key_of(self, index: int) -> tuple[str, ...]:
        """The cursor key (the query's `cursor` columns as text) of the row at this index."""
        return self._make_key(self._driver_rows[index])


def _record_source(
    columns: tuple[str, ...], converters: tuple[Converter | None, ...], shape: Shape, namespace: dict[str, Any]
) -> str:
    """The source of `lambda row: {...}` building a row's wire dict: a dict display of the shape's keys, each a
    column (its converter called inline where it has one), a nested dict display, or None to be filled later.

    Why generated (as dataclasses and namedtuple generate their methods): converting rows is the hottest Python
    of a list page, and this form took a 26-row page of sessions from about 90 microseconds (a comprehension
    over every column, testing for a converter) to about 33. The source holds only column names (repr-quoted)
    and positions, never data.
    """
    position = {name: index for index, name in enumerate(columns)}

    def value(column: str) -> str:
        index = position[column]
        if converters[index] is None:
            return f"row[{index}]"
        namespace[f"c{index}"] = converters[index]
        return f"c{index}(row[{index}])"

    parts = []
    for key, source in shape.items():
        if source is FILLED_LATER:
            expression = "None"
        elif isinstance(source, Nested):
            inner = ", ".join(f"{name!r}: {value(column)}" for name, column in source.fields.items())
            expression = f"None if row[{position[source.null_when]}] is None else {{{inner}}}"
        else:
            expression = value(source)
        parts.append(f"{key!r}: {expression}")
    return "lambda row: {" + ", ".join(parts) + "}"


def _check_shape(columns: tuple[str, ...], shape: Shape) -> None:
    """Every column in the shape exactly once (a Nested's null_when may be a column shown on its own too)."""
    used: list[str] = []
    for source in shape.values():
        if isinstance(source, Nested):
            used.extend(source.fields.values())
            if source.null_when not in columns:
                raise ValueError(f"Nested null_when {source.null_when!r} is not a selected column")
        elif source is not FILLED_LATER:
            used.append(source)
    if sorted(used) != sorted(columns):
        raise ValueError(f"the shape must use each selected column once: {sorted(used)} vs {sorted(columns)}")


def compile_read(
    statement: Select[Any], dialect: str, wire: bool = True, shape: Shape | None = None,
    cursor: tuple[str, ...] | None = None,
) -> CompiledRead:
    """Compile a SELECT whose variable parts are named bindparams (at most one expanding, placed last); its
    rows come in `shape` (default: each column under its name) as wire values, or with `wire=False` as the
    Python values SQLAlchemy would give; `cursor` names the columns of a cursor list's sort key."""
    compiled = statement.compile(dialect=_SQLALCHEMY_DIALECTS[dialect])
    names = tuple(compiled.positiontup or ())
    expanding = [name for name in names if expanding_placeholder(name) in compiled.string]
    if len(expanding) > 1 or (expanding and names[-1] != expanding[0]):
        raise ValueError("at most one expanding parameter, and it must be the last")
    processors = bind_processors(compiled)  # the dialect's own value conversions
    columns = tuple(str(column.key) for column in statement.selected_columns)
    conversions = {
        name: conversion_of(column.type) for name, column in zip(columns, statement.selected_columns, strict=True)
    }
    converters = tuple((c.wire if wire else c.python)[dialect] for c in conversions.values())
    shape = {name: name for name in columns} if shape is None else shape
    _check_shape(columns, shape)
    namespace: dict[str, Any] = {}
    make_record = eval(_record_source(columns, converters, shape, namespace), namespace)  # noqa: S307 (our names)
    make_key = None
    if cursor is not None:
        make_key = _key_maker(columns, conversions, cursor, dialect)
    return CompiledRead(
        sql=compiled.string,
        params=names,
        processors=tuple(processors.get(name) for name in names),
        expanding=expanding[0] if expanding else None,
        placeholder=expanding_placeholder(expanding[0]) if expanding else None,
        dialect=dialect,
        defaults={name: value for name, value in compiled.params.items() if value is not None},
        make_record=make_record,
        make_key=make_key,
    )


def _key_maker(
    columns: tuple[str, ...], conversions: Mapping[str, Conversion], cursor: tuple[str, ...], dialect: str
) -> Callable[[Sequence[Any]], tuple[str, ...]]:
    """A function giving a driver row's cursor key: each cursor column's text through the table's `key` row."""
    steps: list[tuple[int, Converter | None]] = []
    for name in cursor:
        key = conversions[name].key
        if key is None:
            raise TypeError(f"column {name!r} cannot be a cursor's sort key (no key conversion)")
        steps.append((columns.index(name), key[dialect]))

    def make_key(row: Sequence[Any]) -> tuple[str, ...]:
        return tuple(str(row[i]) if convert is None else convert(row[i]) for i, convert in steps)

    return make_key


class Reader(Protocol):
    """Runs read queries on one database: the only road for a request's reads."""

    dialect: str

    async def fetch(self, query: ReadQuery, **values: Any) -> list[dict[str, Any]]:
        """Every row of the query, in its wire shape."""
        ...


class ReadQuery:
    """One SELECT, compiled for SQLite and for PostgreSQL where it is declared; given as a statement or, when its
    SQL differs by dialect (a UTC day expression), as a function of the dialect's name.

    `shape` is the wire dict of each row (see compile_read); `cursor` names the sort-key columns of a cursor
    list (its rows then come as CursorRows); `wire=False` gives Python values instead of wire values.
    """

    def __init__(
        self,
        statement: Select[Any] | Callable[[str], Select[Any]],
        *,
        wire: bool = True,
        on_loop: bool = False,
        shape: Shape | None = None,
        cursor: tuple[str, ...] | None = None,
    ) -> None:
        self.statement = statement
        self.wire = wire
        # A read of one index range (a key by its hash, a keyset page): tens of microseconds, less than the hop
        # to a worker thread and back costs, so SQLite runs it on the event loop's own thread. Anything that may
        # scan (a substring search, a deep OFFSET, a count) stays on the threads, so it never stalls the loop.
        self.on_loop = on_loop
        self.shape = shape
        self.cursor = cursor
        # Compiled now, where the query is declared (import time for a module's queries, the first use of a
        # filter combination for cached ones): an uncovered column type or a wrong shape fails here.
        self._compiled = {
            dialect: compile_read(
                statement(dialect) if callable(statement) else statement, dialect, wire, shape, cursor
            )
            for dialect in DIALECTS
        }

    def for_dialect(self, dialect: str) -> CompiledRead:
        """The query compiled for this dialect."""
        return self._compiled[dialect]


class SQLiteReader:
    """Reads on a small thread pool, each thread with its own sqlite3 connection: one hop per statement."""

    dialect = "sqlite"

    def __init__(self, path: str, threads: int = 4, busy_timeout_ms: int = 10000) -> None:
        self._path = path
        self._threads = threads
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            connection.execute("PRAGMA query_only=ON")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _run(self, sql: str, args: list[Any]) -> list[Any]:
        return self._connection().execute(sql, args).fetchall()

    async def fetch(self, query: ReadQuery, **values: Any) -> list[dict[str, Any]]:
        """Every row of the query, in its wire shape."""
        compiled = query.for_dialect("sqlite")
        sql, args = compiled.arguments(values)
        if query.on_loop:
            try:
                return compiled.convert(self._run(sql, args))
            except sqlite3.OperationalError as error:
                raise sa_exc.OperationalError(sql, args, error) from error
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="chipp-read")
        try:
            rows = await asyncio.get_running_loop().run_in_executor(self._pool, self._run, sql, args)
        except sqlite3.OperationalError as error:
            # As the engine path raises it, so "database is locked" or a vanished file answer alike (503).
            raise sa_exc.OperationalError(sql, args, error) from error
        return compiled.convert(rows)

    def close(self) -> None:
        """Stop the threads and close their connections; like a disposed engine, the next read starts afresh."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
            # Forget every thread's connection, the event loop's own (on_loop reads) included.
            self._local = threading.local()


class PostgresReader:
    """Reads on an asyncpg pool of its own, created on first use in the running loop."""

    dialect = "postgresql"

    def __init__(self, dsn: str, pool_size: int, timeout_seconds: float) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._timeout = timeout_seconds
        self._pool: Any = None
        self._creating: asyncio.Lock | None = None

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        import asyncpg

        if self._creating is None:
            self._creating = asyncio.Lock()
        async with self._creating:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,  # nothing to connect at start: a database that is down is a 503 later, not a crash
                    max_size=self._pool_size,
                    timeout=self._timeout,
                    command_timeout=self._timeout,
                    server_settings={"statement_timeout": str(int(self._timeout * 1000))},
                    max_inactive_connection_lifetime=60,
                    reset=_keep_session,
                )
        return self._pool

    async def fetch(self, query: ReadQuery, **values: Any) -> list[dict[str, Any]]:
        """Every row of the query, in its wire shape."""
        compiled = query.for_dialect("postgresql")
        sql, args = compiled.arguments(values)
        pool = await self._get_pool()
        # The acquire's wait is bounded like the engine's pool_timeout: a full pool is a 503, not a hang.
        async with pool.acquire(timeout=self._timeout) as connection:
            rows = await connection.fetch(sql, *args)
        return compiled.convert(rows)

    def close(self) -> None:
        """Drop every connection at once (called from the engine's dispose, which is synchronous here); the next
        read opens a new pool."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


async def _keep_session(_connection: Any) -> None:
    """The pool's reset on release: nothing, because these connections only ever run single SELECTs.

    asyncpg's default reset (`RESET ALL; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()`) is a round
    trip on every release, which doubled the database round trips of a list request. No reader statement
    sets a session variable, opens a cursor, listens or locks (measured: acquire, `SELECT 1`, release took 180
    microseconds of CPU with the default reset, 71 without). asyncpg still rolls back a transaction left open
    and waits out a cancelled query before the connection is reused.
    """


def make_reader(engine: AsyncEngine, database_url: str, timeout_seconds: float) -> SQLiteReader | PostgresReader:
    """The reader for the database an engine talks to, closed when that engine is disposed."""
    url = make_url(database_url)
    reader: SQLiteReader | PostgresReader
    if url.get_backend_name() == "sqlite":
        reader = SQLiteReader(url.database or ":memory:")
    else:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        reader = PostgresReader(dsn, pool_size=10, timeout_seconds=timeout_seconds)
    event.listen(engine.sync_engine, "engine_disposed", lambda _engine: reader.close())
    return reader
