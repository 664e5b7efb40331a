"""The conversations/log service: create or append to a session, find or create its consumer, store the
messages with their times, and move the session's derived columns, all in the caller's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.errors import InvalidRequest, NotFound
from chipp_builder.schemas.common import Source, utc_now
from chipp_builder.schemas.conversations import ConversationLog, LogMessage
from chipp_builder.schemas.sessions import tool_result_text
from chipp_builder.server.db.daily_rollups import add_activity
from chipp_builder.server.resources.consumers import queries as consumers
from chipp_builder.server.resources.conversations import queries

_TICK = timedelta(microseconds=1)  # the finest step every backend stores


def assign_times(
    messages: list[LogMessage], newest_existing: datetime | None, now: datetime
) -> list[datetime]:
    """Each message's created_at: its own when given, else the server's time, strictly after every earlier
    message of the request and every message already in the session, so they sort as sent."""
    times: list[datetime] = []
    latest = newest_existing
    for item in messages:
        if item.created_at is not None:
            at = item.created_at
        elif latest is None or now > latest:
            at = now
        else:
            at = latest + _TICK
        times.append(at)
        if latest is None or at > latest:
            latest = at
    return times


def _reject_repeated_ids(messages: list[LogMessage]) -> None:
    first_at: dict[str, int] = {}
    for index, item in enumerate(messages):
        if item.id is None:
            continue
        if item.id in first_at:
            raise InvalidRequest(f"messages[{index}].id repeats messages[{first_at[item.id]}].id")
        first_at[item.id] = index


def _message_row(
    app_id: UUID, session_id: UUID, message_id: str, item: LogMessage, at: datetime
) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "id": message_id,
        "session_id": session_id,
        "role": item.role.value,
        "content": item.content,
        "model": item.model,
        "token_count": item.token_count,
        "latency_ms": item.latency_ms,
        "audio_url": None,
        "audio_duration_ms": None,
        "tool_calls": [c.model_dump(mode="json") for c in item.tool_calls] if item.tool_calls else None,
        "tool_results": [
            {**r.model_dump(mode="json"), "result": tool_result_text(r.result)} for r in item.tool_results
        ] if item.tool_results else None,
        "created_at": at,
    }


@dataclass(slots=True)
class _Target:
    """The session a request writes to: its id and consumer, the times of the new messages, and the session to
    count in the rollups when the request creates it ((started_at, consumer_id), else none)."""

    session_id: UUID
    consumer_id: UUID | None
    times: list[datetime]
    new_session: list[tuple[datetime, UUID | None]]


async def log_conversation(
    db: AsyncConnection, app_id: UUID, body: ConversationLog
) -> tuple[int, dict[str, Any]]:
    """Store one conversations/log request; (201, result) when it created the session, (200, result) when
    it appended. Raises the 400s and 404s of SPEC section 9; the caller commits.

    On append the session keeps its consumer, title and source; a `consumer.id` is still checked, so a
    request naming another app's consumer is a 404 either way.
    """
    await _check_message_ids(db, app_id, body.messages)
    if body.session_id is not None:
        target, status = await _existing_session(db, app_id, body, body.session_id), 200
    else:
        target, status = await _new_session(db, app_id, body), 201
    message_ids = await _store_messages(db, app_id, target, body.messages)
    return status, {
        "data": {"session_id": target.session_id, "consumer_id": target.consumer_id, "message_ids": message_ids}
    }


async def _check_message_ids(db: AsyncConnection, app_id: UUID, messages: list[LogMessage]) -> None:
    """A 400 for a message id given twice in the request or already used by a message of the app."""
    _reject_repeated_ids(messages)
    given_ids = [m.id for m in messages if m.id is not None]
    taken = await queries.taken_message_ids(db, app_id, given_ids) if given_ids else set()
    for index, item in enumerate(messages):
        if item.id in taken:
            raise InvalidRequest(f"messages[{index}].id is already used by another message of this app")


async def _existing_session(db: AsyncConnection, app_id: UUID, body: ConversationLog, session_id: UUID) -> _Target:
    """Lock the session appended to (404 when the app has none of that id) and time the new messages after its
    newest one."""
    target = await queries.lock_session(db, app_id, session_id)
    if target is None:
        raise NotFound("Session not found")
    if body.consumer is not None and body.consumer.id is not None:
        if not await consumers.consumer_exists(db, app_id, body.consumer.id):
            raise NotFound("Consumer not found")
    # Read after the lock: the clock and the newest message come after the previous append's.
    now = utc_now()
    times = assign_times(body.messages, target.newest_at, now)
    return _Target(target.id, target.consumer_id, times, [])


async def _new_session(db: AsyncConnection, app_id: UUID, body: ConversationLog) -> _Target:
    """Find or create the request's consumer and insert a new session, started at its first message."""
    now = utc_now()
    consumer_id = None
    if body.consumer is not None:
        person = body.consumer
        found, _created = await consumers.find_or_create_consumer(
            db,
            app_id,
            now,
            consumer_id=person.id,
            email=person.email,
            identifier=person.identifier,
            name=person.name,
        )
        consumer_id = found["id"]
    times = assign_times(body.messages, None, now)
    session_id = uuid.uuid4()
    started = min(now, *times)
    await queries.insert_session(
        db,
        {
            "id": session_id,
            "app_id": app_id,
            "consumer_id": consumer_id,
            "title": body.title,
            "title_folded": None if body.title is None else body.title.casefold(),
            "source": (body.source or Source.API).value,
            "mode": "default",
            "is_bookmarked": False,
            "is_multiplayer": False,
            "message_count": 0,
            "started_at": started,
            "ended_at": None,
            "last_activity_at": started,
        },
    )
    return _Target(session_id, consumer_id, times, [(started, consumer_id)])


async def _store_messages(
    db: AsyncConnection, app_id: UUID, target: _Target, messages: list[LogMessage]
) -> list[str]:
    """Insert the messages, move the session's derived columns and the rollups; the messages' ids."""
    message_ids = [item.id or str(uuid.uuid4()) for item in messages]
    rows = [
        _message_row(app_id, target.session_id, mid, item, at)
        for mid, item, at in zip(message_ids, messages, target.times, strict=True)
    ]
    try:
        await queries.insert_messages(db, rows)
    except IntegrityError:
        # Only a concurrent request taking the same explicit id gets here (the check above saw it free).
        raise InvalidRequest("a message id is already used by another message of this app") from None
    await queries.add_to_session(db, target.session_id, len(rows), max(target.times))
    # Analytics rollups move with the rows, in this transaction (db/counters.py says why not triggers).
    await add_activity(
        db,
        app_id,
        sessions=target.new_session,
        messages=[(row["created_at"], row["model"], row["token_count"]) for row in rows],
    )
    return message_ids
