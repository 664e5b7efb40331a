"""Tags applied to messages."""

from __future__ import annotations

from uuid import UUID

from chipp_builder.schemas.common import Timestamp, WireModel


class Tag(WireModel):
    """One tag with how many times it has been applied."""

    id: UUID
    name: str
    color: str
    usage_count: int
    created_at: Timestamp


class TagList(WireModel):
    """All of the app's tags, unpaginated."""

    data: list[Tag]
