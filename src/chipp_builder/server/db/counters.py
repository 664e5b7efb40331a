"""Per-app row counters kept exact in the writing transaction: the exact total of an unfiltered offset list,
and the app's active consumers (consumers named by at least one session).

Why explicit calls from the few writers rather than database triggers: the bulk writers (import, demo) write
tens of thousands of rows per transaction, and a row trigger would update the same counter or day row once per
inserted row; on PostgreSQL every such update leaves a new row version that the open transaction cannot prune,
so a bulk load would slow down as they pile up. Instead every writer calls these functions (and
db/daily_rollups.py): single-row writers (conversations/log, POST /feedback, find_or_create_consumer) add their
increments, the demo adds each chunk's sums, and the importer, whose upserts may replace rows, recomputes what
they touched (ingest/derived.py). All of them run in the caller's transaction, so a summary commits with the
rows it describes or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import Table, bindparam, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.fastread import Reader, ReadQuery
from chipp_builder.server.db.tables import app_counter, consumer, feedback, knowledge_source, memory, session

# Keeps each IN list well under SQLite's and asyncpg's bound-parameter limits (32,766 / 32,767).
_CHUNK = 1000

COUNTED: dict[str, Table] = {
    "consumers": consumer,
    "knowledge_sources": knowledge_source,
    "feedback": feedback,
    "memories": memory,
}


def _insert(db: AsyncConnection, table: Table) -> Any:
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[db.dialect.name]
    return dialect.insert(table)


async def add_increments(
    db: AsyncConnection, table: Table, keys: tuple[str, ...], adds: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """Upsert rows whose `adds` columns are increments of the stored row (created when missing); the counters'
    and the daily rollups' (db/daily_rollups.py) one way to add.

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
    await add_increments(db, app_counter, ("app_id", "resource"), ("row_count",), rows)


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
    recounted = [*COUNTED, ACTIVE_CONSUMERS]  # not the feed's rows (writes/events.py), which are no counts
    await db.execute(
        delete(app_counter).where(app_counter.c.app_id == app_id, app_counter.c.resource.in_(recounted))
    )
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
