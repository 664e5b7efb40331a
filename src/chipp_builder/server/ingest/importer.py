"""The JSON Lines bulk import (SPEC section 10): validate every line, resolve references, upsert in one
transaction, then recompute the derived counts."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import JSON, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chipp_builder.schemas.rules import has_control_characters
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
from chipp_builder.server.params import SOURCES, parse_timestamp
from chipp_builder.server.resources.apps.queries import get_app

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
ROLES = ("user", "assistant", "system", "tool")
KNOWLEDGE_STATUSES = ("pending", "processing", "completed", "failed", "deleting")
KNOWLEDGE_TYPES = (
    "file",
    "url",
    "google_drive",
    "notion",
    "text",
    "qa",
    "sitemap",
    "youtube",
    "confluence",
)
MEMORY_TYPES = ("preference", "background", "fact", "insight", "topic", "query")
MEMORY_LAYERS = ("episodic", "fact")
DEFAULT_SOURCE = "API"  # the same default as POST /conversations/log
DEFAULT_MEMORY_TYPE = "fact"
DEFAULT_MEMORY_LAYER = "fact"

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_COLOR_RE = re.compile(r"#[0-9a-fA-F]{6}")
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_WRITE_CHUNK = 2000  # rows per executemany: big enough to amortise round trips, small enough for memory
_LOOKUP_CHUNK = 1000  # ids per IN list, well under SQLite's and asyncpg's bound-parameter limits
_PROGRESS_EVERY = 1000  # lines between progress callbacks


class LineError(ValueError):
    """A line that cannot be imported; the message is the reason the report gives.

    `kind` and `key` name the record when the line got that far, so references to it can point at the line.
    """

    def __init__(self, reason: str, kind: str | None = None, key: Any = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.key = key


@dataclass(slots=True)
class Record:
    """One parsed line: its record type, identity, the row to write (without app_id) and its line number."""

    kind: str
    key: Any
    row: dict[str, Any]
    line: int = 0


@dataclass
class ImportReport:
    """What an import did: lines read, rows written per record type, and every bad line with its reason."""

    lines: int = 0
    written: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every line was valid (with skip_invalid, the good lines are written either way)."""
        return not self.errors


# ---------------------------------------------------------------------------------------------------------
# Line validation: pure functions, no I/O.


class _Fields:
    """Typed access to one record's JSON fields; each getter raises LineError naming the field."""

    def __init__(self, kind: str, data: dict[str, Any]) -> None:
        self.kind = kind
        self.data = data

    def _fail(self, reason: str) -> LineError:
        return LineError(f"{self.kind}: {reason}")

    def _get(self, name: str, required: bool) -> Any:
        # A null is the same as an absent field: automation tools write nulls for empty values.
        value = self.data.get(name)
        if value is None and required:
            raise self._fail(f"{name} is required")
        return value

    def text(
        self,
        name: str,
        *,
        required: bool = False,
        max_len: int | None = None,
        min_len: int = 0,
        allow_newlines: bool = False,
        default: str | None = None,
    ) -> str | None:
        value = self._get(name, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._fail(f"{name} must be a string")
        if has_control_characters(value, allow_newlines=allow_newlines):
            raise self._fail(f"{name} must not contain control characters")
        if len(value) < min_len or (max_len is not None and len(value) > max_len):
            bound = f"{min_len} to {max_len}" if max_len is not None else f"at least {min_len}"
            raise self._fail(f"{name} must be {bound} characters")
        return value

    def string_id(self, name: str, *, required: bool = True) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        # The rule POST /conversations/log applies to ids (schemas/rules.py), so whatever it accepted re-imports.
        if not isinstance(value, str) or not (1 <= len(value) <= 64) or has_control_characters(value, False):
            raise self._fail(f"{name} must be a string of 1 to 64 characters without control characters")
        return value

    def uuid(self, name: str, *, required: bool = True) -> UUID | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str) or _UUID_RE.fullmatch(value) is None:
            raise self._fail(f"{name} must be a UUID")
        return UUID(value)

    def timestamp(self, name: str, *, required: bool = False) -> datetime | None:
        value = self._get(name, required)
        if value is None:
            return None
        try:
            if not isinstance(value, str) or has_control_characters(value):
                raise ValueError
            return parse_timestamp(value)
        except (ValueError, OverflowError):
            raise self._fail(f"{name} must be an RFC 3339 timestamp such as 2025-06-01T00:00:00Z") from None

    def boolean(self, name: str) -> bool:
        value = self._get(name, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._fail(f"{name} must be true or false")
        return value

    def integer(
        self, name: str, *, default: int | None = None, minimum: int = 0, maximum: int = _INT32
    ) -> int | None:
        value = self._get(name, False)
        if value is None:
            return default
        # bool is an int in Python, but `true` is not a count.
        if not isinstance(value, int) or isinstance(value, bool) or not (minimum <= value <= maximum):
            raise self._fail(f"{name} must be an integer between {minimum} and {maximum}")
        return value

    def number(self, name: str, *, default: float, minimum: float, maximum: float) -> float:
        value = self._get(name, False)
        if value is None:
            return default
        if not isinstance(value, int | float) or isinstance(value, bool) or not (minimum <= value <= maximum):
            raise self._fail(f"{name} must be a number between {minimum:g} and {maximum:g}")
        return float(value)

    def enum(self, name: str, values: tuple[str, ...], *, default: str | None = None) -> str:
        value = self._get(name, default is None)
        if value is None:
            assert default is not None
            return default
        if value not in values:
            raise self._fail(f"{name} must be one of {', '.join(values)}")
        return value

    def tool_list(self, name: str, second: str) -> list[dict[str, Any]] | None:
        """tool_calls ({"tool_name", "status"}) or tool_results ({"tool_name", "result"}) as in the API."""
        value = self._get(name, False)
        if value is None:
            return None
        shape = f'{name} must be an array of {{"tool_name", "{second}"}} objects'
        if not isinstance(value, list):
            raise self._fail(shape)
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("tool_name"), str) or second not in item:
                raise self._fail(shape)
            if second == "status" and not isinstance(item["status"], str):
                raise self._fail(shape)
            if _json_has_control_characters(item):
                raise self._fail(f"{name} must not contain control characters")
        return value


