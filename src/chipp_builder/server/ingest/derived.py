"""Recompute the derived columns (session message counts and last activity, tag usage counts) from the rows."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import message, message_tag, session, tag

# Keeps each IN list well under SQLite's and asyncpg's bound-parameter limits (32,766 / 32,767).
_CHUNK = 1000


def _later(first: ColumnElement, second: ColumnElement) -> ColumnElement:
    """The later of two non-null timestamps, spelled the same on every backend.

    SQLite's scalar max(a, b) and PostgreSQL's greatest(a, b) differ in name and in how they treat NULL;
    a CASE is portable, and it compares correctly on SQLite because UTCDateTime stores fixed-width UTC text.
    """
    return case((second > first, second), else_=first)


async def recompute_derived(
    db: AsyncConnection, app_id: UUID, session_ids: Collection[UUID] | None = None
) -> None:
    """Recompute message_count and last_activity_at of the given sessions (all the app's when None) and
    usage_count of every tag of the app, from the message and message_tag rows.

    Why set-based: the counts are columns the server maintains (so list endpoints read them without a join),
    and after a bulk write they must match the rows exactly. One UPDATE with correlated subqueries per chunk
    of sessions lets the database do the counting through its indexes (message by session_id, message_tag by
    tag_id), instead of a round trip per row, and works unchanged on SQLite and PostgreSQL.
    last_activity_at becomes the latest of started_at, the newest message's created_at and ended_at.
    """
    newest_message = (
        select(func.max(message.c.created_at))
        .where(message.c.app_id == session.c.app_id, message.c.session_id == session.c.id)
        .scalar_subquery()
    )
    message_total = (
        select(func.count())
        .select_from(message)
        .where(message.c.app_id == session.c.app_id, message.c.session_id == session.c.id)
        .scalar_subquery()
    )
    activity = _later(
        _later(session.c.started_at, func.coalesce(newest_message, session.c.started_at)),
        func.coalesce(session.c.ended_at, session.c.started_at),
    )
    base = (
        update(session)
        .where(session.c.app_id == app_id)
        .values(message_count=message_total, last_activity_at=activity)
    )
    if session_ids is None:
        await db.execute(base)
    else:
        ids = list(dict.fromkeys(session_ids))
        for start in range(0, len(ids), _CHUNK):
            await db.execute(base.where(session.c.id.in_(ids[start : start + _CHUNK])))

    usage = (
        select(func.count())
        .select_from(message_tag)
        .where(message_tag.c.tag_id == tag.c.id)
        .scalar_subquery()
    )
    await db.execute(update(tag).where(tag.c.app_id == app_id).values(usage_count=usage))
