"""How API objects become export rows: flat typed columns (CSV, Parquet), API objects (JSON Lines), and the
import records of SPEC section 10 (`export all`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

Kind = Literal["string", "int", "bool", "float", "timestamp"]
Row = dict[str, Any]

# Tag names in one CSV cell: "; " rather than "," so a spreadsheet's own comma splitting cannot cut a list.
TAG_SEPARATOR = "; "


@dataclass(frozen=True)
class Column:
    """One flat column: its name, its type, and how to read it from the API object's JSON form."""

    name: str
    kind: Kind
    get: Callable[[Row], Any]


def _field(name: str) -> Callable[[Row], Any]:
    return lambda obj: obj.get(name)


def _nested(outer: str, inner: str) -> Callable[[Row], Any]:
    return lambda obj: (obj.get(outer) or {}).get(inner)


def _json_text(name: str) -> Callable[[Row], Any]:
    """A nested value as compact JSON text (tool calls and results); None stays None."""

    def get(obj: Row) -> Any:
        value = obj.get(name)
        return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    return get


def _tags(part: str) -> Callable[[Row], Any]:
    # No tags is an absent value (an empty CSV cell, a Parquet null), like every other absent field.
    return lambda obj: TAG_SEPARATOR.join(str(tag[part]) for tag in obj["tags"]) if obj.get("tags") else None


def _col(name: str, kind: Kind = "string", get: Callable[[Row], Any] | None = None) -> Column:
    return Column(name, kind, get or _field(name))


COLUMNS: dict[str, tuple[Column, ...]] = {
    "sessions": (
        _col("id"), _col("consumer_id"),
        _col("consumer_email", get=_nested("consumer", "email")),
        _col("consumer_name", get=_nested("consumer", "name")),
        _col("title"), _col("source"), _col("mode"), _col("is_bookmarked", "bool"), _col("is_multiplayer", "bool"),
        _col("message_count", "int"), _col("started_at", "timestamp"), _col("ended_at", "timestamp"),
        _col("last_activity_at", "timestamp"),
    ),
    "messages": (
        _col("id"), _col("session_id"), _col("role"), _col("content"), _col("model"), _col("token_count", "int"),
        _col("latency_ms", "int"), _col("audio_url"), _col("audio_duration_ms", "int"),
        _col("tags", get=_tags("name")), _col("tag_ids", get=_tags("id")),
        _col("feedback_id", get=_nested("feedback", "id")),
        _col("feedback_rating", "int", _nested("feedback", "rating")),
        _col("feedback_consumer_id", get=_nested("feedback", "consumer_id")),
        _col("feedback_created_at", "timestamp", _nested("feedback", "created_at")),
        _col("tool_calls", get=_json_text("tool_calls")), _col("tool_results", get=_json_text("tool_results")),
        _col("created_at", "timestamp"),
    ),
    "consumers": (
        _col("id"), _col("identifier"), _col("email"), _col("name"), _col("picture_url"),
        _col("email_verified", "bool"), _col("credits", "int"), _col("subscription_active", "bool"), _col("mode"),
        _col("is_anonymous", "bool"), _col("created_at", "timestamp"), _col("updated_at", "timestamp"),
    ),
    "feedback": (
        _col("id"), _col("session_id"), _col("message_id"), _col("consumer_id"), _col("rating", "int"),
        _col("message_preview"), _col("created_at", "timestamp"),
    ),
    "memories": (
        _col("id"), _col("consumer_id"), _col("external_user_id"), _col("content"), _col("memory_type"),
        _col("memory_layer"), _col("confidence", "float"), _col("source_message_id"), _col("session_id"),
        _col("created_at", "timestamp"), _col("updated_at", "timestamp"),
    ),
    "knowledge-sources": (
        _col("id"), _col("name"), _col("type"), _col("status"), _col("url"), _col("error_message"),
        _col("chunk_count", "int"), _col("file_size_bytes", "int"), _col("refresh_interval_hours", "int"),
        _col("last_refreshed_at", "timestamp"), _col("created_at", "timestamp"), _col("updated_at", "timestamp"),
    ),
    "tags": (
        _col("id"), _col("name"), _col("color"), _col("usage_count", "int"), _col("created_at", "timestamp"),
    ),
}


def api_object(model: BaseModel) -> Row:
    """An API object as the API writes it: JSON field names, timestamps as UTC strings ending in Z."""
    return model.model_dump(mode="json")


def flat_row(resource: str, model: BaseModel | Row) -> Row:
    """One flat row of a resource's columns: nested objects spread into columns, lists joined, tool calls
    and results as JSON text; values stay typed (timestamps as the API's strings, parsed by the writers)."""
    obj = api_object(model) if isinstance(model, BaseModel) else model
    return {column.name: column.get(obj) for column in COLUMNS[resource]}


# Fields the API derives from other records: the importer ignores them, so `export all` leaves them out.
_DERIVED = {
    "session": ("consumer", "message_count", "last_activity_at"),
    "message": ("tags", "feedback"),
    "tag": ("usage_count",),
    "feedback": ("message_preview",),
}


def import_record(record_type: str, model: BaseModel | Row) -> Row:
    """An API object as an import record of SPEC section 10: `type` first, derived fields dropped, and a
    knowledge source's own `type` written as `source_type`."""
    obj = api_object(model) if isinstance(model, BaseModel) else dict(model)
    for name in _DERIVED.get(record_type, ()):
        obj.pop(name, None)
    if record_type == "knowledge_source":
        obj["source_type"] = obj.pop("type")
    return {"type": record_type, **obj}


def message_records(model: BaseModel | Row) -> list[Row]:
    """A message's import records: the message, then one `message_tag` per tag it carries."""
    obj = api_object(model) if isinstance(model, BaseModel) else model
    tags = [{"type": "message_tag", "message_id": obj["id"], "tag_id": tag["id"]} for tag in obj.get("tags") or []]
    return [import_record("message", obj), *tags]
