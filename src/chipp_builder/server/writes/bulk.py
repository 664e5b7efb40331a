"""Bulk inserts of rows that are all new (the demo): the rows, their counters and rollups, and a `created` event
for each object, in the caller's transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.counters import add_counts
from chipp_builder.server.db.daily_rollups import add_activity
from chipp_builder.server.db.tables import (
    consumer,
    feedback,
    knowledge_source,
    memory,
    message,
    message_tag,
    session,
    tag,
)
from chipp_builder.server.writes.events import CREATED, UPDATED, Change, record

# Every row comes after what it references.
_ORDER: tuple[tuple[str, Table], ...] = (
    ("consumer", consumer),
    ("knowledge_source", knowledge_source),
    ("tag", tag),
    ("session", session),
    ("message", message),
    ("message_tag", message_tag),
    ("feedback", feedback),
    ("memory", memory),
)
_COUNTED = {"consumer": "consumers", "knowledge_source": "knowledge_sources", "feedback": "feedback",
            "memory": "memories"}


def _insert(table: Table) -> Any:
    """A plain INSERT for executemany; a None in a JSON column becomes SQL NULL rather than JSON 'null'."""
    stmt = table.insert()
    json_columns = {
        c.name: bindparam(c.name, type_=JSON(none_as_null=True)) for c in table.c if isinstance(c.type, JSON)
    }
    return stmt.values(**json_columns) if json_columns else stmt


def _created(kind: str, row: dict[str, Any]) -> Change:
    session_id = row["session_id"] if kind in ("message", "feedback") else None
    return Change(kind, CREATED, str(row["id"]), session_id)


async def insert_new(db: AsyncConnection, app_id: UUID, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Insert rows of new objects by kind (`consumer`, `session`, `message`, ...; each row with its app_id and
    every column), with their counters, rollups and events. Derived columns (message_count, usage_count) must
    be given as they will be."""
    for kind, table in _ORDER:
        if rows.get(kind):
            await db.execute(_insert(table), rows[kind])
    await add_counts(db, app_id, **{counter: len(rows.get(kind, ())) for kind, counter in _COUNTED.items()})
    await add_activity(
        db,
        app_id,
        sessions=[(r["started_at"], r["consumer_id"]) for r in rows.get("session", ())],
        messages=[(r["created_at"], r["model"], r["token_count"]) for r in rows.get("message", ())],
    )
    await record(
        db, app_id, (_created(kind, row) for kind, _ in _ORDER if kind != "message_tag" for row in rows.get(kind, ()))
    )


async def set_tag_usage(db: AsyncConnection, app_id: UUID, usage: dict[UUID, int]) -> None:
    """Set the usage_count of the app's tags (after a bulk insert of their message links)."""
    if not usage:
        return
    await db.execute(
        update(tag)
        .where(tag.c.app_id == app_id, tag.c.id == bindparam("tag_id"))
        .values(usage_count=bindparam("usage")),
        [{"tag_id": tag_id, "usage": count} for tag_id, count in usage.items()],
    )
    await record(db, app_id, (Change("tag", UPDATED, str(tag_id)) for tag_id in usage))
