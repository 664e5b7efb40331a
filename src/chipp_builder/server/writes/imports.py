"""The import's write (SPEC section 10): upsert the staged records in dependency order, keep the derived counts,
counters and rollups exact, and record one event per changed object, all in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import JSON, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.counters import refresh_active_consumers
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
from chipp_builder.server.writes.dependents import messages_changed, rows_showing
from chipp_builder.server.writes.derived import (
    PendingUpsert,
    after_upsert,
    before_upsert,
    consumers_of_sessions,
    recompute_derived,
)
from chipp_builder.server.writes.events import CREATED, UPDATED, Change, record

# Record types in the order their rows are written: every record comes after what it references.
WRITE_ORDER = (
    "consumer",
    "session",
    "tag",
    "knowledge_source",
    "message",
    "message_tag",
    "feedback",
    "memory",
)


class StagedImport(Protocol):
    """The resolved records of an import (ingest/staging.py's Staging), as the write reads them."""

    def rows(self, kind: str, size: int) -> Iterator[list[dict[str, Any]]]: ...
    def add_touched_consumers(self, consumer_ids: Iterable[UUID]) -> None: ...
    def touched_consumers(self, size: int) -> Iterator[list[UUID]]: ...
    def touched_sessions(self) -> Iterator[UUID]: ...
    def note_changes(self, changes: Iterable[Change]) -> None: ...
    def noted_changes(self, size: int) -> Iterator[list[Change]]: ...


class ImportCounts(Protocol):
    """Where the write counts each record type's inserted, updated and unchanged rows."""

    inserted: dict[str, int]
    updated: dict[str, int]
    unchanged: dict[str, int]


def upsert_statement(
    dialect_name: str, table: Table, keys: tuple[str, ...], keep: tuple[str, ...] = ()
) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE on SQLite or PostgreSQL: a row with an existing key is replaced.

    Columns in `keep` are not overwritten (derived ones, recomputed afterwards). For tables keyed by a UUID
    alone, the update applies only when the stored row is the same app's: a concurrent import into another
    app can never take its rows over.
    """
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect_name)
    if dialect is None:
        raise ValueError(f"bulk import supports SQLite and PostgreSQL, not {dialect_name}")
    stmt = dialect.insert(table)
    json_columns = {
        c.name: bindparam(c.name, type_=JSON(none_as_null=True)) for c in table.c if isinstance(c.type, JSON)
    }
    if json_columns:
        # A Python None in a JSON column would otherwise be stored as the JSON text 'null', not SQL NULL.
        stmt = stmt.values(**json_columns)
    if "message_id" in keys and "tag_id" in keys:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    updates = {c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys and c.name not in keep}
    guard = table.c.app_id == stmt.excluded.app_id if keys == ("id",) else None
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates, where=guard)


_TABLES: dict[str, tuple[Table, tuple[str, ...], tuple[str, ...]]] = {
    "consumer": (consumer, ("id",), ("has_session",)),
    "session": (session, ("id",), ("message_count", "last_activity_at")),
    "tag": (tag, ("id",), ("usage_count",)),
    "knowledge_source": (knowledge_source, ("app_id", "id"), ()),
    "message": (message, ("app_id", "id"), ()),
    "message_tag": (message_tag, ("app_id", "message_id", "tag_id"), ()),
    "feedback": (feedback, ("app_id", "id"), ()),
    "memory": (memory, ("app_id", "id"), ()),
}


# What derived.before_upsert tracks for each record type (COUNTED's resources, "session", "message"), and the
# time that places a new row on a day.
_TRACKED = {
    "consumer": "consumers",
    "session": "session",
    "knowledge_source": "knowledge_sources",
    "message": "message",
    "feedback": "feedback",
    "memory": "memories",
}
_DAY_OF = {"session": "started_at", "message": "created_at"}


async def _before_writing(db: AsyncConnection, app_id: UUID, spool: StagedImport, chunk: int) -> PendingUpsert:
    """Before the first write, what the upserts replace (derived.py): the days and counts they change, and, in
    staging, the consumers the replaced sessions name; a chunk of staged rows at a time."""
    pending = PendingUpsert()
    for kind, tracked in _TRACKED.items():
        day_of = _DAY_OF.get(kind)
        for rows in spool.rows(kind, chunk):
            ids = [row["id"] for row in rows]
            times = [row[day_of] for row in rows] if day_of is not None else []
            await before_upsert(db, app_id, {tracked: ids}, times, pending)
            if kind == "session":
                spool.add_touched_consumers(await consumers_of_sessions(db, app_id, ids))
    return pending


async def _stored(db: AsyncConnection, app_id: UUID, kind: str, rows: list[dict[str, Any]]) -> dict[Any, Any]:
    """The app's stored rows with the keys of a chunk of staged rows, by key (a message tag's is its pair)."""
    table = _TABLES[kind][0]
    if kind == "message_tag":
        message_ids = list({row["message_id"] for row in rows})
        query = select(table.c.message_id, table.c.tag_id).where(
            table.c.app_id == app_id, table.c.message_id.in_(message_ids)
        )
        return {(stored.message_id, stored.tag_id): {} for stored in await db.execute(query)}
    query = select(table).where(table.c.app_id == app_id, table.c.id.in_([row["id"] for row in rows]))
    return {stored.id: stored._mapping for stored in await db.execute(query)}


def _key(kind: str, row: dict[str, Any]) -> Any:
    return (row["message_id"], row["tag_id"]) if kind == "message_tag" else row["id"]


async def write_staged(
    db: AsyncConnection, app_id: UUID, spool: StagedImport, report: ImportCounts, *, chunk: int, lookup_chunk: int
) -> None:
    """Upsert every good record in dependency order, chunk by chunk, then recompute the derived values.

    Each chunk is compared with the rows stored under its keys first, column by column over what the upsert
    would write: a new key counts as inserted, a different row as updated, an equal one as unchanged and is
    not written at all (rewriting it would store the same values).
    """
    pending = await _before_writing(db, app_id, spool, chunk)
    for kind in WRITE_ORDER:
        table, keys, keep = _TABLES[kind]
        stmt = upsert_statement(db.dialect.name, table, keys, keep)
        for rows in spool.rows(kind, chunk):
            stored = await _stored(db, app_id, kind, rows)
            changed = []
            notes: list[Change] = []
            for row in rows:
                before = stored.get(_key(kind, row))
                if before is None:
                    report.inserted[kind] += 1
                elif any(row[name] != before[name] for name in row if name not in keys and name not in keep):
                    report.updated[kind] += 1
                else:
                    report.unchanged[kind] += 1
                    continue
                changed.append({**row, "app_id": app_id})
                notes.extend(_changes_of(kind, row, before))
            if changed:
                await db.execute(stmt, changed)
                notes.extend(await _dependents(db, app_id, kind, changed, stored))
                spool.note_changes(notes)
    await recompute_derived(db, app_id, spool.touched_sessions())
    # In one global order, as concurrent writers lock consumer rows alike (counters.refresh_active_consumers).
    for consumers in spool.touched_consumers(lookup_chunk):
        await refresh_active_consumers(db, app_id, consumers)
    await after_upsert(db, app_id, pending)
    # Last, so the feed's row lock is held only until the commit (writes/events.py); one event per object.
    for changes in spool.noted_changes(chunk):
        await record(db, app_id, changes)


def _changes_of(kind: str, row: dict[str, Any], before: Any) -> list[Change]:
    """The events of one written row, and of the objects whose derived fields it moves (a session's
    message_count and last activity, a message's tags and feedback, a tag's usage_count)."""
    action = CREATED if before is None else UPDATED
    if kind == "message_tag":
        # The message's session is looked up after the chunk (_dependents); the tag's usage_count moves.
        return [Change("tag", UPDATED, str(row["tag_id"]))]
    if kind == "message":
        notes = [Change("message", action, row["id"], row["session_id"]),
                 Change("session", UPDATED, str(row["session_id"]))]
        if before is not None and before["session_id"] != row["session_id"]:
            notes.append(Change("session", UPDATED, str(before["session_id"])))
        return notes
    if kind == "feedback":
        notes = [Change("feedback", action, row["id"], row["session_id"]),
                 Change("message", UPDATED, row["message_id"], row["session_id"])]
        if before is not None and before["message_id"] != row["message_id"]:
            notes.append(Change("message", UPDATED, before["message_id"], before["session_id"]))
        return notes
    return [Change(kind, action, str(row["id"]))]


async def _dependents(
    db: AsyncConnection, app_id: UUID, kind: str, changed: list[dict[str, Any]], stored: dict[Any, Any]
) -> list[Change]:
    """The events of objects that show a written row's fields: a session shows its consumer's name and email,
    a message its tags' names and colors, a rating its message's text; and the messages that got a tag."""
    if kind == "message_tag":
        return await messages_changed(db, app_id, [row["message_id"] for row in changed])
    if kind == "consumer":
        shown = [row["id"] for row in changed
                 if row["id"] in stored and _differs(row, stored[row["id"]], ("name", "email"))]
        return await rows_showing(db, app_id, "consumer", shown)
    if kind == "tag":
        shown = [row["id"] for row in changed
                 if row["id"] in stored and _differs(row, stored[row["id"]], ("name", "color"))]
        return await rows_showing(db, app_id, "tag", shown)
    if kind == "message":
        shown = [row["id"] for row in changed if row["id"] in stored and _differs(row, stored[row["id"]], ("content",))]
        return await rows_showing(db, app_id, "message", shown)
    return []


def _differs(row: dict[str, Any], before: Any, names: tuple[str, ...]) -> bool:
    return any(row[name] != before[name] for name in names)


