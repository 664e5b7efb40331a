"""The event feed (SPEC section 11): thin events in commit order, the feed's end, and the deletes' results."""

from __future__ import annotations

from typing import Literal, get_args
from uuid import UUID

from pydantic import Field

from chipp_builder.schemas.common import DataEnvelope, Timestamp, WireModel

# The object kinds that have events, and the key scope that reads each (a message's is its session's).
EVENT_KINDS: dict[str, str] = {
    "session": "sessions",
    "message": "sessions",
    "consumer": "consumers",
    "feedback": "feedback",
    "tag": "tags",
    "knowledge_source": "knowledge_sources",
    "memory": "memories",
}
EventType = Literal[
    "session.created", "session.updated", "session.deleted",
    "message.created", "message.updated", "message.deleted",
    "consumer.created", "consumer.updated", "consumer.deleted",
    "feedback.created", "feedback.updated", "feedback.deleted",
    "tag.created", "tag.updated", "tag.deleted",
    "knowledge_source.created", "knowledge_source.updated", "knowledge_source.deleted",
    "memory.created", "memory.updated", "memory.deleted",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


class Event(WireModel):
    """One change: what changed, never its content (fetch the object; a 404 means it was deleted)."""

    id: str = Field(description="Unique and stable: a replay or a webhook delivery of this change has the same id.")
    type: EventType
    object_id: str = Field(description="The changed object's `id`.")
    session_id: UUID | None = Field(description="The session of a `message.*` or `feedback.*` event; else null.")
    occurred_at: Timestamp = Field(description="When the change was committed.")


class EventPagination(WireModel):
    """A feed page's position: `next_cursor` is never null; store it and continue from it."""

    has_more: bool
    next_cursor: str = Field(description="The position after the last event returned, or `after` itself.")
    limit: int


class EventList(WireModel):
    """A page of the feed, oldest first."""

    data: list[Event]
    pagination: EventPagination


class FeedPosition(WireModel):
    """The current end of the feed."""

    cursor: str


class FeedPositionEnvelope(DataEnvelope[FeedPosition]):
    """GET /events/latest."""


class SessionDeleteCounts(WireModel):
    """What a session's deletion removed with it."""

    messages: int
    feedback: int


class SessionDeleted(WireModel):
    """DELETE /sessions/{id}."""

    id: UUID
    deleted: Literal[True]
    counts: SessionDeleteCounts


class SessionDeletedEnvelope(DataEnvelope[SessionDeleted]):
    """The deleted session's id and what went with it."""


class ErasureCounts(WireModel):
    """What an erasure removed."""

    sessions: int
    messages: int
    feedback: int
    memories: int


class ConsumerErased(WireModel):
    """DELETE /consumers/{id}: the person is gone; `cursor` is the feed position right after the erasure."""

    consumer_id: UUID
    erased_at: Timestamp
    counts: ErasureCounts
    cursor: str


class ConsumerErasedEnvelope(DataEnvelope[ConsumerErased]):
    """The erasure's result."""
