"""SQL for tags."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select

from chipp_builder.server.db.fastread import Reader, ReadQuery
from chipp_builder.server.db.tables import tag

_TAGS = ReadQuery(
    select(tag.c.id, tag.c.name, tag.c.color, tag.c.usage_count, tag.c.created_at)
    .where(tag.c.app_id == bindparam("app_id"))
    .order_by(tag.c.created_at, tag.c.id),
    on_loop=True,  # an app's tags: a few dozen rows
)


async def list_tags(reader: Reader, app_id: UUID) -> list[dict[str, Any]]:
    """All of the app's tags, oldest first, with their server-maintained usage counts."""
    return await reader.fetch(_TAGS, app_id=app_id)
