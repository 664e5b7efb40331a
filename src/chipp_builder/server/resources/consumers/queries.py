"""SQL for consumers."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import consumer
from chipp_builder.server.pagination import fetch_offset_page
from chipp_builder.server.params import escape_like

CONSUMER_COLUMNS = (
    consumer.c.id, consumer.c.identifier, consumer.c.email, consumer.c.name, consumer.c.picture_url,
    consumer.c.email_verified, consumer.c.credits, consumer.c.subscription_active, consumer.c.mode,
    consumer.c.is_anonymous, consumer.c.created_at, consumer.c.updated_at,
)


async def list_consumers(
    db: AsyncConnection,
    app_id: UUID,
    *,
    limit: int,
    offset: int,
    search: str | None = None,
    has_email: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of consumers, newest first, and the total of the filtered set."""
    conditions = [consumer.c.app_id == app_id]
    if search is not None:
        conditions.append(consumer.c.search_folded.like(f"%{escape_like(search.casefold())}%", escape="\\"))
    if has_email is not None:
        conditions.append(consumer.c.email.is_not(None) if has_email else consumer.c.email.is_(None))
    if created_after is not None:
        conditions.append(consumer.c.created_at > created_after)
    if created_before is not None:
        conditions.append(consumer.c.created_at < created_before)
    order = (consumer.c.created_at.desc(), consumer.c.id.desc())
    return await fetch_offset_page(db, CONSUMER_COLUMNS, consumer, conditions, order, limit, offset)


async def get_consumer(db: AsyncConnection, app_id: UUID, consumer_id: UUID) -> dict[str, Any] | None:
    """One consumer of this app, or None."""
    query = select(*CONSUMER_COLUMNS).where(consumer.c.id == consumer_id, consumer.c.app_id == app_id)
    row = (await db.execute(query)).mappings().first()
    return None if row is None else dict(row)
