"""Deleting a session and erasing a person (SPEC section 11), each in the caller's transaction with everything
that depends on the rows: counters, daily rollups, tag usage, a deleted event for every object that goes (and
an updated one for what shows it), and the idempotency records that name what went.

Why erasure drops idempotency records: a stored conversations/log response names the session, the consumer
and the message ids; replaying it after the erasure would hand back ids of a person who no longer exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, null, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.counters import ACTIVE_CONSUMERS, add_counts
from chipp_builder.server.db.daily_rollups import day_of, recompute_activity
from chipp_builder.server.db.tables import (
    api_key,
    consumer,
    feedback,
    idempotency_key,
    knowledge_source,
    memory,
    message,
    message_tag,
    session,
    tag,
)
from chipp_builder.server.writes.dependents import messages_changed
from chipp_builder.server.writes.derived import recompute_derived
from chipp_builder.server.writes.events import DELETED, UPDATED, Change, head_of, record

_CHUNK = 500  # ids per IN list


@dataclass(slots=True)
class Removed:
    """What a deletion removed, and the events it owes."""

    sessions: int = 0
    messages: int = 0
    feedback: int = 0
    memories: int = 0
    head: int | None = None  # the feed's position after the deletion's events (None: nothing changed)


def _chunks(items: Sequence[Any]) -> list[list[Any]]:
    return [list(items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]


async def _remove_sessions(
    db: AsyncConnection, app_id: UUID, session_ids: Sequence[UUID], feed: list[Change], removed: Removed
) -> set[date]:
    """Delete these sessions of the app with their messages, tag links and ratings; the days whose rollups
    they counted on. Tag usage and the rated messages' events are the caller's (it may remove more)."""
    days: set[date] = set()
    for chunk in _chunks(session_ids):
        rows = (await db.execute(select(session.c.id, session.c.started_at).where(
            session.c.app_id == app_id, session.c.id.in_(chunk)))).all()
        messages = (await db.execute(select(message.c.id, message.c.session_id, message.c.created_at).where(
            message.c.app_id == app_id, message.c.session_id.in_(chunk)))).all()
        ratings = (await db.execute(select(feedback.c.id, feedback.c.session_id).where(
            feedback.c.app_id == app_id, feedback.c.session_id.in_(chunk)))).all()
        days.update(day_of(row.started_at) for row in rows)
        days.update(day_of(row.created_at) for row in messages)
        # Children before their parents, so a follower applying the feed in order never holds an orphan.
        feed.extend(Change("feedback", DELETED, row.id, row.session_id) for row in ratings)
        feed.extend(Change("message", DELETED, row.id, row.session_id) for row in messages)
        feed.extend(Change("session", DELETED, str(row.id)) for row in rows)
        message_ids = [row.id for row in messages]
        for ids in _chunks(message_ids):
            await db.execute(delete(message_tag).where(message_tag.c.app_id == app_id,
                                                       message_tag.c.message_id.in_(ids)))
        await db.execute(delete(feedback).where(feedback.c.app_id == app_id, feedback.c.session_id.in_(chunk)))
        await _unlink_memories(db, app_id, memory.c.session_id, chunk, feed)
        await _unlink_memories(db, app_id, memory.c.source_message_id, message_ids, feed)
        await db.execute(delete(message).where(message.c.app_id == app_id, message.c.session_id.in_(chunk)))
        await db.execute(delete(session).where(session.c.app_id == app_id, session.c.id.in_(chunk)))
        removed.sessions += len(rows)
        removed.messages += len(messages)
        removed.feedback += len(ratings)
    return days


async def _unlink_memories(
    db: AsyncConnection, app_id: UUID, column: Any, ids: Sequence[Any], feed: list[Change]
) -> None:
    """Memories that name a session or message about to go name nothing instead (memory.updated), as a
    session names no consumer once its consumer is gone: a memory must never point at what no longer exists
    (an export of the app would not import again, its reference resolving nowhere)."""
    for chunk in _chunks(list(ids)):
        named = list((await db.execute(select(memory.c.id).where(memory.c.app_id == app_id, column.in_(chunk))
                                       )).scalars())
        if named:
            await db.execute(update(memory).where(memory.c.app_id == app_id, memory.c.id.in_(named))
                             .values({column.name: null()}))
            feed.extend(Change("memory", UPDATED, mid) for mid in named)


async def _tags_of_messages(db: AsyncConnection, app_id: UUID, session_ids: Sequence[UUID]) -> set[UUID]:
    """The tags linked to messages of these sessions (read before they go)."""
    found: set[UUID] = set()
    for chunk in _chunks(session_ids):
        query = (
            select(message_tag.c.tag_id).distinct()
            .join(message, (message.c.app_id == message_tag.c.app_id) & (message.c.id == message_tag.c.message_id))
            .where(message.c.app_id == app_id, message.c.session_id.in_(chunk))
        )
        found.update((await db.execute(query)).scalars())
    return found


async def _recount_tags(db: AsyncConnection, app_id: UUID, tag_ids: set[UUID], feed: list[Change]) -> None:
    """Set these tags' usage_count from their remaining links; tag.updated for each."""
    usage = select(func.count()).select_from(message_tag).where(message_tag.c.tag_id == tag.c.id).scalar_subquery()
    for chunk in _chunks(sorted(tag_ids, key=str)):
        await db.execute(update(tag).where(tag.c.app_id == app_id, tag.c.id.in_(chunk)).values(usage_count=usage))
    feed.extend(Change("tag", UPDATED, str(tag_id)) for tag_id in sorted(tag_ids, key=str))


