"""Apps and their API keys, as the management endpoints and the CLI show them."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from chipp_builder.schemas.common import Timestamp, WireModel

RESOURCES: tuple[str, ...] = (
    "sessions", "consumers", "feedback", "tags", "knowledge_sources", "memories", "analytics",
)


class ScopeLevel(StrEnum):
    """Access a key has to one resource; write implies read."""

    none = "none"
    read = "read"
    write = "write"


class App(WireModel):
    """One application."""

    id: UUID
    name: str
    created_at: Timestamp


class ApiKey(WireModel):
    """An API key as listed: never the raw key."""

    id: UUID
    app_id: UUID
    name: str
    prefix: str
    scopes: dict[str, ScopeLevel]
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None


class ApiKeyCreated(ApiKey):
    """A key just created: the only time `rawKey` is shown."""

    rawKey: str  # noqa: N815 - the management API's documented field name
