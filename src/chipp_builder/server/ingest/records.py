"""Import lines into records (SPEC section 10): parse one JSON Lines record, validate each field, and key it
by its id; the import itself (resolving references, writing) is importer.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from chipp_builder.schemas.rules import has_control_characters
from chipp_builder.schemas.sessions import tool_result_text
from chipp_builder.server.params import SOURCES, parse_timestamp

# What each record type refers to, as (record type, field), in the order references are checked: a record with
# several bad references is reported for the first. Each type refers to another type at most once.
REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "session": (("consumer", "consumer_id"),),
    "message": (("session", "session_id"),),
    "message_tag": (("message", "message_id"), ("tag", "tag_id")),
    "feedback": (("message", "message_id"), ("session", "session_id"), ("consumer", "consumer_id")),
    "memory": (("consumer", "consumer_id"), ("session", "session_id"), ("message", "source_message_id")),
}
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
    """What an import did: lines read; per record type the rows inserted, the stored rows it changed (updated)
    and those it found already as the file has them (unchanged, not written); every bad line with its reason."""

    lines: int = 0
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every line was valid (with skip_invalid, the good lines are written either way)."""
        return not self.errors

    @property
    def written(self) -> dict[str, int]:
        """Rows written per record type: inserted plus updated."""
        kinds = {**self.inserted, **self.updated}
        return {kind: self.inserted.get(kind, 0) + self.updated.get(kind, 0) for kind in kinds}


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
        if isinstance(value, str) and value in values:
            return value
        raise self._fail(f"{name} must be one of {', '.join(values)}")

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
        if second == "result":
            # Stored as the API gives it: a structured result as its JSON text (so a re-export has strings).
            return [{**item, "result": tool_result_text(item["result"])} for item in value]
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
    # Without its line end, so that orjson's position is a column of this line, never "line 2 column 1".
    stripped = text.rstrip(b"\r\n") if isinstance(text, bytes) else text.rstrip("\r\n")
    try:
        data = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        raise LineError(f"not valid JSON: {_json_reason(exc)}") from None
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


def _json_reason(exc: orjson.JSONDecodeError) -> str:
    """orjson's complaint in plain words, with the column (1-based, in characters) where the line goes wrong."""
    message, doc, pos = exc.msg, exc.doc, exc.pos
    column = pos + 1
    if "not valid UTF-8" in message:
        return "the line is not valid UTF-8 text"
    if message == "input data is empty":
        return "the line holds no JSON value"
    if message == "unexpected end of data":
        return "the line ends before the JSON value does (a missing closing quote, bracket or brace?)"
    if message == "trailing comma is not allowed":
        return f"a comma before a closing bracket or brace at column {column}"
    if message == "unexpected content after document":
        return f"more text after the JSON value at column {column} (one record a line)"
    if message == "unexpected control character in string":
        return f"a control character inside a string at column {column} (write a newline as \\n, a tab as \\t)"
    found = doc[pos] if 0 <= pos < len(doc) else ""
    shown = repr(found) if found.isprintable() else f"U+{ord(found):04X}" if found else "nothing"
    hint = (
        " (JSON strings and keys need double quotes)" if found == "'"
        else " (a line must be one JSON object, {...})" if pos == 0
        else ""
    )
    return f"unexpected {shown} at column {column}{hint}"


def _identity(kind: str, raw_id: Any) -> Any:
    """The id a bad record would have had, in the form good records are keyed by; None when there is none."""
    if kind == "message_tag" or not isinstance(raw_id, str):
        return None
    if kind in ("consumer", "session", "tag"):
        return UUID(raw_id) if _UUID_RE.fullmatch(raw_id) else None
    return raw_id
