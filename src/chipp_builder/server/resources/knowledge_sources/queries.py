"""SQL for knowledge sources."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import bindparam

from chipp_builder.server.db.fastread import Reader
from chipp_builder.server.db.offset_list import OffsetList
from chipp_builder.server.db.tables import knowledge_source as ks

COLUMNS = (
    ks.c.id, ks.c.name, ks.c.type, ks.c.status, ks.c.url, ks.c.error_message, ks.c.chunk_count,
    ks.c.file_size_bytes, ks.c.refresh_interval_hours, ks.c.last_refreshed_at, ks.c.created_at, ks.c.updated_at,
)


SOURCE_LIST = OffsetList(
    ks,
    COLUMNS,
    (ks.c.created_at.desc(), ks.c.id.desc()),
    {
        "status": lambda: ks.c.status == bindparam("status"),
        "source_type": lambda: ks.c.type == bindparam("source_type"),
    },
    counter="knowledge_sources",
)


async def list_knowledge_sources(
    reader: Reader, app_id: UUID, *, limit: int, offset: int, status: str | None = None,
    source_type: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of knowledge sources, newest first, and the filtered total (unfiltered: the app's row counter)."""
    return await SOURCE_LIST.fetch(reader, app_id, limit, offset, status=status, source_type=source_type)
