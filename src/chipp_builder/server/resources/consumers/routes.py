"""HTTP routes for consumers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Path, Query
from fastapi.responses import Response

from chipp_builder.errors import NotFound
from chipp_builder.schemas.consumers import ConsumerEnvelope, ConsumerList
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.deps import ReadConn, require
from chipp_builder.server.pagination import offset_pagination
from chipp_builder.server.params import Limit, Offset, Search, TimestampValue
from chipp_builder.server.resources.common import AppIdPath, app_router, as_uuid_or_none
from chipp_builder.server.resources.consumers import queries
from chipp_builder.server.responses import json_response

router = app_router("consumers")
ConsumersReader = Annotated[KeyIdentity, Depends(require("consumers"))]


@router.get("/consumers", response_model=ConsumerList)
async def list_consumers(
    app_id: AppIdPath,
    key: ConsumersReader,
    db: ReadConn,
    limit: Limit = 25,
    offset: Offset = 0,
    search: Annotated[
        Search, Query(max_length=200, description="Case-insensitive substring of name, email or identifier.")
    ] = None,
    has_email: Annotated[Literal["true", "false"] | None, Query(description="Only with (or without) an email.")] = None,
    created_after: Annotated[TimestampValue, Query(description="Created strictly after this time.")] = None,
    created_before: Annotated[TimestampValue, Query(description="Created strictly before this time.")] = None,
) -> Response:
    """List the app's consumers, newest first (offset pagination)."""
    data, total = await queries.list_consumers(
        db, key.app_id, limit=limit, offset=offset, search=search,
        has_email=None if has_email is None else has_email == "true",
        created_after=created_after, created_before=created_before,
    )
    return json_response({"data": data, "pagination": offset_pagination(total, limit, offset, len(data))})


@router.get("/consumers/{consumer_id}", response_model=ConsumerEnvelope)
async def get_consumer(
    app_id: AppIdPath,
    consumer_id: Annotated[str, Path(description="The consumer's id (a UUID).", max_length=64)],
    key: ConsumersReader,
    db: ReadConn,
) -> Response:
    """Get one consumer."""
    cid = as_uuid_or_none(consumer_id)
    found = None if cid is None else await queries.get_consumer(db, key.app_id, cid)
    if found is None:
        raise NotFound("Consumer not found")
    return json_response({"data": found})
