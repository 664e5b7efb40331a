"""Derived values kept exact in the writing transaction: sessions' message counts and last activity, tags'
usage, per-app row counters (offset-list totals) and per-day activity rollups (analytics).

Why explicit calls from the few writers rather than database triggers: the bulk writers (import, demo) write
tens of thousands of rows per transaction, and a row trigger would update the same counter or day row once per
inserted row; on PostgreSQL every such update leaves a new row version that the open transaction cannot prune,
so a bulk load would slow down as they pile up. Instead every writer goes through the functions below: single-row
writers (conversations/log, POST /feedback, find_or_create_consumer) add their increments, the demo adds each chunk's
sums, and the importer, whose upserts may replace rows, recomputes the touched days from the raw rows. All of
them run in the caller's transaction, so a summary commits with the rows it describes or not at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any
from uuid import UUID

from sqlalchemy import Table, Update, bindparam, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.days import utc_day
from chipp_builder.server.db.fastread import Reader, ReadQuery
from chipp_builder.server.db.tables import (
    app_counter,
    consumer,
    daily_consumer,
    daily_message,
    daily_session,
    feedback,
    knowledge_source,
    memory,
    message,
    message_tag,
    session,
    tag,
)

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


# ---------------------------------------------------------------------------------------------------------
# Per-app row counters: the exact total of an unfiltered offset list.

COUNTED: dict[str, Table] = {
    "consumers": consumer,
    "knowledge_sources": knowledge_source,
    "feedback": feedback,
    "memories": memory,
}


def _insert(db: AsyncConnection, table: Table) -> Any:
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[db.dialect.name]
    return dialect.insert(table)


async def _add(
    db: AsyncConnection, table: Table, keys: tuple[str, ...], adds: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """Upsert rows whose `adds` columns are increments of the stored row (created when missing).

    Rows go in key order, so two transactions adding to the same rows lock them in the same order and cannot
    deadlock on PostgreSQL.
    """
    if not rows:
        return
    stmt = _insert(db, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: table.c[name] + stmt.excluded[name] for name in adds}
    )
    rows.sort(key=lambda row: tuple(str(row[k]) for k in keys))
    await db.execute(stmt, rows)


# Not a table's row count: the app's consumers named by at least one session (consumer.has_session), which is
# all-time unique_consumers in analytics.
ACTIVE_CONSUMERS = "active_consumers"


async def add_counts(db: AsyncConnection, app_id: UUID, **deltas: int) -> None:
    """Add to the app's row counters, e.g. add_counts(db, app_id, consumers=1); keys are COUNTED's or
    ACTIVE_CONSUMERS."""
    rows = [{"app_id": app_id, "resource": resource, "row_count": delta} for resource, delta in deltas.items() if delta]
    unknown = set(deltas) - set(COUNTED) - {ACTIVE_CONSUMERS}
    if unknown:
        raise ValueError(f"no counter for {sorted(unknown)}")
    await _add(db, app_counter, ("app_id", "resource"), ("row_count",), rows)


# The one read of a counter, through the reader (db/fastread.py), for the routes and the tests alike.
_COUNTER = ReadQuery(
    select(app_counter.c.row_count).where(
        app_counter.c.app_id == bindparam("app_id"), app_counter.c.resource == bindparam("resource")
    ),
    on_loop=True,
)


async def read_counter(reader: Reader, app_id: UUID, resource: str) -> int:
    """The app's exact number of rows of a counted resource (or ACTIVE_CONSUMERS): one primary-key read."""
    found = await reader.fetch(_COUNTER, app_id=app_id, resource=resource)
    return int(found[0]["row_count"]) if found else 0


