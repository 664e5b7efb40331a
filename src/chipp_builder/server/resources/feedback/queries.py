"""SQL for feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, func
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import feedback, message
from chipp_builder.server.pagination import fetch_offset_page

PREVIEW_LENGTH = 200

FEEDBACK_COLUMNS = (
    feedback.c.id, feedback.c.session_id, feedback.c.message_id, feedback.c.consumer_id, feedback.c.rating,
    # substr counts characters (code points) on both SQLite and PostgreSQL.
    func.substr(message.c.content, 1, PREVIEW_LENGTH).label("message_preview"),
    feedback.c.created_at,
)
_FEEDBACK_FROM = feedback.outerjoin(
    message, and_(message.c.app_id == feedback.c.app_id, message.c.id == feedback.c.message_id)
)


async def list_feedback(
    db: AsyncConnection,
    app_id: UUID,
    *,
    limit: int,
    offset: int,
    rating: int | None = None,
    session_id: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of feedback, newest first, with each rated message's preview, and the filtered total."""
    conditions = [feedback.c.app_id == app_id]
    if rating is not None:
        conditions.append(feedback.c.rating == rating)
    if session_id is not None:
        conditions.append(feedback.c.session_id == session_id)
    if created_after is not None:
        conditions.append(feedback.c.created_at > created_after)
    if created_before is not None:
        conditions.append(feedback.c.created_at < created_before)
    order = (feedback.c.created_at.desc(), feedback.c.id.desc())
    return await fetch_offset_page(
        db, FEEDBACK_COLUMNS, feedback, conditions, order, limit, offset, select_from=_FEEDBACK_FROM
    )
