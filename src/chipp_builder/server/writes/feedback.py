"""POST /feedback's write: one rating per message and consumer, with its counter and events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Text, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.errors import NotFound
from chipp_builder.server.db.counters import add_counts
from chipp_builder.server.db.tables import consumer, feedback, message, session
from chipp_builder.server.writes.events import CREATED, DELETED, UPDATED, Change, record

PREVIEW_LENGTH = 200

FEEDBACK_COLUMNS = (
    feedback.c.id, feedback.c.session_id, feedback.c.message_id, feedback.c.consumer_id, feedback.c.rating,
    # substr counts characters (code points) on both SQLite and PostgreSQL.
    func.substr(message.c.content, 1, PREVIEW_LENGTH, type_=Text).label("message_preview"),
    feedback.c.created_at,
)
FEEDBACK_FROM = feedback.outerjoin(
    message, and_(message.c.app_id == feedback.c.app_id, message.c.id == feedback.c.message_id)
)


async def rate_message(
    db: AsyncConnection,
    app_id: UUID,
    message_id: str,
    rating: int,
    consumer_id: UUID | None,
    now: datetime,
) -> tuple[dict[str, Any], bool]:
    """Record a consumer's rating of one of the app's messages, replacing that consumer's earlier rating of
    it; the feedback object and whether it is new. 404 for another app's (or no such) message or consumer.
    Without a consumer_id the rater is the session's consumer, so every rating names one (the seed's feedback
    object has a UUID there); only in a session without a consumer does it stay null.

    The message row is locked first, so concurrent ratings of one message queue and never leave two
    ratings by one consumer. A replacement keeps the rating's id and takes the new time.
    """
    rated = (
        await db.execute(
            select(message.c.session_id)
            .where(message.c.app_id == app_id, message.c.id == message_id)
            .with_for_update()
        )
    ).first()
    if rated is None:
        raise NotFound("Message not found")
    feed: list[Change] = []
    if consumer_id is None:
        owner = select(session.c.consumer_id).where(session.c.app_id == app_id, session.c.id == rated.session_id)
        consumer_id = (await db.execute(owner)).scalar()
    else:
        query = select(consumer.c.id).where(consumer.c.app_id == app_id, consumer.c.id == consumer_id)
        known = (await db.execute(query)).first()
        if known is None:
            raise NotFound("Consumer not found")
    same_rater = (
        feedback.c.app_id == app_id,
        feedback.c.message_id == message_id,
        feedback.c.consumer_id.is_not_distinct_from(consumer_id),
    )
    newest_first = (feedback.c.created_at.desc(), feedback.c.id.desc())
    query = select(feedback.c.id).where(*same_rater).order_by(*newest_first)
    earlier = (await db.execute(query)).scalars().all()
    if earlier:
        feedback_id, created = earlier[0], False
        await db.execute(
            update(feedback)
            .where(feedback.c.app_id == app_id, feedback.c.id == feedback_id)
            .values(rating=rating, created_at=now, session_id=rated.session_id)
        )
        if len(earlier) > 1:  # an import may have brought several; one rating per consumer remains
            stale = delete(feedback).where(feedback.c.app_id == app_id, feedback.c.id.in_(earlier[1:]))
            await db.execute(stale)
            await add_counts(db, app_id, feedback=-(len(earlier) - 1))
            feed.extend(Change("feedback", DELETED, fid, rated.session_id) for fid in earlier[1:])
    else:
        feedback_id, created = str(uuid.uuid4()), True
        await db.execute(
            feedback.insert().values(
                app_id=app_id, id=feedback_id, session_id=rated.session_id, message_id=message_id,
                consumer_id=consumer_id, rating=rating, created_at=now,
            )
        )
        await add_counts(db, app_id, feedback=1)
    feed.append(Change("feedback", CREATED if created else UPDATED, feedback_id, rated.session_id))
    feed.append(Change("message", UPDATED, message_id, rated.session_id))  # its `feedback` is the newest rating
    await record(db, app_id, feed)
    row = (
        await db.execute(
            select(*FEEDBACK_COLUMNS)
            .select_from(FEEDBACK_FROM)
            .where(feedback.c.app_id == app_id, feedback.c.id == feedback_id)
        )
    ).mappings().one()
    return dict(row), created