async def _refresh_consumer(db: AsyncConnection, app_id: UUID, consumer_id: UUID | None) -> None:
    """After sessions went: whether the consumer still has one, and the active consumers' counter."""
    if consumer_id is None:
        return
    still = select(session.c.id).where(session.c.app_id == app_id, session.c.consumer_id == consumer_id).exists()
    result = await db.execute(
        update(consumer)
        .where(consumer.c.app_id == app_id, consumer.c.id == consumer_id, consumer.c.has_session, ~still)
        .values(has_session=False)
    )
    await add_counts(db, app_id, **{ACTIVE_CONSUMERS: -result.rowcount})


async def delete_session(db: AsyncConnection, app_id: UUID, session_id: UUID) -> Removed | None:
    """Delete one session of the app with its messages, tag links and ratings; None when the app has no such
    session. The session row is locked first, so a concurrent append waits and then finds it gone."""
    locked = (await db.execute(
        select(session.c.id, session.c.consumer_id).where(session.c.app_id == app_id, session.c.id == session_id)
        .with_for_update()
    )).first()
    if locked is None:
        return None
    removed = Removed()
    feed: list[Change] = []
    tags = await _tags_of_messages(db, app_id, [session_id])
    days = await _remove_sessions(db, app_id, [session_id], feed, removed)
    await _recount_tags(db, app_id, tags, feed)
    await add_counts(db, app_id, feedback=-removed.feedback)
    await _refresh_consumer(db, app_id, locked.consumer_id)
    await recompute_activity(db, app_id, days)
    if await record(db, app_id, feed):
        removed.head = await head_of(db, app_id)
    return removed


