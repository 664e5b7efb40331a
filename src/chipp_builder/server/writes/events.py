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
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chipp_builder.schemas.common import utc_now
from chipp_builder.schemas.events import EVENT_KINDS
from chipp_builder.server.db.feed_signal import MOVED_FEEDS
from chipp_builder.server.db.tables import app_counter, event
from chipp_builder.server.db.writelock import begin_immediate

FEED_HEAD = "feed_head"  # app_counter: the app's last event position (0: none yet)
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


async def record(db: AsyncConnection, app_id: UUID, changes: Iterable[Change]) -> int | None:
    """Append the changes' events to the app's feed in the caller's transaction; the new head, or None when
    nothing changed. Call it last in the transaction: the head's row lock lasts until the commit."""
    merged = merge(changes)
    if not merged:
        return None
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
    db.info.setdefault(MOVED_FEEDS, set()).add(app_id)
    return head


async def head_of(db: AsyncConnection, app_id: UUID) -> int:
    """The app's feed head as this transaction sees it (0 when the app has no events yet)."""
    query = select(app_counter.c.row_count).where(
        app_counter.c.app_id == app_id, app_counter.c.resource == FEED_HEAD
    )
    return int((await db.execute(query)).scalar() or 0)


def event_id(app_id: UUID, position: int) -> str:
    """The event's stable id: derived from the app and the position, so replays and deliveries repeat it."""
    digest = hashlib.blake2b(app_id.bytes + position.to_bytes(8, "big"), digest_size=12).hexdigest()
    return "evt_" + digest


async def prune_events(engine: AsyncEngine, retention: timedelta, now: datetime | None = None) -> int:
    """Delete every app's events older than the retention, remembering per app the newest position pruned (a
    cursor before it is a 410); the number of events deleted."""
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
        for app_id, position, count in newest:
            await db.execute(delete(event).where(event.c.app_id == app_id, event.c.position <= position))
            await _raise_pruned(db, app_id, int(position))
            deleted += int(count)
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
