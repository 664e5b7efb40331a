"""Write transactions that serialize where they must: SQLite's write lock taken up front (and writers
queued in-process first), PostgreSQL's transaction-scoped advisory locks."""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import Engine, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.feed_signal import MOVED_FEEDS, notify_committed, take_moved

_writer_queues: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()
QUEUE_TIMEOUT_SECONDS = 10.0  # the same wait as the SQLite busy timeout (db/engine.py)


@asynccontextmanager
async def write_transaction(db: AsyncConnection) -> AsyncIterator[None]:
    """Run the block as the request's write: committed when it ends normally (before any response is
    sent, so an acknowledged write is durable), rolled back when it raises.

    On SQLite the process's writers first queue on an asyncio lock, then take the database's write lock
    (BEGIN IMMEDIATE). Why both: SQLite's busy handler polls with growing sleeps, so many connections
    contending for the write lock waste most of their time asleep and are served in no order; queuing in
    the event loop hands the lock over at once, in arrival order, and leaves the busy timeout to settle
    only contention between processes. PostgreSQL needs neither: rows are locked where they are written.
    """
    if db.dialect.name == "sqlite":
        queue = _writer_queues.setdefault(db.sync_engine, asyncio.Lock())
        # Bounded like SQLite's own busy timeout: past it the request is a 503 (TimeoutError), not a hang.
        async with asyncio.timeout(QUEUE_TIMEOUT_SECONDS):
            await queue.acquire()
        try:
            async with _committed(db):
                await begin_immediate(db)
                yield
        finally:
            queue.release()
    else:
        async with _committed(db):
            yield


@asynccontextmanager
async def _committed(db: AsyncConnection) -> AsyncIterator[None]:
    try:
        yield
    except BaseException:
        db.info.pop(MOVED_FEEDS, None)
        await db.rollback()
        raise
    moved = take_moved(db)
    await db.commit()
    notify_committed(db, moved)


async def begin_immediate(db: AsyncConnection) -> None:
    """On SQLite, start the transaction with the database's write lock (BEGIN IMMEDIATE); elsewhere nothing.

    Why: SQLite allows one writer. A deferred transaction that reads and then writes can find, at its first
    write, that another writer committed since its read snapshot, and fails at once with "database is
    locked" whatever the busy timeout. Taking the lock before the first read makes writers queue (for up to
    the busy timeout) instead, and everything the transaction reads stays true until it commits.
    """
    if db.dialect.name != "sqlite":
        return
    raw = await db.get_raw_connection()
    # Python's sqlite3 opens a transaction only before a data change, so after the authentication read
    # none is open; one that is already open has written and so already holds the lock.
    if not raw.driver_connection.in_transaction:  # type: ignore[union-attr]
        await db.exec_driver_sql("BEGIN IMMEDIATE")


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


async def advisory_lock(db: AsyncConnection, *names: str) -> None:
    """On PostgreSQL, hold transaction-level advisory locks on these names until commit; elsewhere nothing.

    Used where there is no row to lock yet (two requests creating the same consumer). The locks are taken
    in a fixed order so two transactions wanting overlapping sets cannot deadlock.
    """
    if db.dialect.name != "postgresql":
        return
    for lock_id in sorted({_lock_id(name) for name in names}):
        await db.execute(select(func.pg_advisory_xact_lock(lock_id)))
