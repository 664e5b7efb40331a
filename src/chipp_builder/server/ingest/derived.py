"""Recompute the derived columns (sessions' message counts and last activity, tags' usage) from the rows."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from sqlalchemy import Update, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import message, message_tag, session, tag

# Keeps each IN list well under SQLite's and asyncpg's bound-parameter limits (32,766 / 32,767).
_CHUNK = 1000


async def recompute_derived(
    db: AsyncConnection, app_id: UUID, session_ids: Collection[UUID] | None = None
) -> None:
    """Recompute message_count and last_activity_at of the given sessions (all the app's when None) and
    usage_count of every tag of the app, from the message and message_tag rows.

    Why set-based: the counts are columns the server maintains (so list endpoints read them without a join),
    and after a bulk write they must match the rows exactly. A few UPDATEs with correlated subqueries per
    chunk of sessions let the database count through its indexes (message by session_id, message_tag by
    tag_id) instead of a round trip per row, and the same SQLAlchemy Core runs on SQLite and PostgreSQL.
    last_activity_at becomes the latest of started_at, the newest message's created_at and ended_at.
    """
    # Correlated on session_id alone, deliberately: a session's messages are all its app's, and adding
    # `message.app_id = session.app_id` leads SQLite's planner to the (app_id, created_at) index, which scans
    # every message of the app for each session.
    message_total = (
        select(func.count())
        .select_from(message)
        .where(message.c.session_id == session.c.id)
        .scalar_subquery()
    )
    newest_message = (
        select(func.max(message.c.created_at)).where(message.c.session_id == session.c.id).scalar_subquery()
    )
    # The "latest of three" is three plain statements rather than one expression: SQLite's max(a, b, c) and
    # PostgreSQL's greatest(a, b, c) differ in name and in how they treat NULL, and a CASE would evaluate the
    # newest-message subquery several times per row.
    statements: list[Update] = [
        update(session).values(
            message_count=message_total, last_activity_at=func.coalesce(newest_message, session.c.started_at)
        ),
        update(session)
        .where(session.c.last_activity_at < session.c.started_at)
        .values(last_activity_at=session.c.started_at),
        update(session)
        .where(session.c.ended_at.is_not(None), session.c.ended_at > session.c.last_activity_at)
        .values(last_activity_at=session.c.ended_at),
    ]
    for statement in statements:
        statement = statement.where(session.c.app_id == app_id)
        if session_ids is None:
            await db.execute(statement)
            continue
        ids = list(dict.fromkeys(session_ids))
        for start in range(0, len(ids), _CHUNK):
            await db.execute(statement.where(session.c.id.in_(ids[start : start + _CHUNK])))

    usage = (
        select(func.count())
        .select_from(message_tag)
        .where(message_tag.c.tag_id == tag.c.id)
        .scalar_subquery()
    )
    await db.execute(update(tag).where(tag.c.app_id == app_id).values(usage_count=usage))
