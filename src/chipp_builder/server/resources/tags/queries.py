"""SQL for tags."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import tag


async def list_tags(db: AsyncConnection, app_id: UUID) -> list[dict[str, Any]]:
    """All of the app's tags, oldest first, with their server-maintained usage counts."""
    query = (
        select(tag.c.id, tag.c.name, tag.c.color, tag.c.usage_count, tag.c.created_at)
        .where(tag.c.app_id == app_id)
        .order_by(tag.c.created_at, tag.c.id)
    )
    return [dict(row) for row in (await db.execute(query)).mappings().all()]
