"""HTTP routes for feedback: list ratings, and rate a message."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import Response

from chipp_builder.schemas.common import utc_now
from chipp_builder.schemas.feedback import FeedbackCreate, FeedbackEnvelope, FeedbackList
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.body import WRITE_ERRORS, openapi_body, read_json, validate_body
from chipp_builder.server.deps import ReaderDep, WriteConn, require, require_write
from chipp_builder.server.idempotency import idempotent_write
from chipp_builder.server.pagination import offset_pagination
from chipp_builder.server.params import Limit, Offset, TimestampValue, UUIDValue
from chipp_builder.server.resources.common import AppIdPath, app_router
from chipp_builder.server.resources.feedback import queries
from chipp_builder.server.responses import json_response
from chipp_builder.server.writes import feedback as feedback_writes

router = app_router("feedback")
FeedbackReadKey = Annotated[KeyIdentity, Depends(require("feedback"))]


@router.get("/feedback", response_model=FeedbackList)
async def list_feedback(
    app_id: AppIdPath,
    key: FeedbackReadKey,
    reader: ReaderDep,
    limit: Limit = 25,
    offset: Offset = 0,
    rating: Annotated[Literal["-1", "0", "1"] | None, Query(description="Only this rating: -1, 0 or 1.")] = None,
    session_id: Annotated[UUIDValue, Query(description="Only feedback in this session.")] = None,
    created_after: Annotated[TimestampValue, Query(description="Created strictly after this time.")] = None,
    created_before: Annotated[TimestampValue, Query(description="Created strictly before this time.")] = None,
) -> Response:
    """List message ratings, newest first (offset pagination)."""
    data, total = await queries.list_feedback(
        reader, key.app_id, limit=limit, offset=offset, rating=None if rating is None else int(rating),
        session_id=session_id, created_after=created_after, created_before=created_before,
    )
    return json_response({"data": data, "pagination": offset_pagination(total, limit, offset, len(data))})


FeedbackWriteKey = Annotated[KeyIdentity, Depends(require_write("feedback"))]
RATE_RULES: dict[str, str] = {
    "message_id": "the id of one of the app's messages (1 to 64 characters without control characters)",
    "rating": "one of -1, 0, 1",
    "consumer_id": "a UUID of one of the app's consumers",
}


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackEnvelope,
    responses={200: {"model": FeedbackEnvelope, "description": "Replaced this consumer's earlier rating."},
               **WRITE_ERRORS},
    openapi_extra=openapi_body(FeedbackCreate, "A rating of one message by one consumer.", idempotent=True),
)
async def create_feedback(
    app_id: AppIdPath, request: Request, key: FeedbackWriteKey, db: WriteConn
) -> Response:
    """Rate a message: 201 for a new rating, 200 when it replaces this consumer's earlier one."""
    raw, value = await read_json(request)
    body = validate_body(FeedbackCreate, raw, RATE_RULES)

    async def rate() -> tuple[int, dict[str, Any]]:
        row, created = await feedback_writes.rate_message(
            db, key.app_id, body.message_id, body.rating, body.consumer_id, utc_now()
        )
        return (201 if created else 200), {"data": row}

    return await idempotent_write(request, db, key.key_id, "POST /feedback", value, rate)
