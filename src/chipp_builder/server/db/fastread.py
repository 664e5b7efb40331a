"""The read fast path: SELECTs built with SQLAlchemy Core, compiled once per dialect, run on the driver itself.

Why: measured on the sessions page (issue 7), SQLAlchemy's async execution path cost about ten times the query
itself: checking a connection out of the pool and resetting it (about 0.3 ms), building the statement and its
cache key, four aiosqlite thread hops per statement, and per-value result processing. Here a statement is
compiled once (`ReadStatement`), a request runs it with one driver call (one thread hop on SQLite, one
round trip on PostgreSQL), and each column is converted once, straight to its wire value (UUIDs as strings,
timestamps as `…Z` strings on SQLite, JSON as its stored text), ready for orjson.

`Reader` is the seam: `SQLiteReader` keeps one sqlite3 connection per thread of a small pool (WAL readers never
block the writer); `PostgresReader` keeps an asyncpg pool with the same connect and statement timeouts as the
engine. Either is created lazily in the running event loop, and closed when the read engine is disposed, so
its lifetime follows the engine's. Writes, and reads that are not hot, stay on the engine.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import orjson
from sqlalchemy import JSON, Boolean, Uuid, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import asyncpg as pg_dialect
from sqlalchemy.dialects.sqlite import aiosqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from chipp_builder.server.db.tables import UTCDateTime

# no-untyped-call: SQLAlchemy leaves the asyncpg dialect's __init__ unannotated (its aiosqlite one is typed).
_DIALECTS = {"sqlite": sqlite_dialect.dialect(), "postgresql": pg_dialect.dialect()}  # type: ignore[no-untyped-call]
_EXPANDING = "__[POSTCOMPILE_{}]"


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


def _to_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _uuid_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _sqlite_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _hex_to_uuid_object(value: str | None) -> UUID | None:
    return None if value is None else UUID(hex=value)


def _python_converter(column_type: Any, dialect: str) -> Callable[[Any], Any] | None:
    """The function turning a driver value into the Python value SQLAlchemy would give (None: as it comes)."""
    if isinstance(column_type, Uuid):
        return _hex_to_uuid_object if dialect == "sqlite" else None
    if isinstance(column_type, UTCDateTime):
        return _sqlite_datetime if dialect == "sqlite" else None
    if isinstance(column_type, Boolean) and dialect == "sqlite":
        return _to_bool
    if isinstance(column_type, JSON):
        return _json_loads
    return None


def _json_loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _converter(column_type: Any, dialect: str) -> Callable[[Any], Any] | None:
    """The function turning a driver value of this column into its wire value (None: as it comes)."""
    if isinstance(column_type, Uuid):
        return _hex_to_uuid if dialect == "sqlite" else _uuid_str
    if isinstance(column_type, UTCDateTime):
        return _sqlite_stamp if dialect == "sqlite" else None  # aware datetimes: orjson writes them with Z
    if isinstance(column_type, Boolean) and dialect == "sqlite":
        return _to_bool
    return None  # JSON too: its stored text, for the caller to send on as an orjson.Fragment (no re-encoding)


@dataclass(frozen=True)
class ReadStatement:
    """A SELECT compiled for one dialect: SQL text, parameter names in order with their bind processors, the
    result's column names and one converter per column."""

    sql: str
    params: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    expanding: str | None
    columns: tuple[str, ...]
    converters: tuple[Callable[[Any], Any] | None, ...]
    dialect: str
    defaults: dict[str, Any]  # values the statement carries itself (e.g. SQLite's OFFSET beside a bound LIMIT)
    make_record: Callable[[Sequence[Any]], dict[str, Any]]  # one row -> its dict of wire values

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
            items = list(values[self.expanding])
            first = len(args) + 1
            if self.dialect == "postgresql":
                marks = ", ".join(f"${n}" for n in range(first, first + len(items)))
            else:
                marks = ", ".join("?" * len(items))
            sql = sql.replace(_EXPANDING.format(self.expanding), marks or "NULL")
            args.extend(items)
        return sql, args

    def convert(self, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Rows as dicts of wire values."""
        return list(map(self.make_record, rows))


def _record_maker(columns: tuple[str, ...], converters: tuple[Callable[[Any], Any] | None, ...]) -> Any:
    """A function turning one row into its dict of wire values: a dict display naming each column, with the
    column's converter called inline where it has one, e.g. `lambda row: {"id": c0(row[0]), "title": row[1]}`.

    Why generated (as dataclasses and namedtuple generate their methods): converting rows is the hottest Python
    of a list page, and this form took a 26-row page of sessions from about 90 microseconds (a comprehension
    over every column, testing for a converter) to about 33. The source holds only column names (repr-quoted)
    and positions, never data.
    """
    parts = []
    namespace: dict[str, Any] = {}
    for index, (name, converter) in enumerate(zip(columns, converters, strict=True)):
        value = f"row[{index}]"
        if converter is not None:
            namespace[f"c{index}"] = converter
            value = f"c{index}({value})"
        parts.append(f"{name!r}: {value}")
    return eval("lambda row: {" + ", ".join(parts) + "}", namespace)  # noqa: S307 (our own column names)


def compile_read(statement: Select[Any], dialect: str, wire: bool = True) -> ReadStatement:
    """Compile a SELECT whose variable parts are named bindparams (at most one expanding, placed last); its
    rows come as wire values, or with `wire=False` as the Python values SQLAlchemy would give."""
    compiled = statement.compile(dialect=_DIALECTS[dialect])
    names = tuple(compiled.positiontup or ())
    expanding = [name for name in names if _EXPANDING.format(name) in compiled.string]
    if len(expanding) > 1 or (expanding and names[-1] != expanding[0]):
        raise ValueError("at most one expanding parameter, and it must be the last")
    processors: dict[str, Any] = dict(compiled._bind_processors)  # the dialect's own value conversions
    columns = tuple(str(column.key) for column in statement.selected_columns)
    make = _converter if wire else _python_converter
    converters = tuple(make(column.type, dialect) for column in statement.selected_columns)
    return ReadStatement(
        sql=compiled.string,
        params=names,
        processors=tuple(processors.get(name) for name in names),
        expanding=expanding[0] if expanding else None,
        columns=columns,
        converters=converters,
        dialect=dialect,
        defaults={name: value for name, value in compiled.params.items() if value is not None},
        make_record=_record_maker(columns, converters),
    )


class Reader(Protocol):
    """Runs compiled reads on one database."""

    dialect: str

    async def fetch(self, statement: Statements, **values: Any) -> list[dict[str, Any]]:
        """Every row of the statement, as dicts of wire values."""
        ...


class Statements:
    """One SELECT, compiled lazily for each dialect it runs on; given as a statement or, when its SQL differs by
    dialect (a UTC day expression), as a function of the dialect's name."""

    def __init__(
        self, statement: Select[Any] | Callable[[str], Select[Any]], wire: bool = True, inline: bool = False
    ) -> None:
        self.statement = statement
        self.wire = wire
        # A read of one index range (a key by its hash, a keyset page): tens of microseconds, less than the hop
        # to a worker thread and back costs, so SQLite runs it in the event loop's own thread. Anything that may
        # scan (a substring search, a deep OFFSET, a count) stays on the threads, so it never stalls the loop.
        self.inline = inline
        self._compiled: dict[str, ReadStatement] = {}

    def for_dialect(self, dialect: str) -> ReadStatement:
        """The statement compiled for this dialect (once)."""
        found = self._compiled.get(dialect)
        if found is None:
            statement = self.statement(dialect) if callable(self.statement) else self.statement
            found = self._compiled[dialect] = compile_read(statement, dialect, self.wire)
        return found


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

    async def fetch(self, statement: Statements, **values: Any) -> list[dict[str, Any]]:
        """Every row of the statement, as dicts of wire values."""
        compiled = statement.for_dialect("sqlite")
        sql, args = compiled.arguments(values)
        if statement.inline:
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
            # Forget every thread's connection, the event loop's own (inline reads) included.
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

    async def fetch(self, statement: Statements, **values: Any) -> list[dict[str, Any]]:
        """Every row of the statement, as dicts of wire values."""
        compiled = statement.for_dialect("postgresql")
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
