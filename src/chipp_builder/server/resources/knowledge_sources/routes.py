"""HTTP routes for knowledge sources."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import Response

from chipp_builder.schemas.knowledge_sources import KnowledgeSourceList, KnowledgeSourceStatus, KnowledgeSourceType
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.deps import ReaderDep, require
from chipp_builder.server.pagination import offset_pagination
from chipp_builder.server.params import Limit, Offset
from chipp_builder.server.resources.common import AppIdPath, app_router
from chipp_builder.server.resources.knowledge_sources import queries
from chipp_builder.server.responses import json_response

router = app_router("knowledge sources")


@router.get("/knowledge-sources", response_model=KnowledgeSourceList)
async def list_knowledge_sources(
    app_id: AppIdPath,
    key: Annotated[KeyIdentity, Depends(require("knowledge_sources"))],
    reader: ReaderDep,
    limit: Limit = 25,
    offset: Offset = 0,
    status: Annotated[KnowledgeSourceStatus | None, Query(description="Only sources in this state.")] = None,
    type: Annotated[KnowledgeSourceType | None, Query(description="Only sources of this kind.")] = None,  # noqa: A002
) -> Response:
    """List the app's knowledge sources, newest first (offset pagination)."""
    data, total = await queries.list_knowledge_sources(
        reader, key.app_id, limit=limit, offset=offset, status=status.value if status else None,
        source_type=type.value if type else None,
    )
    return json_response({"data": data, "pagination": offset_pagination(total, limit, offset, len(data))})
