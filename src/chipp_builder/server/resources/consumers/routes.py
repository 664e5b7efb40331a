"""HTTP routes for consumers: list and get them, authenticate a site's user as one, and erase one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request
from fastapi.responses import Response

from chipp_builder.errors import NotFound
from chipp_builder.schemas.common import utc_now
from chipp_builder.schemas.consumers import ConsumerEnvelope, ConsumerList
from chipp_builder.schemas.conversations import ConsumerAuth, ConsumerTokenEnvelope
from chipp_builder.schemas.events import ConsumerErasedEnvelope
from chipp_builder.server import tokens
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.body import WRITE_ERRORS, openapi_body, read_json, validate_body
from chipp_builder.server.db.engine import checkpoint_wal
from chipp_builder.server.db.writelock import write_transaction
from chipp_builder.server.deps import ReaderDep, WriteConn, require, require_write
from chipp_builder.server.pagination import encode_position, offset_pagination
from chipp_builder.server.params import Limit, Offset, Search, TimestampValue
from chipp_builder.server.resources.common import AppIdPath, app_router, as_uuid_or_none
from chipp_builder.server.resources.consumers import queries
from chipp_builder.server.responses import json_response
from chipp_builder.server.writes import consumers as consumer_writes
from chipp_builder.server.writes import deletes

router = app_router("consumers")
ConsumersReadKey = Annotated[KeyIdentity, Depends(require("consumers"))]


@router.get("/consumers", response_model=ConsumerList)
async def list_consumers(
    app_id: AppIdPath,
    key: ConsumersReadKey,
    reader: ReaderDep,
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
        reader, key.app_id, limit=limit, offset=offset, search=search,
        has_email=None if has_email is None else has_email == "true",
        created_after=created_after, created_before=created_before,
    )
    return json_response({"data": data, "pagination": offset_pagination(total, limit, offset, len(data))})


@router.get("/consumers/{consumer_id}", response_model=ConsumerEnvelope)
async def get_consumer(
    app_id: AppIdPath,
    consumer_id: Annotated[str, Path(description="The consumer's id (a UUID).")],
    key: ConsumersReadKey,
    reader: ReaderDep,
) -> Response:
    """Get one consumer."""
    cid = as_uuid_or_none(consumer_id)
    found = None if cid is None else await queries.get_consumer(reader, key.app_id, cid)
    if found is None:
        raise NotFound("Consumer not found")
    return json_response({"data": found})


ConsumersWriteKey = Annotated[KeyIdentity, Depends(require_write("consumers"))]
AUTH_RULES: dict[str, str] = {
    "external_id": "text of 1 to 320 characters without control characters",
    "email": "an email address of at most 320 characters",
    "name": "text of at most 200 characters without control characters",
    "picture_url": "an http(s) URL of at most 2048 characters",
}


@router.post(
    "/consumers/auth",
    status_code=201,
    response_model=ConsumerTokenEnvelope,
    responses={200: {"model": ConsumerTokenEnvelope, "description": "An existing consumer was found."},
               413: WRITE_ERRORS[413], 507: WRITE_ERRORS[507]},
    openapi_extra=openapi_body(ConsumerAuth, "The site's user: `external_id` and/or `email`, with details."),
)
async def auth_consumer(app_id: AppIdPath, request: Request, key: ConsumersWriteKey, db: WriteConn) -> Response:
    """Find or create a consumer (201 when created) and issue a short-lived signed token for it."""
    raw, _value = await read_json(request)
    body = validate_body(ConsumerAuth, raw, AUTH_RULES)
    state = request.app.state
    async with write_transaction(db):
        signing_key: bytes | None = getattr(state, "consumer_token_key", None)
        if signing_key is None:
            signing_key = await tokens.load_signing_key(db)
        now = utc_now()
        found, created = await consumer_writes.authenticate_consumer(
            db, key.app_id, now, email=body.email, identifier=body.external_id, name=body.name,
            picture_url=body.picture_url,
        )
        ttl = state.settings.consumer_token_ttl_seconds
        issued = tokens.issue(signing_key, key.app_id, found["id"], ttl, now)
    # Cached only now that it is committed: a key from a rolled-back transaction must never sign anything.
    state.consumer_token_key = signing_key
    body_out = {"data": {"consumer": found, "token": issued.token, "expires_at": issued.expires_at}}
    return json_response(body_out, status_code=201 if created else 200)


@router.delete(
    "/consumers/{consumer_id}",
    response_model=ConsumerErasedEnvelope,
    responses={507: WRITE_ERRORS[507]},
)
async def erase_consumer(
    app_id: AppIdPath,
    consumer_id: Annotated[str, Path(description="The consumer's id (a UUID).")],
    request: Request,
    key: ConsumersWriteKey,
    db: WriteConn,
) -> Response:
    """Erase a person: the consumer, their sessions with messages and ratings, their ratings elsewhere and their
    memories, in one transaction (SPEC section 11)."""
    cid = as_uuid_or_none(consumer_id)
    async with write_transaction(db):
        removed = None if cid is None else await deletes.erase_consumer(db, key.app_id, cid)
        if removed is None:
            raise NotFound("Consumer not found")
        erased_at = utc_now()
    # After the commit: the erased rows' old pages leave SQLite's write-ahead log as well.
    await checkpoint_wal(request.app.state.engine)
    counts = {"sessions": removed.sessions, "messages": removed.messages, "feedback": removed.feedback,
              "memories": removed.memories}
    data = {"consumer_id": cid, "erased_at": erased_at, "counts": counts,
            "cursor": encode_position(key.app_id, removed.head or 0)}
    return json_response({"data": data})