async def recount(db: AsyncConnection, app_id: UUID) -> None:
    """Set every counter of the app from count(*) over its rows (repair; the migration's backfill)."""
    await db.execute(delete(app_counter).where(app_counter.c.app_id == app_id))
    for resource, table in COUNTED.items():
        counted = select(literal(app_id, app_counter.c.app_id.type), literal(resource), func.count()).where(
            table.c.app_id == app_id
        )
        await db.execute(app_counter.insert().from_select(["app_id", "resource", "row_count"], counted))
    await db.execute(
        update(consumer).where(consumer.c.app_id == app_id).values(has_session=_session_of(consumer.c.id))
    )
    active = select(literal(app_id, app_counter.c.app_id.type), literal(ACTIVE_CONSUMERS), func.count()).where(
        consumer.c.app_id == app_id, consumer.c.has_session
    )
    await db.execute(app_counter.insert().from_select(["app_id", "resource", "row_count"], active))


def _session_of(consumer_id: Any) -> Any:
    """EXISTS a session of the consumer's app naming it (through the (app_id, consumer_id, ...) index)."""
    return (
        select(session.c.id)
        .where(session.c.app_id == consumer.c.app_id, session.c.consumer_id == consumer_id)
        .exists()
    )


async def mark_active_consumers(db: AsyncConnection, app_id: UUID, consumer_ids: Iterable[UUID]) -> None:
    """Flag consumers that new sessions name, counting the ones that were not flagged yet.

    The UPDATE's `NOT has_session` condition makes the count exact under concurrency: on PostgreSQL a second
    transaction flagging the same consumer waits for the first, re-reads the row and updates nothing.
    """
    wanted = sorted(set(consumer_ids), key=str)  # a fixed order: concurrent writers lock rows alike
    flagged = 0
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        result = await db.execute(
            update(consumer)
            .where(consumer.c.app_id == app_id, consumer.c.id.in_(chunk), ~consumer.c.has_session)
            .values(has_session=True)
        )
        flagged += result.rowcount
    await add_counts(db, app_id, active_consumers=flagged)


async def refresh_active_consumers(db: AsyncConnection, app_id: UUID, consumer_ids: Collection[UUID]) -> None:
    """Recompute has_session from the session rows for these consumers and move the counter by the difference:
    after an upsert that may have moved sessions from one consumer to another."""
    wanted = sorted(set(consumer_ids), key=str)
    delta = 0
    for start in range(0, len(wanted), _CHUNK):
        where = [consumer.c.app_id == app_id, consumer.c.id.in_(wanted[start : start + _CHUNK])]
        active = select(func.count()).where(*where, consumer.c.has_session)
        before = int((await db.execute(active)).scalar_one())
        await db.execute(update(consumer).where(*where).values(has_session=_session_of(consumer.c.id)))
        delta += int((await db.execute(active)).scalar_one()) - before
    await add_counts(db, app_id, active_consumers=delta)


# ---------------------------------------------------------------------------------------------------------
# Per-day activity rollups: what analytics reads.


def day_of(at: datetime) -> date:
    """The UTC calendar day of an instant (a naive one is UTC)."""
    return (at if at.tzinfo is None else at.astimezone(UTC)).date()


