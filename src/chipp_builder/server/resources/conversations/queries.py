"""SQL for conversations/log: lock a session, read its newest message time, insert sessions and messages,
and move the session's derived columns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import message, session

# Keeps each IN list far below SQLite's and asyncpg's bound-parameter limits.
_CHUNK = 500


async def lock_session(db: AsyncConnection, app_id: UUID, session_id: UUID) -> Any | None:
    """The app's session (`id`, `consumer_id`) and the created_at of its newest message (`newest_at`),
    locked until commit so that concurrent appends to it queue and its message_count stays exact;
    None when the session is not the app's.

    PostgreSQL: FOR UPDATE on the row, then the newest message read in a second statement, which in READ
    COMMITTED sees whatever the append we waited for committed (a subquery in the locking statement would
    keep that statement's older snapshot). SQLite: the caller already holds the database's write lock, so
    one statement reads both.
    """
    where = (session.c.id == session_id, session.c.app_id == app_id)
    if db.dialect.name == "sqlite":
        newest = select(func.max(message.c.created_at)).where(message.c.session_id == session.c.id)
        query = select(session.c.id, session.c.consumer_id, newest.scalar_subquery().label("newest_at"))
        return (await db.execute(query.where(*where))).first()
    query = select(session.c.id, session.c.consumer_id).where(*where).with_for_update()
    locked = (await db.execute(query)).first()
    if locked is None:
        return None
    newest_at = (
        await db.execute(select(func.max(message.c.created_at)).where(message.c.session_id == session_id))
    ).scalar_one()
    return SimpleNamespace(id=locked.id, consumer_id=locked.consumer_id, newest_at=newest_at)


async def taken_message_ids(db: AsyncConnection, app_id: UUID, ids: Sequence[str]) -> set[str]:
    """Which of these message ids the app already uses."""
    taken: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        query = select(message.c.id).where(message.c.app_id == app_id, message.c.id.in_(chunk))
        taken.update((await db.execute(query)).scalars())
    return taken


async def insert_session(db: AsyncConnection, row: dict[str, Any]) -> None:
    """Create a session (the caller gives every column, counts included)."""
    await db.execute(session.insert().values(**row))


async def insert_messages(db: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert messages in one executemany."""
    await db.execute(message.insert(), rows)


async def add_to_session(db: AsyncConnection, session_id: UUID, count: int, newest: datetime) -> None:
    """Count `count` more messages on a locked session and move last_activity_at to `newest` if later.

    One set-based UPDATE relative to the row's own values, in the transaction that inserted the messages,
    so the count matches the rows whatever other appends commit before or after.
    """
    # Typed as the column, so the value is stored exactly as the column stores it (UTC text on SQLite).
    newest_value = literal(newest, session.c.last_activity_at.type)
    await db.execute(
        update(session)
        .where(session.c.id == session_id)
        .values(
            message_count=session.c.message_count + count,
            last_activity_at=case(
                (session.c.last_activity_at < newest_value, newest_value), else_=session.c.last_activity_at
            ),
        )
    )
