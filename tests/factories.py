"""Plain factory functions for tests: apps with keys, and data loaded through the real import path."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chipp_builder.server.ingest.importer import import_lines
from chipp_builder.server.resources.apps import queries as apps


@dataclass
class TestApp:
    """An app a test made: its id, one raw key, and the base path of its API."""

    __test__ = False  # not a pytest class

    id: uuid.UUID
    key: str
    key_id: uuid.UUID

    @property
    def base(self) -> str:
        return f"/api/v1/apps/{self.id}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_app(
    server: Any,
    records: list[dict[str, Any]] | None = None,
    *,
    scopes: dict[str, str] | None = None,
    expires_at: datetime | None = None,
    name: str = "Test app",
) -> TestApp:
    """Create an app and a key, then import `records` (SPEC section 10 lines) into it."""
    async with server.state.engine.begin() as db:
        created = await apps.create_app(db, name)
        key = await apps.create_key(db, created["id"], "test key", scopes, expires_at)
    if records:
        await load(server, created["id"], records)
    return TestApp(id=created["id"], key=key["rawKey"], key_id=key["id"])


async def load(server: Any, app_id: uuid.UUID, records: list[dict[str, Any]]) -> None:
    """Import records into an app, failing loudly on any bad line."""
    report = await import_lines(server.state.engine, app_id, [json.dumps(r, default=str) for r in records])
    assert report.ok, report.errors


def ts(base: str, seconds: float = 0) -> str:
    """A timestamp string `seconds` after `base` (ISO), for building records."""
    value = datetime.fromisoformat(base.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return value.isoformat().replace("+00:00", "Z")


def new_id() -> str:
    """A fresh UUID string."""
    return str(uuid.uuid4())


# --- Helpers for the integration and contract suites: SPEC field lists, records, requests, assertions. ---

# Field names, in order, of every object the API returns (SPEC sections 2-8).
SESSION_FIELDS = [
    "id", "consumer_id", "consumer", "title", "source", "mode", "is_bookmarked", "is_multiplayer",
    "message_count", "started_at", "ended_at", "last_activity_at",
]
MESSAGE_FIELDS = [
    "id", "session_id", "role", "content", "model", "token_count", "latency_ms", "audio_url",
    "audio_duration_ms", "tags", "feedback", "created_at",
]
MESSAGE_TOOL_FIELDS = [*MESSAGE_FIELDS, "tool_calls", "tool_results"]
MESSAGE_TAG_FIELDS = ["id", "name", "color"]
MESSAGE_FEEDBACK_FIELDS = ["id", "rating", "consumer_id", "created_at"]
CONSUMER_FIELDS = [
    "id", "identifier", "email", "name", "picture_url", "email_verified", "credits", "subscription_active",
    "mode", "is_anonymous", "created_at", "updated_at",
]
FEEDBACK_FIELDS = ["id", "session_id", "message_id", "consumer_id", "rating", "message_preview", "created_at"]
TAG_FIELDS = ["id", "name", "color", "usage_count", "created_at"]
KNOWLEDGE_SOURCE_FIELDS = [
    "id", "name", "type", "status", "url", "error_message", "chunk_count", "file_size_bytes",
    "refresh_interval_hours", "last_refreshed_at", "created_at", "updated_at",
]
MEMORY_FIELDS = [
    "id", "consumer_id", "external_user_id", "content", "memory_type", "memory_layer", "confidence",
    "source_message_id", "session_id", "created_at", "updated_at",
]
CURSOR_PAGINATION_FIELDS = ["has_more", "next_cursor", "limit"]
OFFSET_PAGINATION_FIELDS = ["has_more", "total", "limit", "offset"]


def uid(kind: int, n: int) -> str:
    """A readable, fixed UUID string: `kind` tells the record kind apart, `n` orders ids of one kind."""
    return f"{kind:08x}-0000-4000-8000-{n:012x}"


def session_record(id: str, started_at: str, **fields: Any) -> dict[str, Any]:
    """A session import line (source APP unless given)."""
    return {"type": "session", "id": id, "started_at": started_at, "source": "APP", **fields}


def message_record(
    id: str, session_id: str, created_at: str, role: str = "user", content: str = "hello", **fields: Any
) -> dict[str, Any]:
    """A message import line."""
    return {
        "type": "message", "id": id, "session_id": session_id, "role": role, "content": content,
        "created_at": created_at, **fields,
    }


def consumer_record(id: str, identifier: str, created_at: str, **fields: Any) -> dict[str, Any]:
    """A consumer import line (updated_at = created_at unless given)."""
    return {
        "type": "consumer", "id": id, "identifier": identifier, "created_at": created_at,
        "updated_at": created_at, **fields,
    }


def tag_record(id: str, name: str, color: str, created_at: str) -> dict[str, Any]:
    """A tag import line."""
    return {"type": "tag", "id": id, "name": name, "color": color, "created_at": created_at}


def message_tag_record(message_id: str, tag_id: str) -> dict[str, Any]:
    """A tag applied to a message."""
    return {"type": "message_tag", "message_id": message_id, "tag_id": tag_id}


def feedback_record(
    id: str, message_id: str, session_id: str, rating: int, created_at: str, **fields: Any
) -> dict[str, Any]:
    """A feedback import line."""
    return {
        "type": "feedback", "id": id, "message_id": message_id, "session_id": session_id, "rating": rating,
        "created_at": created_at, **fields,
    }


def knowledge_source_record(
    id: str, name: str, source_type: str, status: str, created_at: str, **fields: Any
) -> dict[str, Any]:
    """A knowledge source import line (its own type is written `source_type`)."""
    return {
        "type": "knowledge_source", "id": id, "name": name, "source_type": source_type, "status": status,
        "created_at": created_at, "updated_at": created_at, **fields,
    }


def memory_record(
    id: str, content: str, created_at: str, memory_type: str = "fact", memory_layer: str = "fact",
    **fields: Any,
) -> dict[str, Any]:
    """A memory import line."""
    return {
        "type": "memory", "id": id, "content": content, "memory_type": memory_type,
        "memory_layer": memory_layer, "created_at": created_at, "updated_at": created_at, **fields,
    }


async def get(api: Any, app: TestApp, path: str, params: Any = None, **kwargs: Any) -> Any:
    """GET a path under the app's base with the app's key."""
    return await api.get(app.base + path, params=params, headers=app.headers, **kwargs)


def assert_error(response: Any, status: int, code: str, message: str | None = None) -> str:
    """Assert the error envelope exactly: status, `{"error": {"code", "message"}}`; return the message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert list(body) == ["error"], body
    assert list(body["error"]) == ["code", "message"], body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if message is not None:
        assert body["error"]["message"] == message, body
    return str(body["error"]["message"])