async def add_activity(
    db: AsyncConnection,
    app_id: UUID,
    sessions: Iterable[tuple[datetime, UUID | None]] = (),
    messages: Iterable[tuple[datetime, str | None, int | None]] = (),
) -> None:
    """Count new rows into the rollups: sessions as (started_at, consumer_id), messages as
    (created_at, model, token_count). Only for rows that did not exist before (inserts, not replacements)."""
    per_day: Counter[date] = Counter()
    per_consumer: Counter[tuple[date, UUID]] = Counter()
    sessions = list(sessions)
    await mark_active_consumers(db, app_id, (cid for _, cid in sessions if cid is not None))
    for started_at, consumer_id in sessions:
        day = day_of(started_at)
        per_day[day] += 1
        if consumer_id is not None:
            per_consumer[(day, consumer_id)] += 1
    per_model: dict[tuple[date, str | None], list[int]] = {}
    for created_at, model, tokens in messages:
        counts = per_model.setdefault((day_of(created_at), model), [0, 0])
        counts[0] += 1
        counts[1] += tokens or 0
    await _add(
        db,
        daily_session,
        ("app_id", "day"),
        ("session_count",),
        [{"app_id": app_id, "day": day, "session_count": n} for day, n in per_day.items()],
    )
    await _add(
        db,
        daily_consumer,
        ("app_id", "day", "consumer_id"),
        ("session_count",),
        [
            {"app_id": app_id, "day": day, "consumer_id": cid, "session_count": n}
            for (day, cid), n in per_consumer.items()
        ],
    )
    await _add(
        db,
        daily_message,
        ("app_id", "day", "model_is_null", "model"),
        ("message_count", "total_tokens"),
        [
            {
                "app_id": app_id,
                "day": day,
                "model_is_null": model is None,
                "model": model or "",
                "message_count": n,
                "total_tokens": tokens,
            }
            for (day, model), (n, tokens) in per_model.items()
        ],
    )


def _day_ranges(days: Iterable[date], gap: int = 7) -> list[tuple[date, date]]:
    """Sorted days joined into inclusive ranges; days up to `gap` apart share one (recomputing the days
    between is harmless and saves statements)."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and (day - ranges[-1][1]).days <= gap:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


async def recompute_activity(db: AsyncConnection, app_id: UUID, days: Iterable[date] | None = None) -> None:
    """Rebuild the app's rollups for these UTC days (every day when None) from the session and message rows.

    Set-based: per run of days, one DELETE and one INSERT ... SELECT ... GROUP BY per rollup table, reading
    through the (app_id, started_at) and (app_id, created_at) indexes, so the cost follows the days touched.
    """
    dialect = db.dialect.name
    ranges: list[tuple[date | None, date | None]]
    ranges = [(None, None)] if days is None else list(_day_ranges(days))
    s_day, m_day = utc_day(session.c.started_at, dialect), utc_day(message.c.created_at, dialect)
    for first, last in ranges:
        s_where: list[Any] = [session.c.app_id == app_id]
        m_where: list[Any] = [message.c.app_id == app_id]
        r_where: dict[Table, list[Any]] = {t: [t.c.app_id == app_id] for t in _ROLLUPS}
        if first is not None and last is not None:
            lo = datetime(first.year, first.month, first.day, tzinfo=UTC)
            s_where.append(session.c.started_at >= lo)
            m_where.append(message.c.created_at >= lo)
            try:
                hi = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
                s_where.append(session.c.started_at < hi)
                m_where.append(message.c.created_at < hi)
            except OverflowError:  # the calendar's last day: nothing comes after it
                pass
            for table, where in r_where.items():
                where.extend((table.c.day >= first, table.c.day <= last))
        for table, where in r_where.items():
            await db.execute(delete(table).where(*where))
        app_value = literal(app_id, session.c.app_id.type)
        await db.execute(
            daily_session.insert().from_select(
                ["app_id", "day", "session_count"],
                select(app_value, s_day, func.count()).where(*s_where).group_by(s_day),
            )
        )
        await db.execute(
            daily_consumer.insert().from_select(
                ["app_id", "day", "consumer_id", "session_count"],
                select(app_value, s_day, session.c.consumer_id, func.count())
                .where(*s_where, session.c.consumer_id.is_not(None))
                .group_by(s_day, session.c.consumer_id),
            )
        )
        await db.execute(
            daily_message.insert().from_select(
                ["app_id", "day", "model_is_null", "model", "message_count", "total_tokens"],
                select(
                    app_value,
                    m_day,
                    message.c.model.is_(None),
                    func.coalesce(message.c.model, ""),
                    func.count(),
                    func.coalesce(func.sum(message.c.token_count), 0),
                )
                .where(*m_where)
                .group_by(m_day, message.c.model),
            )
        )


_ROLLUPS = (daily_session, daily_consumer, daily_message)


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
