"""SQL for knowledge sources."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import knowledge_source as ks
from chipp_builder.server.ingest.derived import row_count
from chipp_builder.server.pagination import fetch_offset_page

COLUMNS = (
    ks.c.id, ks.c.name, ks.c.type, ks.c.status, ks.c.url, ks.c.error_message, ks.c.chunk_count,
    ks.c.file_size_bytes, ks.c.refresh_interval_hours, ks.c.last_refreshed_at, ks.c.created_at, ks.c.updated_at,
)


async def list_knowledge_sources(
    db: AsyncConnection, app_id: UUID, *, limit: int, offset: int, status: str | None = None,
    source_type: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of knowledge sources, newest first, and the filtered total."""
    conditions = [ks.c.app_id == app_id]
    if status is not None:
        conditions.append(ks.c.status == status)
    if source_type is not None:
        conditions.append(ks.c.type == source_type)
    order = (ks.c.created_at.desc(), ks.c.id.desc())
    # Unfiltered (only the app condition): the exact total is the app's row counter, not a count(*).
    total = await row_count(db, app_id, "knowledge_sources") if len(conditions) == 1 else None
    return await fetch_offset_page(
        db, COLUMNS, ks, conditions, order, limit, offset, total=total
    )