def ids(response: Any) -> list[str]:
    """The ids of a list response's data, asserting a 200 first."""
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


async def walk_cursor(api: Any, app: TestApp, path: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Follow `next_cursor` from the first page to the last; return every page's body."""
    pages = []
    cursor = None
    for _ in range(1000):
        query = dict(params or {})
        if cursor is not None:
            query["cursor"] = cursor
        response = await get(api, app, path, query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert list(body) == ["data", "pagination"]
        assert list(body["pagination"]) == CURSOR_PAGINATION_FIELDS
        pages.append(body)
        cursor = body["pagination"]["next_cursor"]
        assert (cursor is not None) == body["pagination"]["has_more"], body["pagination"]
        if cursor is None:
            return pages
    raise AssertionError("the cursor walk did not end")


async def expire_key(server: Any, key_id: uuid.UUID) -> None:
    """Move a key's expiry into the past (keys cannot be created already expired)."""
    from datetime import UTC

    from sqlalchemy import update

    from chipp_builder.server.db.tables import api_key

    async with server.state.engine.begin() as db:
        past = datetime.now(UTC) - timedelta(seconds=1)
        await db.execute(update(api_key).where(api_key.c.id == key_id).values(expires_at=past))


async def delete_message(server: Any, app_id: uuid.UUID, message_id: str) -> None:
    """Delete a message row directly, as if it had been removed after it was rated."""
    from sqlalchemy import delete

    from chipp_builder.server.db.tables import message

    async with server.state.engine.begin() as db:
        await db.execute(delete(message).where(message.c.app_id == app_id, message.c.id == message_id))
