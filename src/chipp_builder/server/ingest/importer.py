"""The JSON Lines bulk import (SPEC section 10): validate every line (records.py), resolve references, upsert in
one transaction, then recompute the derived counts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
from chipp_builder.server.ingest.derived import after_upsert, before_upsert, recompute_derived
from chipp_builder.server.ingest.records import (
    RECORD_TYPES,
    WRITE_ORDER,
    ImportReport,
    LineError,
    Record,
    parse_line,
)
from chipp_builder.server.resources.apps.queries import get_app

_WRITE_CHUNK = 2000  # rows per executemany: big enough to amortise round trips, small enough for memory
_LOOKUP_CHUNK = 1000  # ids per IN list, well under SQLite's and asyncpg's bound-parameter limits
_PROGRESS_EVERY = 1000  # lines between progress callbacks


# ---------------------------------------------------------------------------------------------------------
# Collecting lines, resolving references, writing.


class _Collector:
    """Parses lines one at a time, keeping the good records by type and id and the reasons for bad lines."""

    def __init__(self) -> None:
        self.lines = 0
        self.records: dict[str, dict[Any, Record]] = {kind: {} for kind in RECORD_TYPES}
        self.errors: dict[int, str] = {}
        # Ids of bad records, with their line, so that a reference to one can say where to look.
        self.dropped: dict[str, dict[Any, int]] = {kind: {} for kind in RECORD_TYPES}

    def add(self, line_no: int, text: str | bytes) -> None:
        self.lines = line_no
        if not text.strip():
            return  # a blank line (often the last one) holds no record
        try:
            record = parse_line(text)
        except LineError as exc:
            self.errors[line_no] = str(exc)
            if exc.kind is not None and exc.key is not None:
                self.dropped[exc.kind].setdefault(exc.key, line_no)
            return
        record.line = line_no
        seen = self.records[record.kind]
        first = seen.get(record.key)
        if first is not None:
            reason = f"{record.kind}: duplicate id {_show(record.key)} (first on line {first.line})"
            self.errors[line_no] = reason
            return
        seen[record.key] = record


def _show(key: Any) -> str:
    if isinstance(key, tuple):
        return "(" + ", ".join(str(part) for part in key) + ")"
    return str(key)


@dataclass
class _Existing:
    """What the database already holds for the ids the file mentions."""

    owners: dict[str, dict[UUID, UUID]]  # consumer/session/tag id -> owning app id
    message_sessions: dict[str, UUID]  # this app's existing message id -> its session id


async def _lookup(db: AsyncConnection, app_id: UUID, records: dict[str, dict[Any, Record]]) -> _Existing:
    """Fetch owners of every UUID and the sessions of every message id the file defines or references."""
    wanted: dict[str, set[Any]] = {"consumer": set(), "session": set(), "tag": set(), "message": set()}
    for kind in wanted:
        wanted[kind].update(records[kind])
    for rec in records["session"].values():
        wanted["consumer"].add(rec.row["consumer_id"])
    for rec in records["message"].values():
        wanted["session"].add(rec.row["session_id"])
    for rec in records["message_tag"].values():
        wanted["message"].add(rec.row["message_id"])
        wanted["tag"].add(rec.row["tag_id"])
    for rec in records["feedback"].values():
        wanted["message"].add(rec.row["message_id"])
        wanted["session"].add(rec.row["session_id"])
        wanted["consumer"].add(rec.row["consumer_id"])
    for rec in records["memory"].values():
        wanted["consumer"].add(rec.row["consumer_id"])
        wanted["session"].add(rec.row["session_id"])
        wanted["message"].add(rec.row["source_message_id"])
    for ids in wanted.values():
        ids.discard(None)

    owners: dict[str, dict[UUID, UUID]] = {}
    for kind, table in (("consumer", consumer), ("session", session), ("tag", tag)):
        owners[kind] = {}
        for chunk in _chunks(list(wanted[kind]), _LOOKUP_CHUNK):
            rows = await db.execute(select(table.c.id, table.c.app_id).where(table.c.id.in_(chunk)))
            owners[kind].update({row.id: row.app_id for row in rows})
    message_sessions: dict[str, UUID] = {}
    for chunk in _chunks(list(wanted["message"]), _LOOKUP_CHUNK):
        query = select(message.c.id, message.c.session_id).where(
            message.c.app_id == app_id, message.c.id.in_(chunk)
        )
        rows = await db.execute(query)
        message_sessions.update({row.id: row.session_id for row in rows})
    return _Existing(owners, message_sessions)


class _Resolver:
    """Checks references in write order, so a record that points at a bad record is bad too."""

    def __init__(self, app_id: UUID, collector: _Collector, existing: _Existing) -> None:
        self.app_id = app_id
        self.records = collector.records
        self.errors = collector.errors
        self.existing = existing
        self.dropped = collector.dropped

    def _bad(self, record: Record, reason: str) -> None:
        self.errors[record.line] = f"{record.kind}: {reason}"
        del self.records[record.kind][record.key]
        self.dropped[record.kind].setdefault(record.key, record.line)

    def _in_app(self, kind: str, key: Any) -> bool:
        if kind == "message":
            return key in self.existing.message_sessions
        return self.existing.owners[kind].get(key) == self.app_id

    def _missing(self, kind: str, field_name: str, key: Any) -> str | None:
        """None when the reference resolves to a good record of the file or a row of the app; else why not."""
        if key is None or key in self.records[kind] or self._in_app(kind, key):
            return None
        if key in self.dropped[kind]:
            return f"{field_name} {key} refers to the invalid line {self.dropped[kind][key]}"
        return f"{field_name} {key} does not exist in the file or the app"

    def run(self) -> None:
        for kind in ("consumer", "session", "tag"):
            for record in list(self.records[kind].values()):
                owner = self.existing.owners[kind].get(record.key)
                if owner is not None and owner != self.app_id:
                    # Say only that the id is taken: never which app holds it or what it is.
                    self._bad(record, f"id {record.key} is not available: it belongs to another app")
        self._check("session", [("consumer", "consumer_id")])
        self._check("message", [("session", "session_id")])
        self._check("message_tag", [("message", "message_id"), ("tag", "tag_id")])
        self._check(
            "feedback", [("message", "message_id"), ("session", "session_id"), ("consumer", "consumer_id")]
        )
        for record in list(self.records["feedback"].values()):
            message_id, session_id = record.row["message_id"], record.row["session_id"]
            if self._session_of(message_id) != session_id:
                self._bad(record, f"message {message_id} is not in session {session_id}")
        self._check(
            "memory",
            [("consumer", "consumer_id"), ("session", "session_id"), ("message", "source_message_id")],
        )

    def _check(self, kind: str, references: list[tuple[str, str]]) -> None:
        for record in list(self.records[kind].values()):
            for target, field_name in references:
                reason = self._missing(target, field_name, record.row[field_name])
                if reason is not None:
                    self._bad(record, reason)
                    break

    def _session_of(self, message_id: str) -> UUID | None:
        """The session a message will be in after the import: the file's line wins over the stored row."""
        record = self.records["message"].get(message_id)
        if record is not None:
            return record.row["session_id"]
        return self.existing.message_sessions.get(message_id)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


