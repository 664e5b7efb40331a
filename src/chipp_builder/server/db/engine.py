"""Engine creation: the URL picks the async driver; SQLite gets WAL, foreign keys and a busy timeout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(database_url: str) -> URL:
    """Turn a user's `sqlite:///…` or `postgresql://…` URL into one naming our async driver."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL scheme {url.drivername!r}: use sqlite:/// or postgresql://")


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether this engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the last commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Deleted rows are overwritten with zeros, so an erased person's data leaves the file's bytes (SPEC 11).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_engine(
    database_url: str,
    *,
    timeout_seconds: float = 5.0,
    pool_size: int = 10,
    statement_timeout_seconds: float | None = None,
) -> AsyncEngine:
    """Create the async engine for a database URL (statements limited to 6 x timeout_seconds unless given)."""
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # The server passes statement_timeout_seconds = timeout_seconds, so every wait of a request is bounded
    # and an unreachable database is a 503 within it, never a hang: connecting ("timeout"), waiting for a
    # pooled connection (pool_timeout), and each statement, including the pre-ping on checkout, both on the
    # server (statement_timeout, which cancels cleanly) and on the client (command_timeout, which also
    # covers a network that silently drops packets). Batch work (migrations, imports, administration)
    # keeps the longer default, as a DROP DATABASE or an index build may legitimately take a while.
    statement_seconds = statement_timeout_seconds or timeout_seconds * 6
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a connection the server closed while idle is replaced, not handed to a request
        pool_timeout=timeout_seconds,
        connect_args={
            "timeout": timeout_seconds,
            "command_timeout": statement_seconds,
            "server_settings": {"statement_timeout": str(int(statement_seconds * 1000))},
        },
    )


async def checkpoint_wal(engine: AsyncEngine) -> None:
    """On SQLite, copy the write-ahead log into the database file and empty it (after an erasure, so the erased
    rows' old pages leave the WAL too); elsewhere nothing."""
    if is_sqlite(engine):
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


async def execute_outside_transaction(database_url: str, statement: str) -> None:
    """Run one administrative statement (CREATE DATABASE, DROP DATABASE, VACUUM) in autocommit mode."""
    from sqlalchemy import text

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


# SQLSTATE classes that mean "the database cannot do work now", not "this query is wrong": connection
# exceptions, invalid authorization (a misconfigured or changing server), an unknown database, transaction
# rollbacks (a hot standby cancelling a read that conflicts with replay, a deadlock: a retry succeeds),
# insufficient resources, operator intervention (shutdown, "starting up", a statement timeout), system errors.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "28", "3D", "40", "53", "57", "58")


def _driver_errors() -> tuple[type[Exception], ...]:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg comes with the server extra
        return ()
    # Raised as they are (not wrapped by SQLAlchemy) when a connection attempt fails.
    return (asyncpg.PostgresError, asyncpg.InterfaceError)


DRIVER_ERRORS = _driver_errors()


# SQLite's SQLITE_FULL ("database or disk is full": the disk, or the database's max_page_count) and
# PostgreSQL's disk_full (53100: "could not extend file ...: No space left on device"). The rest of
# PostgreSQL's class 53 (out of memory, too many connections) passes, so it stays a 503.
_SQLITE_FULL = 13
_DISK_FULL_SQLSTATE = "53100"
_DISK_FULL_TEXT = "database or disk is full"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """An error, the driver error it wraps and those it was raised from or during, each once."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        pending.extend((getattr(error, "orig", None), error.__cause__, error.__context__))


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) means the database has no room to write: a 507."""
    for error in _causes(exc):
        if getattr(error, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if (getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)) == _DISK_FULL_SQLSTATE:
            return True
        # aiosqlite re-raises sqlite3's error as it is; older Pythons' sqlite3 errors carry no code.
        if type(error).__module__.startswith(("sqlite3", "aiosqlite")) and _DISK_FULL_TEXT in str(error):
            return True
    return False


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) means the database is unreachable or refusing work."""
    from sqlalchemy import exc as sa_exc

    for error in _causes(exc):
        if isinstance(
            error,
            OSError  # refused, reset, timed out (TimeoutError is an OSError)
            | sa_exc.OperationalError
            | sa_exc.InterfaceError
            | sa_exc.DisconnectionError
            | sa_exc.TimeoutError,  # no pooled connection came free in time
        ):
            return True
        if getattr(error, "connection_invalidated", False):
            return True
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
            return True
    return False
