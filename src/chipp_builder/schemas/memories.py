"""Memories the app keeps about its consumers."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from chipp_builder.schemas.common import OffsetList, Timestamp, WireModel


class MemoryType(StrEnum):
    """What a memory is about."""

    preference = "preference"
    background = "background"
    fact = "fact"
    insight = "insight"
    topic = "topic"
    query = "query"


class MemoryLayer(StrEnum):
    """Which layer a memory lives in."""

    episodic = "episodic"
    fact = "fact"


class Memory(WireModel):
    """One memory; embeddings are never exposed."""

    id: str
    consumer_id: UUID | None
    external_user_id: str | None
    content: str
    memory_type: MemoryType
    memory_layer: MemoryLayer
    confidence: float
    source_message_id: str | None
    session_id: UUID | None
    created_at: Timestamp
    updated_at: Timestamp


class MemoryList(OffsetList[Memory]):
    """A page of memories."""