def _json_has_control_characters(value: Any) -> bool:
    """Whether any string (key or value) in a JSON value holds a control character other than tab/newline."""
    if isinstance(value, str):
        return has_control_characters(value, allow_newlines=True)
    if isinstance(value, list):
        return any(_json_has_control_characters(item) for item in value)
    if isinstance(value, dict):
        return any(
            has_control_characters(key, allow_newlines=True) or _json_has_control_characters(item)
            for key, item in value.items()
        )
    return False


def _fold(text: str | None) -> str:
    return "" if text is None else text.casefold()


def _consumer(f: _Fields) -> Record:
    created_at = f.timestamp("created_at", required=True)
    row: dict[str, Any] = {
        "id": f.uuid("id"),
        "identifier": f.text("identifier", required=True, min_len=1, max_len=320),
        "email": f.text("email", max_len=320),
        "name": f.text("name", max_len=200),
        "picture_url": f.text("picture_url"),
        "email_verified": f.boolean("email_verified"),
        "credits": f.integer("credits", default=0, minimum=-_INT64 - 1, maximum=_INT64),
        "subscription_active": f.boolean("subscription_active"),
        "mode": f.text("mode", min_len=1, max_len=64, default="default"),
        "is_anonymous": f.boolean("is_anonymous"),
        "created_at": created_at,
        "updated_at": f.timestamp("updated_at") or created_at,
    }
    row["search_folded"] = "\x1f".join(_fold(row[k]) for k in ("name", "email", "identifier"))
    return Record("consumer", row["id"], row)


def _session(f: _Fields) -> Record:
    started_at = f.timestamp("started_at", required=True)
    assert started_at is not None
    ended_at = f.timestamp("ended_at")
    title = f.text("title")
    row = {
        "id": f.uuid("id"),
        "consumer_id": f.uuid("consumer_id", required=False),
        "title": title,
        "title_folded": None if title is None else title.casefold(),
        "source": f.enum("source", SOURCES, default=DEFAULT_SOURCE),
        "mode": f.text("mode", min_len=1, max_len=64, default="default"),
        "is_bookmarked": f.boolean("is_bookmarked"),
        "is_multiplayer": f.boolean("is_multiplayer"),
        # Derived: placeholders that recompute_derived replaces after the messages are written.
        "message_count": 0,
        "started_at": started_at,
        "ended_at": ended_at,
        "last_activity_at": max(started_at, ended_at) if ended_at else started_at,
    }
    return Record("session", row["id"], row)


def _message(f: _Fields) -> Record:
    row = {
        "id": f.string_id("id"),
        "session_id": f.uuid("session_id"),
        "role": f.enum("role", ROLES),
        "content": f.text("content", required=True, allow_newlines=True),
        "model": f.text("model", max_len=200),
        "token_count": f.integer("token_count"),
        "latency_ms": f.integer("latency_ms"),
        "audio_url": f.text("audio_url"),
        "audio_duration_ms": f.integer("audio_duration_ms"),
        "tool_calls": f.tool_list("tool_calls", "status"),
        "tool_results": f.tool_list("tool_results", "result"),
        "created_at": f.timestamp("created_at", required=True),
    }
    return Record("message", row["id"], row)


