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
