"""SQL for sessions and messages."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import bindparam, select

from chipp_builder.server.db.fastread import FILLED_LATER, CursorRows, Nested, Reader, ReadQuery, Shape
from chipp_builder.server.db.tables import consumer, feedback, message, message_tag, session, tag
from chipp_builder.server.pagination import keyset_after
from chipp_builder.server.params import escape_like

SESSION_COLUMNS = (
    session.c.id,
    session.c.consumer_id,
    consumer.c.email.label("consumer_email"),
    consumer.c.name.label("consumer_name"),
    session.c.title,
    session.c.source,
    session.c.mode,
    session.c.is_bookmarked,
    session.c.is_multiplayer,
    session.c.message_count,
    session.c.started_at,
    session.c.ended_at,
    session.c.last_activity_at,
)
_SESSION_FROM = session.outerjoin(consumer, consumer.c.id == session.c.consumer_id)


# A session's wire shape: the joined consumer's email and name become its `consumer` object (null without one).
SESSION_SHAPE: Shape = {
    "id": "id",
    "consumer_id": "consumer_id",
    "consumer": Nested("consumer_id", email="consumer_email", name="consumer_name"),
    "title": "title",
    "source": "source",
    "mode": "mode",
    "is_bookmarked": "is_bookmarked",
    "is_multiplayer": "is_multiplayer",
    "message_count": "message_count",
    "started_at": "started_at",
    "ended_at": "ended_at",
    "last_activity_at": "last_activity_at",
}


@cache
def _sessions_statement(
    source: bool, consumer_id: bool, started_after: bool, started_before: bool, search: bool, cursor: bool
) -> ReadQuery:
    """The sessions page for one combination of filters, compiled once (db/fastread.py)."""
    query: Any = select(*SESSION_COLUMNS).select_from(_SESSION_FROM).where(session.c.app_id == bindparam("app_id"))
    if source:
        query = query.where(session.c.source == bindparam("source"))
    if consumer_id:
        query = query.where(session.c.consumer_id == bindparam("consumer_id"))
    if started_after:
        query = query.where(session.c.started_at > bindparam("started_after"))
    if started_before:
        query = query.where(session.c.started_at < bindparam("started_before"))
    if search:
        query = query.where(session.c.title_folded.like(bindparam("pattern"), escape="\\"))
    last: Any = (bindparam("last_id"), bindparam("last_at")) if cursor else None
    query = keyset_after(query, session.c.started_at, session.c.id, last, descending=True)
    # Every filter but search reads one index range (ix_session_app_*), a page in well under a millisecond:
    # run in the loop like a point read. A substring search may scan, so it goes to the reader's threads.
    return ReadQuery(
        query.limit(bindparam("limit")), on_loop=not search, shape=SESSION_SHAPE, cursor=("id", "started_at")
    )


async def list_sessions(
    reader: Reader,
    app_id: UUID,
    *,
    limit: int,
    after: tuple[UUID, datetime] | None = None,
    source: str | None = None,
    consumer_id: UUID | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    search: str | None = None,
) -> CursorRows:
    """Up to `limit + 1` sessions in their wire shape, newest first, after the cursor's row."""
    statement = _sessions_statement(
        source is not None, consumer_id is not None, started_after is not None, started_before is not None,
        search is not None, after is not None,
    )
    rows = await reader.fetch(
        statement,
        app_id=app_id,
        source=source,
        consumer_id=consumer_id,
        started_after=started_after,
        started_before=started_before,
        pattern=None if search is None else f"%{escape_like(search.casefold())}%",
        last_id=None if after is None else after[0],
        last_at=None if after is None else after[1],
        limit=limit + 1,
    )
    assert isinstance(rows, CursorRows)
    return rows


_SESSION_BY_ID = ReadQuery(
    select(*SESSION_COLUMNS)
    .select_from(_SESSION_FROM)
    .where(session.c.id == bindparam("session_id"), session.c.app_id == bindparam("app_id")),
    on_loop=True,
    shape=SESSION_SHAPE,
)


async def get_session(reader: Reader, app_id: UUID, session_id: UUID) -> dict[str, Any] | None:
    """One session of this app, or None."""
    rows = await reader.fetch(_SESSION_BY_ID, session_id=session_id, app_id=app_id)
    return rows[0] if rows else None


_SESSION_EXISTS = ReadQuery(
    select(session.c.id).where(session.c.id == bindparam("session_id"), session.c.app_id == bindparam("app_id")),
    on_loop=True,
)


async def session_exists(reader: Reader, app_id: UUID, session_id: UUID) -> bool:
    """Whether the session is this app's."""
    return bool(await reader.fetch(_SESSION_EXISTS, session_id=session_id, app_id=app_id))


_MESSAGE_COLUMNS = (
    message.c.id, message.c.session_id, message.c.role, message.c.content, message.c.model, message.c.token_count,
    message.c.latency_ms, message.c.audio_url, message.c.audio_duration_ms, message.c.created_at,
)
# A message's wire shape: its tags and newest feedback come from two more queries (one each per page).
_MESSAGE_SHAPE: Shape = {
    "id": "id",
    "session_id": "session_id",
    "role": "role",
    "content": "content",
    "model": "model",
    "token_count": "token_count",
    "latency_ms": "latency_ms",
    "audio_url": "audio_url",
    "audio_duration_ms": "audio_duration_ms",
    "tags": FILLED_LATER,
    "feedback": FILLED_LATER,
    "created_at": "created_at",
}
_TOOL_SHAPE: Shape = {**_MESSAGE_SHAPE, "tool_calls": "tool_calls", "tool_results": "tool_results"}


