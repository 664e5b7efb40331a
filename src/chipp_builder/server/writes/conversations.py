"""POST /conversations/log's write: create or append to a session, find or create its consumer, store the
messages with their times, move the session's derived columns and the rollups, and record the events, all in
the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.errors import InvalidRequest, NotFound
from chipp_builder.schemas.common import Source, utc_now
from chipp_builder.schemas.conversations import ConversationLog, LogMessage
from chipp_builder.schemas.sessions import tool_result_text
from chipp_builder.server.db.daily_rollups import add_activity
from chipp_builder.server.db.tables import message, session
from chipp_builder.server.writes.consumers import consumer_exists, find_or_create_consumer
from chipp_builder.server.writes.events import CREATED, UPDATED, Change, record

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
    feed: list[Change] = []
    if body.session_id is not None:
        target, status = await _existing_session(db, app_id, body, body.session_id), 200
        feed.append(Change("session", UPDATED, str(target.session_id)))
    else:
        target, status = await _new_session(db, app_id, body, feed), 201
        feed.append(Change("session", CREATED, str(target.session_id)))
    message_ids = await _store_messages(db, app_id, target, body.messages)
    feed.extend(Change("message", CREATED, mid, target.session_id) for mid in message_ids)
    await record(db, app_id, feed)
    return status, {
        "data": {"session_id": target.session_id, "consumer_id": target.consumer_id, "message_ids": message_ids}
    }


async def _check_message_ids(db: AsyncConnection, app_id: UUID, messages: list[LogMessage]) -> None:
    """A 400 for a message id given twice in the request or already used by a message of the app."""
    _reject_repeated_ids(messages)
    given_ids = [m.id for m in messages if m.id is not None]
    taken = await taken_message_ids(db, app_id, given_ids) if given_ids else set()
    for index, item in enumerate(messages):
        if item.id in taken:
            raise InvalidRequest(f"messages[{index}].id is already used by another message of this app")


async def _existing_session(db: AsyncConnection, app_id: UUID, body: ConversationLog, session_id: UUID) -> _Target:
    """Lock the session appended to (404 when the app has none of that id) and time the new messages after its
    newest one."""
    target = await lock_session(db, app_id, session_id)
    if target is None:
        raise NotFound("Session not found")
    if body.consumer is not None and body.consumer.id is not None:
        if not await consumer_exists(db, app_id, body.consumer.id):
            raise NotFound("Consumer not found")
    # Read after the lock: the clock and the newest message come after the previous append's.
    now = utc_now()
    times = assign_times(body.messages, target.newest_at, now)
    return _Target(target.id, target.consumer_id, times, [])


async def _new_session(db: AsyncConnection, app_id: UUID, body: ConversationLog, feed: list[Change]) -> _Target:
    """Find or create the request's consumer and insert a new session, started at its first message."""
    now = utc_now()
    consumer_id = None
    if body.consumer is not None:
        person = body.consumer
        found, _created = await find_or_create_consumer(
            db,
            app_id,
            now,
            consumer_id=person.id,
            email=person.email,
            identifier=person.identifier,
            name=person.name,
            feed=feed,
        )
        consumer_id = found["id"]
    times = assign_times(body.messages, None, now)
    session_id = uuid.uuid4()
    started = min(now, *times)
    await insert_session(
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
        await insert_messages(db, rows)
    except IntegrityError:
        # Only a concurrent request taking the same explicit id gets here (the check above saw it free).
        raise InvalidRequest("a message id is already used by another message of this app") from None
    await add_to_session(db, target.session_id, len(rows), max(target.times))
    # Analytics rollups move with the rows, in this transaction (db/counters.py says why not triggers).
    await add_activity(
        db,
        app_id,
        sessions=target.new_session,
        messages=[(row["created_at"], row["model"], row["token_count"]) for row in rows],
    )
    return message_ids


# Keeps each IN list far below SQLite's and asyncpg's bound-parameter limits.
_CHUNK = 500


async def lock_session(db: AsyncConnection, app_id: UUID, session_id: UUID) -> Any | None:
    """The app's session (`id`, `consumer_id`) and the created_at of its newest message (`newest_at`),
    locked until commit so that concurrent appends to it queue and its message_count stays exact;
    None when the session is not the app's.

    PostgreSQL: FOR UPDATE on the row, then the newest message read in a second statement, which in READ
    COMMITTED sees whatever the append we waited for committed (a subquery in the locking statement would
    keep that statement's older snapshot). SQLite: the caller already holds the database's write lock, so
    one statement reads both.
    """
    where = (session.c.id == session_id, session.c.app_id == app_id)
    if db.dialect.name == "sqlite":
        newest = select(func.max(message.c.created_at)).where(message.c.session_id == session.c.id)
        query = select(session.c.id, session.c.consumer_id, newest.scalar_subquery().label("newest_at"))
        return (await db.execute(query.where(*where))).first()
    query = select(session.c.id, session.c.consumer_id).where(*where).with_for_update()
    locked = (await db.execute(query)).first()
    if locked is None:
        return None
    newest_at = (
        await db.execute(select(func.max(message.c.created_at)).where(message.c.session_id == session_id))
    ).scalar_one()
    return SimpleNamespace(id=locked.id, consumer_id=locked.consumer_id, newest_at=newest_at)


async def taken_message_ids(db: AsyncConnection, app_id: UUID, ids: Sequence[str]) -> set[str]:
    """Which of these message ids the app already uses."""
    taken: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        query = select(message.c.id).where(message.c.app_id == app_id, message.c.id.in_(chunk))
        taken.update((await db.execute(query)).scalars())
    return taken


async def insert_session(db: AsyncConnection, row: dict[str, Any]) -> None:
    """Create a session (the caller gives every column, counts included)."""
    await db.execute(session.insert().values(**row))


async def insert_messages(db: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert messages in one executemany."""
    await db.execute(message.insert(), rows)


async def add_to_session(db: AsyncConnection, session_id: UUID, count: int, newest: datetime) -> None:
    """Count `count` more messages on a locked session and move last_activity_at to `newest` if later.

    One set-based UPDATE relative to the row's own values, in the transaction that inserted the messages,
    so the count matches the rows whatever other appends commit before or after.
    """
    # Typed as the column, so the value is stored exactly as the column stores it (UTC text on SQLite).
    newest_value = literal(newest, session.c.last_activity_at.type)
    await db.execute(
        update(session)
        .where(session.c.id == session_id)
        .values(
            message_count=session.c.message_count + count,
            last_activity_at=case(
                (session.c.last_activity_at < newest_value, newest_value), else_=session.c.last_activity_at
            ),
        )
    )
