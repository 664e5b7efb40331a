"""HTTP routes for feedback."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query
from fastapi.responses import Response

from chipp_builder.schemas.feedback import FeedbackList
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.deps import ReadConn, require
from chipp_builder.server.pagination import offset_pagination
from chipp_builder.server.params import Limit, Offset, TimestampValue, UUIDValue
from chipp_builder.server.resources.common import AppIdPath, app_router
from chipp_builder.server.resources.feedback import queries
from chipp_builder.server.responses import json_response

router = app_router("feedback")
FeedbackReader = Annotated[KeyIdentity, Depends(require("feedback"))]


@router.get("/feedback", response_model=FeedbackList)
async def list_feedback(
    app_id: AppIdPath,
    key: FeedbackReader,
    db: ReadConn,
    limit: Limit = 25,
    offset: Offset = 0,
    rating: Annotated[Literal["-1", "0", "1"] | None, Query(description="Only this rating: -1, 0 or 1.")] = None,
    session_id: Annotated[UUIDValue, Query(description="Only feedback in this session.")] = None,
    created_after: Annotated[TimestampValue, Query(description="Created strictly after this time.")] = None,
    created_before: Annotated[TimestampValue, Query(description="Created strictly before this time.")] = None,
) -> Response:
    """List message ratings, newest first (offset pagination)."""
    data, total = await queries.list_feedback(
        db, key.app_id, limit=limit, offset=offset, rating=None if rating is None else int(rating),
        session_id=session_id, created_after=created_after, created_before=created_before,
    )
    return json_response({"data": data, "pagination": offset_pagination(total, limit, offset, len(data))})