async def erase_consumer(db: AsyncConnection, app_id: UUID, consumer_id: UUID) -> Removed | None:
    """Erase a person: the consumer, every session they started (with its messages and ratings), their ratings
    in other sessions, their memories, and the idempotency records naming any of it; None when the app has no
    such consumer."""
    person = (await db.execute(
        select(consumer.c.id, consumer.c.has_session)
        .where(consumer.c.app_id == app_id, consumer.c.id == consumer_id).with_for_update()
    )).first()
    if person is None:
        return None
    removed = Removed()
    feed: list[Change] = []
    session_ids = list((await db.execute(select(session.c.id).where(
        session.c.app_id == app_id, session.c.consumer_id == consumer_id).with_for_update())).scalars())
    tags = await _tags_of_messages(db, app_id, session_ids)
    days = await _remove_sessions(db, app_id, session_ids, feed, removed)
    # Their ratings of messages in other people's sessions: the rated messages show the newest rating.
    elsewhere = (await db.execute(select(feedback.c.id, feedback.c.session_id, feedback.c.message_id).where(
        feedback.c.app_id == app_id, feedback.c.consumer_id == consumer_id))).all()
    feed.extend(Change("feedback", DELETED, row.id, row.session_id) for row in elsewhere)
    await db.execute(delete(feedback).where(feedback.c.app_id == app_id, feedback.c.consumer_id == consumer_id))
    feed.extend(await messages_changed(db, app_id, [row.message_id for row in elsewhere]))
    removed.feedback += len(elsewhere)
    memories = list((await db.execute(select(memory.c.id).where(
        memory.c.app_id == app_id, memory.c.consumer_id == consumer_id))).scalars())
    feed.extend(Change("memory", DELETED, mid) for mid in memories)
    await db.execute(delete(memory).where(memory.c.app_id == app_id, memory.c.consumer_id == consumer_id))
    removed.memories = len(memories)
    await db.execute(delete(consumer).where(consumer.c.app_id == app_id, consumer.c.id == consumer_id))
    feed.append(Change("consumer", DELETED, str(consumer_id)))
    await _recount_tags(db, app_id, tags, feed)
    active = -1 if person.has_session else 0
    await add_counts(db, app_id, consumers=-1, feedback=-removed.feedback, memories=-removed.memories,
                     **{ACTIVE_CONSUMERS: active})
    await recompute_activity(db, app_id, days)
    await _drop_idempotency_records(db, app_id, [consumer_id, *session_ids])
    if await record(db, app_id, feed):
        removed.head = await head_of(db, app_id)
    return removed


async def _drop_idempotency_records(db: AsyncConnection, app_id: UUID, named: Sequence[UUID]) -> None:
    """Delete the app's stored idempotent responses that name any of these ids."""
    needles = [str(value).encode() for value in named]
    stored = (await db.execute(
        select(idempotency_key.c.api_key_id, idempotency_key.c.key, idempotency_key.c.response_body)
        .join(api_key, api_key.c.id == idempotency_key.c.api_key_id)
        .where(api_key.c.app_id == app_id)
    )).all()
    for row in stored:
        body = bytes(row.response_body or b"")
        if any(needle in body for needle in needles):
            await db.execute(delete(idempotency_key).where(
                idempotency_key.c.api_key_id == row.api_key_id, idempotency_key.c.key == row.key))


# The kinds delete_objects removes one by one; sessions and consumers have delete_session and erase_consumer.
OBJECT_KINDS = ("message", "feedback", "memory", "knowledge_source", "tag")


