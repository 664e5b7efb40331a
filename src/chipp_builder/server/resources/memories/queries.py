"""SQL for memories."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import bindparam

from chipp_builder.server.db.fastread import Reader
from chipp_builder.server.db.offset_list import OffsetList
from chipp_builder.server.db.tables import memory

COLUMNS = (
    memory.c.id, memory.c.consumer_id, memory.c.external_user_id, memory.c.content, memory.c.memory_type,
    memory.c.memory_layer, memory.c.confidence, memory.c.source_message_id, memory.c.session_id,
    memory.c.created_at, memory.c.updated_at,
)


MEMORY_LIST = OffsetList(
    memory,
    COLUMNS,
    (memory.c.created_at.desc(), memory.c.id.desc()),
    {
        "consumer_id": lambda: memory.c.consumer_id == bindparam("consumer_id"),
        "memory_type": lambda: memory.c.memory_type == bindparam("memory_type"),
        "memory_layer": lambda: memory.c.memory_layer == bindparam("memory_layer"),
    },
    counter="memories",
)


async def list_memories(
    reader: Reader, app_id: UUID, *, limit: int, offset: int, consumer_id: UUID | None = None,
    memory_type: str | None = None, memory_layer: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of memories, newest first, and the filtered total (unfiltered: the app's row counter)."""
    return await MEMORY_LIST.fetch(
        reader, app_id, limit, offset, consumer_id=consumer_id, memory_type=memory_type, memory_layer=memory_layer
    )
