"""HTTP routes for tags."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.responses import Response

from chipp_builder.schemas.tags import TagList
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.deps import ReaderDep, require
from chipp_builder.server.resources.common import AppIdPath, app_router
from chipp_builder.server.resources.tags import queries
from chipp_builder.server.responses import json_response

router = app_router("tags")


@router.get("/tags", response_model=TagList)
async def list_tags(
    app_id: AppIdPath, key: Annotated[KeyIdentity, Depends(require("tags"))], reader: ReaderDep
) -> Response:
    """List all of the app's tags (unpaginated)."""
    return json_response({"data": await queries.list_tags(reader, key.app_id)})