@cache
def _messages_statement(
    role: bool, created_after: bool, created_before: bool, cursor: bool, tool_details: bool
) -> ReadQuery:
    """A session's messages page for one combination of filters, compiled once (db/fastread.py)."""
    columns = [*_MESSAGE_COLUMNS, *((message.c.tool_calls, message.c.tool_results) if tool_details else ())]
    query: Any = select(*columns).where(message.c.session_id == bindparam("session_id"))
    if role:
        query = query.where(message.c.role == bindparam("role"))
    if created_after:
        query = query.where(message.c.created_at > bindparam("created_after"))
    if created_before:
        query = query.where(message.c.created_at < bindparam("created_before"))
    last: Any = (bindparam("last_id"), bindparam("last_at")) if cursor else None
    query = keyset_after(query, message.c.created_at, message.c.id, last, descending=False)
    # One range of (session_id, created_at, id): run on the loop.
    shape = _TOOL_SHAPE if tool_details else _MESSAGE_SHAPE
    return ReadQuery(query.limit(bindparam("limit")), on_loop=True, shape=shape, cursor=("id", "created_at"))


async def list_messages(
    reader: Reader,
    app_id: UUID,
    session_id: UUID,
    *,
    limit: int,
    after: tuple[str, datetime] | None = None,
    role: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    tool_details: bool = False,
) -> CursorRows:
    """Up to `limit + 1` messages of a session in their wire shape, oldest first, with their tags and newest
    feedback."""
    statement = _messages_statement(
        role is not None, created_after is not None, created_before is not None, after is not None, tool_details
    )
    rows = await reader.fetch(
        statement,
        session_id=session_id,
        role=role,
        created_after=created_after,
        created_before=created_before,
        last_id=None if after is None else after[0],
        last_at=None if after is None else after[1],
        limit=limit + 1,
    )
    assert isinstance(rows, CursorRows)
    ids = [row["id"] for row in rows]
    tags_by_message = await _tags_of(reader, app_id, ids)
    feedback_by_message = await _newest_feedback_of(reader, app_id, ids)
    for row in rows:  # filled in place: each row stays the one dict the query made
        row["tags"] = tags_by_message.get(row["id"], [])
        row["feedback"] = feedback_by_message.get(row["id"])
        if tool_details:
            row["tool_calls"] = _tool_list(row["tool_calls"])
            row["tool_results"] = _tool_list(row["tool_results"])
    return rows


def _tool_list(stored: str | None) -> orjson.Fragment | None:
    """A stored tool list sent on as it is (no parse and re-encode); none, or an empty one, is null."""
    if stored is None or stored.strip() in ("[]", "null", ""):
        return None
    return orjson.Fragment(stored)


_TAGS_OF = ReadQuery(
    select(message_tag.c.message_id, tag.c.id, tag.c.name, tag.c.color)
    .join(tag, tag.c.id == message_tag.c.tag_id)
    .where(message_tag.c.app_id == bindparam("app_id"), message_tag.c.message_id.in_(bindparam("ids", expanding=True)))
    .order_by(tag.c.created_at, tag.c.id),
    on_loop=True,  # by primary keys: at most 101 message ids
)


async def _tags_of(reader: Reader, app_id: UUID, message_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Tags of a page of messages, in one query, each list ordered by the tag's created_at then id."""
    if not message_ids:
        return {}
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in await reader.fetch(_TAGS_OF, app_id=app_id, ids=message_ids):
        found[row["message_id"]].append({"id": row["id"], "name": row["name"], "color": row["color"]})
    return found


_FEEDBACK_OF = ReadQuery(
    select(feedback.c.message_id, feedback.c.id, feedback.c.rating, feedback.c.consumer_id, feedback.c.created_at)
    .where(feedback.c.app_id == bindparam("app_id"), feedback.c.message_id.in_(bindparam("ids", expanding=True)))
    # message_id first so that the order is the (app_id, message_id, created_at, id) index's: ordered by
    # created_at alone, SQLite walked the app's whole (app_id, created_at) index instead (803 ms at 359,000
    # ratings against 0.07 ms).
    .order_by(feedback.c.message_id, feedback.c.created_at.desc(), feedback.c.id.desc()),
    on_loop=True,  # through the (app_id, message_id, created_at, id) index: at most 101 message ids
)


async def _newest_feedback_of(reader: Reader, app_id: UUID, message_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest rating of each message of a page, in one query."""
    if not message_ids:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for row in await reader.fetch(_FEEDBACK_OF, app_id=app_id, ids=message_ids):
        if row["message_id"] not in found:
            found[row["message_id"]] = {
                "id": row["id"], "rating": row["rating"], "consumer_id": row["consumer_id"],
                "created_at": row["created_at"],
            }
    return found
