"""SQL for memories."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import memory
from chipp_builder.server.ingest.derived import row_count
from chipp_builder.server.pagination import fetch_offset_page

COLUMNS = (
    memory.c.id, memory.c.consumer_id, memory.c.external_user_id, memory.c.content, memory.c.memory_type,
    memory.c.memory_layer, memory.c.confidence, memory.c.source_message_id, memory.c.session_id,
    memory.c.created_at, memory.c.updated_at,
)


async def list_memories(
    db: AsyncConnection, app_id: UUID, *, limit: int, offset: int, consumer_id: UUID | None = None,
    memory_type: str | None = None, memory_layer: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of memories, newest first, and the filtered total."""
    conditions = [memory.c.app_id == app_id]
    if consumer_id is not None:
        conditions.append(memory.c.consumer_id == consumer_id)
    if memory_type is not None:
        conditions.append(memory.c.memory_type == memory_type)
    if memory_layer is not None:
        conditions.append(memory.c.memory_layer == memory_layer)
    order = (memory.c.created_at.desc(), memory.c.id.desc())
    # Unfiltered (only the app condition): the exact total is the app's row counter, not a count(*).
    total = await row_count(db, app_id, "memories") if len(conditions) == 1 else None
    return await fetch_offset_page(
        db, COLUMNS, memory, conditions, order, limit, offset, total=total
    )
