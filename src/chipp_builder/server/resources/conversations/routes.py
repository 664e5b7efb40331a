"""HTTP route for POST /conversations/log: read and validate the body, run the write under the
request's Idempotency-Key, answer 201 (session created) or 200 (appended)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from chipp_builder.schemas.common import Role, Source, utc_now
from chipp_builder.schemas.conversations import (
    MAX_INT32,
    MAX_MESSAGES,
    NOT_AFTER,
    PARSE_TIMESTAMP,
    ConversationLog,
    ConversationLoggedEnvelope,
)
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.body import WRITE_ERRORS, openapi_body, read_json, validate_body
from chipp_builder.server.deps import WriteConn, require_write
from chipp_builder.server.idempotency import idempotent_write
from chipp_builder.server.params import TIMESTAMP_HELP, parse_timestamp
from chipp_builder.server.resources.common import AppIdPath, app_router
from chipp_builder.server.writes import conversations

router = app_router("conversations")
SessionsWriteKey = Annotated[KeyIdentity, Depends(require_write("sessions"))]

_TEXT = "text of {} without control characters"
_COUNT = f"an integer between 0 and {MAX_INT32}"
# What each field accepts, by its path without indices; a 400 names the field's full path and this.
LOG_RULES: dict[str, str] = {
    "session_id": "a UUID of one of the app's sessions",
    "consumer": "an object with any of id, email, name, identifier",
    "consumer.id": "a UUID",
    "consumer.email": "an email address of at most 320 characters",
    "consumer.name": _TEXT.format("at most 200 characters"),
    "consumer.identifier": _TEXT.format("1 to 320 characters"),
    "title": _TEXT.format("at most 1000 characters"),
    "source": "one of " + ", ".join(s.value for s in Source),
    "messages": f"a list of 1 to {MAX_MESSAGES} messages",
    "messages.role": "one of " + ", ".join(r.value for r in Role),
    "messages.content": "text without control characters other than tab and newline",
    "messages.created_at": TIMESTAMP_HELP,
    "messages.model": _TEXT.format("at most 200 characters"),
    "messages.token_count": _COUNT,
    "messages.latency_ms": _COUNT,
    "messages.tool_calls": "a list of objects with tool_name and status",
    "messages.tool_calls.tool_name": _TEXT.format("1 to 200 characters"),
    "messages.tool_calls.status": _TEXT.format("at most 64 characters"),
    "messages.tool_results": "a list of objects with tool_name and result",
    "messages.tool_results.tool_name": _TEXT.format("1 to 200 characters"),
    "messages.id": "1 to 64 characters without control characters",
}


@router.post(
    "/conversations/log",
    status_code=201,
    response_model=ConversationLoggedEnvelope,
    responses={
        200: {"model": ConversationLoggedEnvelope, "description": "Appended to an existing session."},
        **WRITE_ERRORS,
    },
    openapi_extra=openapi_body(
        ConversationLog, "Chat turns: a new session, or `session_id` to append.", idempotent=True
    ),
)
async def log_conversation(
    app_id: AppIdPath, request: Request, key: SessionsWriteKey, db: WriteConn
) -> Response:
    """Log chat turns: create a session (201) or append to one (200), all or nothing."""
    raw, value = await read_json(request)
    skew = timedelta(seconds=request.app.state.settings.clock_skew_seconds)
    body = validate_body(
        ConversationLog, raw, LOG_RULES, {PARSE_TIMESTAMP: parse_timestamp, NOT_AFTER: utc_now() + skew}
    )
    return await idempotent_write(
        request,
        db,
        key.key_id,
        "POST /conversations/log",
        value,
        lambda: conversations.log_conversation(db, key.app_id, body),
    )