def _tag(f: _Fields) -> Record:
    color = f.text("color", required=True)
    if _COLOR_RE.fullmatch(color or "") is None:
        raise LineError("tag: color must be a hex color like #ef4444")
    row = {
        "id": f.uuid("id"),
        "name": f.text("name", required=True, min_len=1, max_len=200),
        "color": color,
        "usage_count": 0,  # derived
        "created_at": f.timestamp("created_at", required=True),
    }
    return Record("tag", row["id"], row)


def _message_tag(f: _Fields) -> Record:
    row = {"message_id": f.string_id("message_id"), "tag_id": f.uuid("tag_id")}
    return Record("message_tag", (row["message_id"], row["tag_id"]), row)


def _feedback(f: _Fields) -> Record:
    rating = f._get("rating", True)
    if not isinstance(rating, int) or isinstance(rating, bool) or rating not in (-1, 0, 1):
        raise LineError("feedback: rating must be one of -1, 0, 1")
    row = {
        "id": f.string_id("id"),
        "session_id": f.uuid("session_id"),
        "message_id": f.string_id("message_id"),
        "consumer_id": f.uuid("consumer_id", required=False),
        "rating": rating,
        "created_at": f.timestamp("created_at", required=True),
    }
    return Record("feedback", row["id"], row)


def _knowledge_source(f: _Fields) -> Record:
    created_at = f.timestamp("created_at", required=True)
    row = {
        "id": f.string_id("id"),
        "name": f.text("name", required=True, min_len=1),
        # The record's own `type` is the record type, so the source's type travels as `source_type`.
        "type": f.enum("source_type", KNOWLEDGE_TYPES),
        "status": f.enum("status", KNOWLEDGE_STATUSES),
        "url": f.text("url"),
        "error_message": f.text("error_message"),
        "chunk_count": f.integer("chunk_count", default=0),
        "file_size_bytes": f.integer("file_size_bytes", maximum=_INT64),
        "refresh_interval_hours": f.integer("refresh_interval_hours", minimum=1),
        "last_refreshed_at": f.timestamp("last_refreshed_at"),
        "created_at": created_at,
        "updated_at": f.timestamp("updated_at") or created_at,
    }
    return Record("knowledge_source", row["id"], row)


def _memory(f: _Fields) -> Record:
    created_at = f.timestamp("created_at", required=True)
    row = {
        "id": f.string_id("id"),
        "consumer_id": f.uuid("consumer_id", required=False),
        "external_user_id": f.text("external_user_id", max_len=200),
        "content": f.text("content", required=True, min_len=1),
        "memory_type": f.enum("memory_type", MEMORY_TYPES, default=DEFAULT_MEMORY_TYPE),
        "memory_layer": f.enum("memory_layer", MEMORY_LAYERS, default=DEFAULT_MEMORY_LAYER),
        "confidence": f.number("confidence", default=0.0, minimum=0.0, maximum=1.0),
        "source_message_id": f.string_id("source_message_id", required=False),
        "session_id": f.uuid("session_id", required=False),
        "created_at": created_at,
        "updated_at": f.timestamp("updated_at") or created_at,
    }
    return Record("memory", row["id"], row)


_PARSERS: dict[str, Callable[[_Fields], Record]] = {
    "consumer": _consumer,
    "session": _session,
    "message": _message,
    "feedback": _feedback,
    "tag": _tag,
    "message_tag": _message_tag,
    "knowledge_source": _knowledge_source,
    "memory": _memory,
}
RECORD_TYPES = tuple(_PARSERS)


def parse_line(text: str | bytes) -> Record:
    """Validate one JSON Lines record into a Record (line number 0); LineError with the reason otherwise.

    Unknown fields and derived fields (message_count, usage_count, a session's consumer, a message's tags and
    feedback, message_preview, last_activity_at) are ignored.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise LineError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise LineError("a line must be a JSON object")
    kind = data.get("type")
    if kind is None:
        raise LineError("type is required")
    if not isinstance(kind, str) or kind not in _PARSERS:
        shown = kind if isinstance(kind, str) and len(kind) <= 40 and kind.isprintable() else "?"
        raise LineError(f"unknown record type {shown!r}: use one of {', '.join(RECORD_TYPES)}")
    try:
        return _PARSERS[kind](_Fields(kind, data))
    except LineError as exc:
        raise LineError(str(exc), kind, _identity(kind, data.get("id"))) from None


def _identity(kind: str, raw_id: Any) -> Any:
    """The id a bad record would have had, in the form good records are keyed by; None when there is none."""
    if kind == "message_tag" or not isinstance(raw_id, str):
        return None
    if kind in ("consumer", "session", "tag"):
        return UUID(raw_id) if _UUID_RE.fullmatch(raw_id) else None
    return raw_id


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
