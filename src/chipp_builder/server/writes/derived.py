"""Derived values an import's upserts change, kept exact in its transaction: sessions' message counts and last
activity, tags' usage, and the bookkeeping around an upsert that may replace rows (the days and counted rows it
touches, so db/counters.py and db/daily_rollups.py can be brought back to exact)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from typing import Any
from uuid import UUID

from sqlalchemy import Update, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.counters import COUNTED, add_counts
from chipp_builder.server.db.daily_rollups import day_of, recompute_activity
from chipp_builder.server.db.days import utc_day
from chipp_builder.server.db.tables import message, message_tag, session, tag

# Keeps each IN list well under SQLite's and asyncpg's bound-parameter limits (32,766 / 32,767).
_CHUNK = 1000


async def recompute_derived(
    db: AsyncConnection, app_id: UUID, session_ids: Iterable[UUID] | None = None
) -> None:
    """Recompute message_count and last_activity_at of the given sessions (all the app's when None; an iterable
    is read chunk by chunk) and usage_count of every tag of the app, from the message and message_tag rows.

    Why set-based: the counts are columns the server maintains (so list endpoints read them without a join),
    and after a bulk write they must match the rows exactly. A few UPDATEs with correlated subqueries per
    chunk of sessions let the database count through its indexes (message by session_id, message_tag by
    tag_id) instead of a round trip per row, and the same SQLAlchemy Core runs on SQLite and PostgreSQL.
    last_activity_at becomes the latest of started_at, the newest message's created_at and ended_at.
    """
    # Correlated on session_id alone, deliberately: a session's messages are all its app's, and adding
    # `message.app_id = session.app_id` leads SQLite's planner to the (app_id, created_at) index, which scans
    # every message of the app for each session.
    message_total = (
        select(func.count())
        .select_from(message)
        .where(message.c.session_id == session.c.id)
        .scalar_subquery()
    )
    newest_message = (
        select(func.max(message.c.created_at)).where(message.c.session_id == session.c.id).scalar_subquery()
    )
    # The "latest of three" is three plain statements rather than one expression: SQLite's max(a, b, c) and
    # PostgreSQL's greatest(a, b, c) differ in name and in how they treat NULL, and a CASE would evaluate the
    # newest-message subquery several times per row.
    statements: list[Update] = [
        update(session).values(
            message_count=message_total, last_activity_at=func.coalesce(newest_message, session.c.started_at)
        ),
        update(session)
        .where(session.c.last_activity_at < session.c.started_at)
        .values(last_activity_at=session.c.started_at),
        update(session)
        .where(session.c.ended_at.is_not(None), session.c.ended_at > session.c.last_activity_at)
        .values(last_activity_at=session.c.ended_at),
    ]
    statements = [statement.where(session.c.app_id == app_id) for statement in statements]
    if session_ids is None:
        for statement in statements:
            await db.execute(statement)
    else:
        # All three per chunk: each session's values depend on its own row and messages only.
        for chunk in _chunks(session_ids, _CHUNK):
            for statement in statements:
                await db.execute(statement.where(session.c.id.in_(list(dict.fromkeys(chunk)))))

    usage = (
        select(func.count())
        .select_from(message_tag)
        .where(message_tag.c.tag_id == tag.c.id)
        .scalar_subquery()
    )
    await db.execute(update(tag).where(tag.c.app_id == app_id).values(usage_count=usage))


@dataclass
class PendingUpsert:
    """What an upsert is about to replace: the days its old and new rows count on and how many of the counted
    rows it brings and already exist."""

    days: set[date] = field(default_factory=set)
    existing: dict[str, int] = field(default_factory=dict)
    incoming: dict[str, int] = field(default_factory=dict)


async def before_upsert(
    db: AsyncConnection,
    app_id: UUID,
    ids: Mapping[str, Sequence[Any]],
    times: Iterable[datetime],
    pending: PendingUpsert | None = None,
) -> PendingUpsert:
    """Call before an upsert that may replace rows: once, or once per chunk of ids adding to `pending` (a new one
    when None), all before the first write. `ids` maps "session", "message" and COUNTED's resources to the ids
    about to be written, no id in two chunks; `times` are the new rows' started_at / created_at. Reads the days
    the replaced sessions and messages count on now, and how many of the counted ids exist already.

    Replaced sessions may also change which consumers have one: refresh_active_consumers afterwards for the
    consumers they named before (consumers_of_sessions, read now) and the ones the written sessions name.

    Why before any write: on PostgreSQL, rows inserted by the open transaction are missing from the planner's
    statistics, so a lookup after a bulk insert may scan the app's whole table instead of probing its key.
    """
    pending = PendingUpsert() if pending is None else pending
    pending.days.update(day_of(at) for at in times)
    dialect = db.dialect.name
    for table, column, key in ((session, session.c.started_at, "session"), (message, message.c.created_at, "message")):
        day = utc_day(column, dialect)
        for chunk in _chunks(ids.get(key, ()), _CHUNK):
            query = select(day).distinct().where(table.c.app_id == app_id, table.c.id.in_(chunk))
            pending.days.update(_as_day(value) for value in (await db.execute(query)).scalars())
    for resource, table in COUNTED.items():
        wanted = list(dict.fromkeys(ids.get(resource, ())))
        pending.incoming[resource] = pending.incoming.get(resource, 0) + len(wanted)
        found = 0
        for chunk in _chunks(wanted, _CHUNK):
            query = select(func.count()).where(table.c.app_id == app_id, table.c.id.in_(chunk))
            found += int((await db.execute(query)).scalar_one())
        pending.existing[resource] = pending.existing.get(resource, 0) + found
    return pending


async def after_upsert(db: AsyncConnection, app_id: UUID, pending: PendingUpsert) -> None:
    """Call after the upsert, in its transaction: count the new rows and rebuild the touched days' rollups."""
    await add_counts(
        db, app_id, **{r: pending.incoming[r] - pending.existing[r] for r in COUNTED if r in pending.incoming}
    )
    if pending.days:
        await recompute_activity(db, app_id, pending.days)


async def consumers_of_sessions(db: AsyncConnection, app_id: UUID, session_ids: Sequence[Any]) -> set[UUID]:
    """The consumers that these sessions of the app name."""
    found: set[UUID] = set()
    for chunk in _chunks(session_ids, _CHUNK):
        query = select(session.c.consumer_id).distinct().where(
            session.c.app_id == app_id,
            session.c.id.in_(chunk),
            session.c.consumer_id.is_not(None),
        )
        found.update((await db.execute(query)).scalars())
    return found


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to `size` items, reading `items` lazily."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _as_day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