async def delete_objects(db: AsyncConnection, app_id: UUID, kind: str, ids: Sequence[str]) -> Removed:
    """Delete these objects of the app (ids it lacks are skipped) with what depends on them: a message's tag
    links and ratings (its session's message_count and last activity follow), a tag's links; counters,
    rollups, tag usage and the events of everything that goes or shows it, in the caller's transaction. For
    a copy that learns an object is gone (`chipp-builder mirror`); Part one's own deletes are the two above."""
    if kind not in OBJECT_KINDS:
        raise ValueError(f"delete_objects deletes {', '.join(OBJECT_KINDS)}, not {kind!r}")
    removed = Removed()
    feed: list[Change] = []
    for chunk in _chunks(list(dict.fromkeys(ids))):
        if kind == "message":
            await _delete_messages(db, app_id, chunk, feed, removed)
        elif kind == "feedback":
            await _delete_ratings(db, app_id, chunk, feed, removed)
        elif kind == "tag":
            found = list((await db.execute(select(tag.c.id).where(
                tag.c.app_id == app_id, tag.c.id.in_([UUID(str(i)) for i in chunk])))).scalars())
            linked = (await db.execute(select(message_tag.c.message_id).distinct().where(
                message_tag.c.app_id == app_id, message_tag.c.tag_id.in_(found)))).scalars()
            feed.extend(await messages_changed(db, app_id, list(linked)))
            await db.execute(delete(message_tag).where(message_tag.c.app_id == app_id, message_tag.c.tag_id.in_(found)))
            await db.execute(delete(tag).where(tag.c.app_id == app_id, tag.c.id.in_(found)))
            feed.extend(Change("tag", DELETED, str(tag_id)) for tag_id in found)
        else:
            table = memory if kind == "memory" else knowledge_source
            found = list((await db.execute(select(table.c.id).where(
                table.c.app_id == app_id, table.c.id.in_(chunk)))).scalars())
            await db.execute(delete(table).where(table.c.app_id == app_id, table.c.id.in_(found)))
            feed.extend(Change(kind, DELETED, object_id) for object_id in found)
            counter = "memories" if kind == "memory" else "knowledge_sources"
            await add_counts(db, app_id, **{counter: -len(found)})
            if kind == "memory":
                removed.memories += len(found)
    if await record(db, app_id, feed):
        removed.head = await head_of(db, app_id)
    return removed


async def _delete_ratings(
    db: AsyncConnection, app_id: UUID, ids: Sequence[str], feed: list[Change], removed: Removed
) -> None:
    """Delete these ratings; the rated messages show their next newest rating (message.updated)."""
    rows = (await db.execute(select(feedback.c.id, feedback.c.session_id, feedback.c.message_id).where(
        feedback.c.app_id == app_id, feedback.c.id.in_(ids)))).all()
    if not rows:
        return
    await db.execute(delete(feedback).where(feedback.c.app_id == app_id, feedback.c.id.in_([r.id for r in rows])))
    feed.extend(Change("feedback", DELETED, row.id, row.session_id) for row in rows)
    feed.extend(await messages_changed(db, app_id, [row.message_id for row in rows]))
    await add_counts(db, app_id, feedback=-len(rows))
    removed.feedback += len(rows)


async def _delete_messages(
    db: AsyncConnection, app_id: UUID, ids: Sequence[str], feed: list[Change], removed: Removed
) -> None:
    """Delete these messages with their tag links and ratings; their sessions' counts and activity, the tags'
    usage and the days' rollups follow."""
    rows = (await db.execute(select(message.c.id, message.c.session_id, message.c.created_at).where(
        message.c.app_id == app_id, message.c.id.in_(ids)))).all()
    if not rows:
        return
    found = [row.id for row in rows]
    tags = set((await db.execute(select(message_tag.c.tag_id).distinct().where(
        message_tag.c.app_id == app_id, message_tag.c.message_id.in_(found)))).scalars())
    ratings = list((await db.execute(select(feedback.c.id).where(
        feedback.c.app_id == app_id, feedback.c.message_id.in_(found)))).scalars())
    await _delete_ratings(db, app_id, ratings, feed, removed)
    await _unlink_memories(db, app_id, memory.c.source_message_id, found, feed)
    await db.execute(delete(message_tag).where(message_tag.c.app_id == app_id, message_tag.c.message_id.in_(found)))
    await db.execute(delete(message).where(message.c.app_id == app_id, message.c.id.in_(found)))
    feed.extend(Change("message", DELETED, row.id, row.session_id) for row in rows)
    sessions = sorted({row.session_id for row in rows}, key=str)
    await recompute_derived(db, app_id, sessions)
    feed.extend(Change("session", UPDATED, str(sid)) for sid in sessions)
    await _recount_tags(db, app_id, tags, feed)
    await recompute_activity(db, app_id, {day_of(row.created_at) for row in rows})
    removed.messages += len(rows)