# The counted resources (derived.COUNTED) by their record type.
_COUNTED_KINDS = {
    "consumers": "consumer",
    "knowledge_sources": "knowledge_source",
    "feedback": "feedback",
    "memories": "memory",
}


async def _write(
    db: AsyncConnection, app_id: UUID, collector: _Collector, existing: _Existing
) -> dict[str, int]:
    """Upsert every good record in dependency order, then recompute the touched sessions' and tags' counts."""
    written: dict[str, int] = {}
    dialect = db.dialect.name
    by_kind = collector.records
    # Counters and day rollups: the upserts may replace rows, so note what they replace first (derived.py).
    pending = await before_upsert(
        db,
        app_id,
        {
            "session": list(by_kind["session"]),
            "message": list(by_kind["message"]),
            **{resource: list(by_kind[kind]) for resource, kind in _COUNTED_KINDS.items()},
        },
        [r.row["started_at"] for r in by_kind["session"].values()]
        + [r.row["created_at"] for r in by_kind["message"].values()],
    )
    for kind in WRITE_ORDER:
        records = collector.records[kind]
        written[kind] = len(records)
        if not records:
            continue
        table, keys, keep = _TABLES[kind]
        stmt = upsert_statement(dialect, table, keys, keep)
        for chunk in _chunks(list(records.values()), _WRITE_CHUNK):
            await db.execute(stmt, [{**record.row, "app_id": app_id} for record in chunk])
    touched: set[UUID] = set(collector.records["session"])
    for record in collector.records["message"].values():
        touched.add(record.row["session_id"])
        # A message that moves to another session leaves its old one a message short.
        old = existing.message_sessions.get(record.key)
        if old is not None:
            touched.add(old)
    await recompute_derived(db, app_id, touched)
    await after_upsert(db, app_id, pending)
    return written


async def _run(
    engine: AsyncEngine,
    app_id: UUID,
    numbered_lines: Iterable[tuple[int, str | bytes, int]],
    skip_invalid: bool,
    progress: Callable[[int], None] | None,
) -> ImportReport:
    """Parse every (line number, text, progress position) item, resolve, and write unless a line is bad."""
    collector = _Collector()
    position = 0
    for line_no, text, position in numbered_lines:
        collector.add(line_no, text)
        if progress is not None and line_no % _PROGRESS_EVERY == 0:
            progress(position)
    if progress is not None:
        progress(position)

    report = ImportReport(lines=collector.lines, written={kind: 0 for kind in WRITE_ORDER})
    # One transaction: the lookups, every upsert and the recount commit together or not at all. The file is
    # parsed before it starts, so SQLite's write lock (taken first, so that what the lookups find stays true
    # until the commit) is held only for the lookups and the writes.
    async with engine.begin() as db:
        await begin_immediate(db)
        await get_app(db, app_id)
        existing = await _lookup(db, app_id, collector.records)
        _Resolver(app_id, collector, existing).run()
        if not collector.errors or skip_invalid:
            report.written = await _write(db, app_id, collector, existing)
    report.errors = sorted(collector.errors.items())
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
