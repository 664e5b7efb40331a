"""HTTP routes for memories."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import Response

from chipp_builder.schemas.memories import MemoryLayer, MemoryList, MemoryType
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.deps import ReaderDep, require
from chipp_builder.server.pagination import offset_pagination
from chipp_builder.server.params import Limit, Offset, UUIDValue
from chipp_builder.server.resources.common import AppIdPath, app_router
from chipp_builder.server.resources.memories import queries
from chipp_builder.server.responses import json_response

router = app_router("memories")


@router.get("/memories", response_model=MemoryList)
async def list_memories(
    app_id: AppIdPath,
    key: Annotated[KeyIdentity, Depends(require("memories"))],
    reader: ReaderDep,
    limit: Limit = 25,
    offset: Offset = 0,
    consumer_id: Annotated[UUIDValue, Query(description="Only this consumer's memories.")] = None,
    memory_type: Annotated[MemoryType | None, Query(description="Only memories of this type.")] = None,
    memory_layer: Annotated[MemoryLayer | None, Query(description="Only memories in this layer.")] = None,
) -> Response:
    """List the app's memories, newest first (offset pagination)."""
    data, total = await queries.list_memories(
        reader, key.app_id, limit=limit, offset=offset, consumer_id=consumer_id,
        memory_type=memory_type.value if memory_type else None,
        memory_layer=memory_layer.value if memory_layer else None,
    )
    return json_response({"data": data, "pagination": offset_pagination(total, limit, offset, len(data))})
