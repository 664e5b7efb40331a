"""The JSON Lines bulk import (SPEC section 10): validate every line (records.py) into a staging database
(staging.py), resolve references there, upsert in one transaction, then recompute the derived counts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
from chipp_builder.server.db.writelock import begin_immediate
from chipp_builder.server.ingest.derived import (
    PendingUpsert,
    after_upsert,
    before_upsert,
    consumers_of_sessions,
    recompute_derived,
)
from chipp_builder.server.ingest.records import WRITE_ORDER, ImportReport
from chipp_builder.server.ingest.staging import Staging, staging
from chipp_builder.server.resources.apps.queries import get_app

_WRITE_CHUNK = 2000  # rows per executemany: big enough to amortise round trips, small enough for memory
_LOOKUP_CHUNK = 1000  # ids per IN list, well under SQLite's and asyncpg's bound-parameter limits
_PROGRESS_EVERY = 1000  # lines between progress callbacks


# ---------------------------------------------------------------------------------------------------------
# Looking up what the database holds, writing.

_OWNED = {"consumer": consumer, "session": session, "tag": tag}  # keyed by a UUID alone, across apps


async def _lookup(db: AsyncConnection, app_id: UUID, spool: Staging) -> None:
    """Copy into staging the owners of every UUID, the consumers of the app's sessions and the sessions of every
    message id the file defines or references, a chunk of ids at a time."""
    for kind, table in _OWNED.items():
        for chunk in spool.wanted(kind, _LOOKUP_CHUNK):
            query = select(table.c.id, table.c.app_id).where(table.c.id.in_([UUID(value) for value in chunk]))
            rows = await db.execute(query)
            spool.add_existing(kind, [(str(row.id), str(row.app_id), row.app_id == app_id) for row in rows])
    for chunk in spool.wanted("session", _LOOKUP_CHUNK):
        # A rating without a consumer_id takes its session's consumer (staging.py).
        query = select(session.c.id, session.c.consumer_id).where(
            session.c.app_id == app_id, session.c.id.in_([UUID(value) for value in chunk])
        )
        stored = await db.execute(query)
        spool.add_session_consumers(
            [(str(row.id), None if row.consumer_id is None else str(row.consumer_id)) for row in stored]
        )
    for chunk in spool.wanted("message", _LOOKUP_CHUNK):
        query = select(message.c.id, message.c.session_id).where(message.c.app_id == app_id, message.c.id.in_(chunk))
        rows = await db.execute(query)
        spool.add_existing("message", [(row.id, str(row.session_id), True) for row in rows])


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


async def _before_writing(db: AsyncConnection, app_id: UUID, spool: Staging) -> PendingUpsert:
    """Before the first write, what the upserts replace (derived.py): the days and counts they change, and, in
    staging, the consumers the replaced sessions name; a chunk of staged rows at a time."""
    pending = PendingUpsert()
    for kind, tracked in _TRACKED.items():
        day_of = _DAY_OF.get(kind)
        for rows in spool.rows(kind, _WRITE_CHUNK):
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


async def _write(db: AsyncConnection, app_id: UUID, spool: Staging, report: ImportReport) -> None:
    """Upsert every good record in dependency order, chunk by chunk, then recompute the derived values.

    Each chunk is compared with the rows stored under its keys first, column by column over what the upsert
    would write: a new key counts as inserted, a different row as updated, an equal one as unchanged and is
    not written at all (rewriting it would store the same values).
    """
    pending = await _before_writing(db, app_id, spool)
    for kind in WRITE_ORDER:
        table, keys, keep = _TABLES[kind]
        stmt = upsert_statement(db.dialect.name, table, keys, keep)
        for rows in spool.rows(kind, _WRITE_CHUNK):
            stored = await _stored(db, app_id, kind, rows)
            changed = []
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
            if changed:
                await db.execute(stmt, changed)
    await recompute_derived(db, app_id, spool.touched_sessions())
    # In one global order, as concurrent writers lock consumer rows alike (counters.refresh_active_consumers).
    for chunk in spool.touched_consumers(_LOOKUP_CHUNK):
        await refresh_active_consumers(db, app_id, chunk)
    await after_upsert(db, app_id, pending)


async def _run(
    engine: AsyncEngine,
    app_id: UUID,
    numbered_lines: Iterable[tuple[int, str | bytes, int]],
    skip_invalid: bool,
    progress: Callable[[int], None] | None,
) -> ImportReport:
    """Parse every (line number, text, progress position) item, resolve, and write unless a line is bad."""
    with staging() as spool:
        position = 0
        for line_no, text, position in numbered_lines:
            spool.add(line_no, text)
            if progress is not None and line_no % _PROGRESS_EVERY == 0:
                progress(position)
        spool.flush()
        if progress is not None:
            progress(position)

        report = ImportReport(
            lines=spool.lines,
            inserted=dict.fromkeys(WRITE_ORDER, 0),
            updated=dict.fromkeys(WRITE_ORDER, 0),
            unchanged=dict.fromkeys(WRITE_ORDER, 0),
        )
        # One transaction: the lookups, every upsert and the recount commit together or not at all. The file is
        # parsed before it starts, so SQLite's write lock (taken first, so that what the lookups find stays true
        # until the commit) is held only for the lookups, the resolution and the writes.
        async with engine.begin() as db:
            await begin_immediate(db)
            await get_app(db, app_id)
            await _lookup(db, app_id, spool)
            spool.resolve()
            if not spool.has_errors() or skip_invalid:
                await _write(db, app_id, spool, report)
        report.errors = spool.errors()
    return report


async def import_lines(
    engine: AsyncEngine,
    app_id: UUID,
    lines: Iterable[str | bytes],
    *,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import JSON Lines given as strings (one record each); progress gets the number of lines read so far."""
    numbered = ((line_no, text, line_no) for line_no, text in enumerate(lines, start=1))
    return await _run(engine, app_id, numbered, skip_invalid, progress)


def _file_lines(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """(line number, raw bytes, bytes read so far) for each line of a file, streamed."""
    # Bytes, not text: orjson validates UTF-8 itself, so a bad byte is one bad line rather than a crash.
    done = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            done += len(raw)
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte order mark, as some editors write
            yield line_no, raw, done


async def import_file(
    engine: AsyncEngine,
    app_id: UUID,
    path: Path,
    *,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a JSON Lines file into an app (all or nothing unless skip_invalid).

    The file is read line by line; progress, when given, is called with the number of BYTES read so far
    (cumulative, so a progress bar's total is the file size), during reading and validation, which is most of
    the work; writing follows in one transaction. Raises NotFound when the app does not exist.
    """
    return await _run(engine, app_id, _file_lines(Path(path)), skip_invalid, progress)
