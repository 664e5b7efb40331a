"""The event feed's write half: the changes of a transaction become events, in the transaction, under the app's
feed counter; plus pruning past the retention (db/feed_signal.py wakes the long polls after the commit).

Why a counter row rather than an identity column: on PostgreSQL an id is taken when a row is inserted but
becomes visible when its transaction commits, so a reader could see a later id before an earlier one and a
client storing the later position would never see the earlier event. The app's "feed_head" row of app_counter
is updated (and so locked) by the writing transaction just before it commits: a second writer of the same app
waits for the first to commit before it takes its positions, so positions follow commit order and a reader
that reads the head first never passes an event still to come. The lock is held only from the events' insert
to the commit (each writer records its events last), so writers of one app overlap everywhere but there;
writers of different apps never wait for each other. On SQLite the single writer orders them already.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import Uuid, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chipp_builder.schemas.common import utc_now
from chipp_builder.schemas.events import EVENT_KINDS
from chipp_builder.server.db.feed_signal import MOVED_FEEDS
from chipp_builder.server.db.tables import UTCDateTime, app_counter, event
from chipp_builder.server.db.writelock import begin_immediate

FEED_HEAD = "feed_head"  # app_counter, PostgreSQL only: the app's last event position, its row the writers' lock
FEED_PRUNED = "feed_pruned"  # app_counter: every event at or before this position was pruned
_CHUNK = 2000  # events per executemany

CREATED, UPDATED, DELETED = "created", "updated", "deleted"


@dataclass(frozen=True, slots=True)
class Change:
    """One object's change: its kind (`session`, `message`, ...), what happened, its id and, for messages and
    ratings, its session."""

    kind: str
    action: str
    object_id: str
    session_id: UUID | None = None


# Two changes of one object in one transaction become one event: what a reader sees after the commit.
_MERGED = {
    (CREATED, UPDATED): CREATED,
    (CREATED, DELETED): DELETED,
    (UPDATED, CREATED): UPDATED,
    (UPDATED, DELETED): DELETED,
    (DELETED, CREATED): UPDATED,
    (DELETED, UPDATED): UPDATED,
}


def merge(changes: Iterable[Change]) -> list[Change]:
    """One change per object, in the order each object first changed."""
    merged: dict[tuple[str, str], Change] = {}
    for change in changes:
        if change.kind not in EVENT_KINDS:
            raise ValueError(f"no events for {change.kind!r}")
        key = (change.kind, change.object_id)
        earlier = merged.get(key)
        if earlier is None:
            merged[key] = change
        elif earlier.action != change.action:
            action = _MERGED[(earlier.action, change.action)]
            merged[key] = Change(change.kind, action, change.object_id, change.session_id or earlier.session_id)
    return list(merged.values())


def _advance_head(db: AsyncConnection, app_id: UUID, count: int) -> Any:
    """INSERT .. ON CONFLICT DO UPDATE that moves the head by `count` and returns the new head (locking the
    row until commit)."""
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[db.dialect.name]
    stmt = dialect.insert(app_counter).values(app_id=app_id, resource=FEED_HEAD, row_count=count)
    stmt = stmt.on_conflict_do_update(
        index_elements=["app_id", "resource"], set_={"row_count": app_counter.c.row_count + count}
    )
    return stmt.returning(app_counter.c.row_count)


async def record(db: AsyncConnection, app_id: UUID, changes: Iterable[Change]) -> int:
    """Append the changes' events to the app's feed in the caller's transaction; how many (one per object).
    Call it last in the transaction: on PostgreSQL the head's row lock lasts until the commit. The feed's
    position afterwards is head_of()."""
    merged = merge(changes)
    if not merged:
        return 0
    db.info.setdefault(MOVED_FEEDS, set()).add(app_id)
    if db.dialect.name == "sqlite":
        await _append_on_sqlite(db, app_id, merged)
        return len(merged)
    head = int((await db.execute(_advance_head(db, app_id, len(merged)))).scalar_one())
    first = head - len(merged) + 1
    now = utc_now()
    rows = [
        {
            "app_id": app_id,
            "position": first + offset,
            "type": f"{change.kind}.{change.action}",
            "object_id": change.object_id,
            "session_id": change.session_id,
            "occurred_at": now,
        }
        for offset, change in enumerate(merged)
    ]
    for start in range(0, len(rows), _CHUNK):
        await db.execute(event.insert(), rows[start : start + _CHUNK])
    return len(merged)


@lru_cache(maxsize=128)
def _sqlite_append(count: int) -> str:
    """The SQL appending `count` events (plain SQL, the same text for every app: SQLite keeps it prepared)."""
    rows = ", ".join(["(?, ?, ?, ?)"] * count)
    # The scalar subquery is uncorrelated, so SQLite reads it once, before the insert: every row is numbered
    # after the same newest event.
    return (
        f"WITH changes(n, type, object_id, session_id) AS (VALUES {rows}) "
        "INSERT INTO event (app_id, position, type, object_id, session_id, occurred_at) "
        "SELECT ?, coalesce((SELECT max(position) FROM event WHERE app_id = ?), 0) + n, type, object_id, "
        "session_id, ? FROM changes"
    )


async def _append_on_sqlite(db: AsyncConnection, app_id: UUID, merged: list[Change]) -> None:
    """SQLite: the events in one INSERT .. SELECT, numbered after the app's newest event (the single writer
    holds the database's write lock, so nobody numbers between the read and the insert).

    Why not the counter row here: on SQLite every statement of a write costs a hop to the driver's thread,
    and the counter's upsert was one more per request (measured: conversations/log fell to 0.75 of its rate
    without events; one statement keeps most of it). Pruning always keeps an app's newest event, so the
    numbering never goes back.
    """
    to_uuid = Uuid().bind_processor(db.dialect)
    to_time = UTCDateTime().bind_processor(db.dialect)
    assert to_uuid is not None and to_time is not None
    app, now = to_uuid(app_id), to_time(utc_now())
    for start in range(0, len(merged), _CHUNK):
        chunk = merged[start : start + _CHUNK]
        params: list[Any] = []
        for n, change in enumerate(chunk, start=1):
            session_id = None if change.session_id is None else to_uuid(change.session_id)
            params += [n, f"{change.kind}.{change.action}", change.object_id, session_id]
        params += [app, app, now]
        await db.exec_driver_sql(_sqlite_append(len(chunk)), tuple(params))


async def head_of(db: AsyncConnection, app_id: UUID) -> int:
    """The app's feed head as this transaction sees it (0 when the app has no events yet): its newest event's
    position (pruning keeps each app's newest event)."""
    query = select(func.max(event.c.position)).where(event.c.app_id == app_id)
    return int((await db.execute(query)).scalar() or 0)


def event_id(app_id: UUID, position: int) -> str:
    """The event's stable id: derived from the app and the position, so replays and deliveries repeat it."""
    digest = hashlib.blake2b(app_id.bytes + position.to_bytes(8, "big"), digest_size=12).hexdigest()
    return "evt_" + digest


async def prune_events(engine: AsyncEngine, retention: timedelta, now: datetime | None = None) -> int:
    """Delete every app's events older than the retention, remembering per app the newest position pruned (a
    cursor before it is a 410), and keeping each app's newest event (its position is the feed's end); the
    number of events deleted."""
    cutoff = (now or utc_now()) - retention
    async with engine.begin() as db:
        await begin_immediate(db)
        newest = (
            await db.execute(
                select(event.c.app_id, func.max(event.c.position), func.count())
                .where(event.c.occurred_at < cutoff)
                .group_by(event.c.app_id)
            )
        ).all()
        deleted = 0
        for app_id, position, _count in newest:
            through = min(int(position), await head_of(db, app_id) - 1)
            if through < 1:
                continue
            result = await db.execute(delete(event).where(event.c.app_id == app_id, event.c.position <= through))
            await _raise_pruned(db, app_id, through)
            deleted += result.rowcount
    return deleted


async def _raise_pruned(db: AsyncConnection, app_id: UUID, position: int) -> None:
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[db.dialect.name]
    stmt = dialect.insert(app_counter).values(app_id=app_id, resource=FEED_PRUNED, row_count=position)
    stmt = stmt.on_conflict_do_update(
        index_elements=["app_id", "resource"],
        set_={"row_count": func.max(app_counter.c.row_count, position) if db.dialect.name == "sqlite"
              else func.greatest(app_counter.c.row_count, position)},
    )
    await db.execute(stmt)
