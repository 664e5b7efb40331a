"""HTTP routes for sessions and messages: parse, call the queries, render."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Path, Query
from fastapi.responses import Response

from chipp_builder.errors import InvalidRequest, NotFound
from chipp_builder.schemas.common import Role, Source
from chipp_builder.schemas.events import SessionDeletedEnvelope
from chipp_builder.schemas.sessions import MessageList, SessionEnvelope, SessionList
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.body import WRITE_ERRORS
from chipp_builder.server.db.writelock import write_transaction
from chipp_builder.server.deps import ReaderDep, WriteConn, require, require_write
from chipp_builder.server.pagination import INVALID_CURSOR, cursor_page, decode_cursor
from chipp_builder.server.params import Cursor, Limit, Search, TimestampValue, UUIDValue
from chipp_builder.server.resources.common import AppIdPath, app_router, as_uuid_or_none
from chipp_builder.server.resources.sessions import queries
from chipp_builder.server.responses import json_response
from chipp_builder.server.writes import deletes

router = app_router("sessions")
SessionsReadKey = Annotated[KeyIdentity, Depends(require("sessions"))]
SessionIdPath = Annotated[str, Path(description="The session's id (a UUID).")]


def _session_cursor(cursor: str | None) -> tuple[UUID, object] | None:
    if cursor is None:
        return None
    row_id, at = decode_cursor(cursor, "session")
    as_uuid = as_uuid_or_none(row_id)
    if as_uuid is None:
        raise InvalidRequest(INVALID_CURSOR)
    return as_uuid, at


@router.get("/sessions", response_model=SessionList)
async def list_sessions(
    app_id: AppIdPath,
    key: SessionsReadKey,
    reader: ReaderDep,
    limit: Limit = 25,
    cursor: Cursor = None,
    source: Annotated[Source | None, Query(description="Only sessions from this channel.")] = None,
    consumer_id: Annotated[UUIDValue, Query(description="Only this consumer's sessions.")] = None,
    started_after: Annotated[TimestampValue, Query(description="Started strictly after this time.")] = None,
    started_before: Annotated[TimestampValue, Query(description="Started strictly before this time.")] = None,
    search: Search = None,
) -> Response:
    """List the app's chat sessions, newest first (cursor pagination)."""
    rows = await queries.list_sessions(
        reader, key.app_id, limit=limit, after=_session_cursor(cursor),  # type: ignore[arg-type]
        source=source.value if source else None, consumer_id=consumer_id,
        started_after=started_after, started_before=started_before, search=search,
    )
    data, pagination = cursor_page(rows, limit, "session")
    return json_response({"data": data, "pagination": pagination})


@router.get("/sessions/{session_id}", response_model=SessionEnvelope)
async def get_session(
    app_id: AppIdPath, session_id: SessionIdPath, key: SessionsReadKey, reader: ReaderDep
) -> Response:
    """Get one session."""
    sid = as_uuid_or_none(session_id)
    found = None if sid is None else await queries.get_session(reader, key.app_id, sid)
    if found is None:
        raise NotFound("Session not found")
    return json_response({"data": found})


@router.get("/sessions/{session_id}/messages", response_model=MessageList)
async def list_messages(
    app_id: AppIdPath,
    session_id: SessionIdPath,
    key: SessionsReadKey,
    reader: ReaderDep,
    limit: Limit = 25,
    cursor: Cursor = None,
    role: Annotated[Role | None, Query(description="Only messages with this role.")] = None,
    created_after: Annotated[TimestampValue, Query(description="Created strictly after this time.")] = None,
    created_before: Annotated[TimestampValue, Query(description="Created strictly before this time.")] = None,
    include: Annotated[
        str | None,
        Query(pattern=r"^tool_details(,tool_details)*$", max_length=200,
              description="Comma-separated extras; `tool_details` adds `tool_calls` and `tool_results`."),
    ] = None,
) -> Response:
    """List a session's messages, oldest first (cursor pagination)."""
    sid = as_uuid_or_none(session_id)
    if sid is None or not await queries.session_exists(reader, key.app_id, sid):
        raise NotFound("Session not found")
    after = decode_cursor(cursor, "message") if cursor is not None else None
    rows = await queries.list_messages(
        reader, key.app_id, sid, limit=limit, after=after, role=role.value if role else None,
        created_after=created_after, created_before=created_before, tool_details=include is not None,
    )
    data, pagination = cursor_page(rows, limit, "message")
    return json_response({"data": data, "pagination": pagination})


SessionsWriteKey = Annotated[KeyIdentity, Depends(require_write("sessions"))]


@router.delete("/sessions/{session_id}", response_model=SessionDeletedEnvelope, responses={507: WRITE_ERRORS[507]})
async def delete_session(
    app_id: AppIdPath, session_id: SessionIdPath, key: SessionsWriteKey, db: WriteConn
) -> Response:
    """Delete a session with its messages, their tool details and tag links, and their feedback."""
    sid = as_uuid_or_none(session_id)
    async with write_transaction(db):
        removed = None if sid is None else await deletes.delete_session(db, key.app_id, sid)
        if removed is None:
            raise NotFound("Session not found")
    counts = {"messages": removed.messages, "feedback": removed.feedback}
    return json_response({"data": {"id": sid, "deleted": True, "counts": counts}})
