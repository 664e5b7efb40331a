"""SQL for sessions and messages."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import consumer, feedback, message, message_tag, session, tag
from chipp_builder.server.pagination import keyset_after
from chipp_builder.server.params import escape_like

SESSION_COLUMNS = (
    session.c.id,
    session.c.consumer_id,
    consumer.c.email.label("consumer_email"),
    consumer.c.name.label("consumer_name"),
    session.c.title,
    session.c.source,
    session.c.mode,
    session.c.is_bookmarked,
    session.c.is_multiplayer,
    session.c.message_count,
    session.c.started_at,
    session.c.ended_at,
    session.c.last_activity_at,
)
_SESSION_FROM = session.outerjoin(consumer, consumer.c.id == session.c.consumer_id)


def _session(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "consumer_id": row.consumer_id,
        "consumer": None if row.consumer_id is None else {"email": row.consumer_email, "name": row.consumer_name},
        "title": row.title,
        "source": row.source,
        "mode": row.mode,
        "is_bookmarked": row.is_bookmarked,
        "is_multiplayer": row.is_multiplayer,
        "message_count": row.message_count,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "last_activity_at": row.last_activity_at,
    }


async def list_sessions(
    db: AsyncConnection,
    app_id: UUID,
    *,
    limit: int,
    after: tuple[UUID, datetime] | None = None,
    source: str | None = None,
    consumer_id: UUID | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    search: str | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit + 1` sessions, newest first, after the cursor's row."""
    query = select(*SESSION_COLUMNS).select_from(_SESSION_FROM).where(session.c.app_id == app_id)
    if source is not None:
        query = query.where(session.c.source == source)
    if consumer_id is not None:
        query = query.where(session.c.consumer_id == consumer_id)
    if started_after is not None:
        query = query.where(session.c.started_at > started_after)
    if started_before is not None:
        query = query.where(session.c.started_at < started_before)
    if search is not None:
        query = query.where(session.c.title_folded.like(f"%{escape_like(search.casefold())}%", escape="\\"))
    query = keyset_after(query, session.c.started_at, session.c.id, after, descending=True)
    rows = (await db.execute(query.limit(limit + 1))).all()
    return [_session(row) for row in rows]


async def get_session(db: AsyncConnection, app_id: UUID, session_id: UUID) -> dict[str, Any] | None:
    """One session of this app, or None."""
    query = (
        select(*SESSION_COLUMNS)
        .select_from(_SESSION_FROM)
        .where(session.c.id == session_id, session.c.app_id == app_id)
    )
    row = (await db.execute(query)).first()
    return None if row is None else _session(row)


async def session_exists(db: AsyncConnection, app_id: UUID, session_id: UUID) -> bool:
    """Whether the session is this app's."""
    query = select(session.c.id).where(session.c.id == session_id, session.c.app_id == app_id)
    return (await db.execute(query)).first() is not None


async def list_messages(
    db: AsyncConnection,
    app_id: UUID,
    session_id: UUID,
    *,
    limit: int,
    after: tuple[str, datetime] | None = None,
    role: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    tool_details: bool = False,
) -> list[dict[str, Any]]:
    """Up to `limit + 1` messages of a session, oldest first, with their tags and newest feedback."""
    columns = [
        message.c.id, message.c.session_id, message.c.role, message.c.content, message.c.model,
        message.c.token_count, message.c.latency_ms, message.c.audio_url, message.c.audio_duration_ms,
        message.c.created_at,
    ]
    if tool_details:
        columns += [message.c.tool_calls, message.c.tool_results]
    query = select(*columns).where(message.c.session_id == session_id)
    if role is not None:
        query = query.where(message.c.role == role)
    if created_after is not None:
        query = query.where(message.c.created_at > created_after)
    if created_before is not None:
        query = query.where(message.c.created_at < created_before)
    query = keyset_after(query, message.c.created_at, message.c.id, after, descending=False)
    rows = (await db.execute(query.limit(limit + 1))).all()
    ids = [row.id for row in rows]
    tags_by_message = await _tags_of(db, app_id, ids)
    feedback_by_message = await _newest_feedback_of(db, app_id, ids)
    result = []
    for row in rows:
        item = {
            "id": row.id,
            "session_id": row.session_id,
            "role": row.role,
            "content": row.content,
            "model": row.model,
            "token_count": row.token_count,
            "latency_ms": row.latency_ms,
            "audio_url": row.audio_url,
            "audio_duration_ms": row.audio_duration_ms,
            "tags": tags_by_message.get(row.id, []),
            "feedback": feedback_by_message.get(row.id),
            "created_at": row.created_at,
        }
        if tool_details:
            item["tool_calls"] = row.tool_calls or None
            item["tool_results"] = row.tool_results or None
        result.append(item)
    return result


async def _tags_of(db: AsyncConnection, app_id: UUID, message_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Tags of a page of messages, in one query, each list ordered by the tag's created_at then id."""
    if not message_ids:
        return {}
    query = (
        select(message_tag.c.message_id, tag.c.id, tag.c.name, tag.c.color)
        .join(tag, tag.c.id == message_tag.c.tag_id)
        .where(message_tag.c.app_id == app_id, message_tag.c.message_id.in_(message_ids))
        .order_by(tag.c.created_at, tag.c.id)
    )
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in (await db.execute(query)).all():
        found[row.message_id].append({"id": row.id, "name": row.name, "color": row.color})
    return found


async def _newest_feedback_of(db: AsyncConnection, app_id: UUID, message_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest rating of each message of a page, in one query."""
    if not message_ids:
        return {}
    query = (
        select(feedback.c.message_id, feedback.c.id, feedback.c.rating, feedback.c.consumer_id,
               feedback.c.created_at)
        .where(feedback.c.app_id == app_id, feedback.c.message_id.in_(message_ids))
        .order_by(feedback.c.created_at.desc(), feedback.c.id.desc())
    )
    found: dict[str, dict[str, Any]] = {}
    for row in (await db.execute(query)).all():
        if row.message_id not in found:
            found[row.message_id] = {
                "id": row.id, "rating": row.rating, "consumer_id": row.consumer_id, "created_at": row.created_at,
            }
    return found
