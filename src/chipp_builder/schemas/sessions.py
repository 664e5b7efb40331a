"""Sessions and their messages."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from chipp_builder.schemas.common import CursorList, DataEnvelope, Role, Source, Timestamp, WireModel


class ConsumerSummary(WireModel):
    """The session's consumer, as embedded in a session."""

    email: str | None
    name: str | None


class Session(WireModel):
    """One chat session."""

    id: UUID
    consumer_id: UUID | None
    consumer: ConsumerSummary | None
    title: str | None
    source: Source
    mode: str
    is_bookmarked: bool
    is_multiplayer: bool
    message_count: int
    started_at: Timestamp
    ended_at: Timestamp | None
    last_activity_at: Timestamp


class MessageTag(WireModel):
    """A tag as applied to a message."""

    id: UUID
    name: str
    color: str


class MessageFeedback(WireModel):
    """The newest rating of a message."""

    id: str
    rating: int
    consumer_id: UUID | None
    created_at: Timestamp


class ToolCall(WireModel):
    """A tool the assistant invoked."""

    tool_name: str
    status: str


class ToolResult(WireModel):
    """What a tool returned."""

    tool_name: str
    result: Any


class Message(WireModel):
    """One message; `tool_calls` and `tool_results` appear only with `include=tool_details`."""

    id: str
    session_id: UUID
    role: Role
    content: str
    model: str | None
    token_count: int | None
    latency_ms: int | None
    audio_url: str | None
    audio_duration_ms: int | None
    tags: list[MessageTag]
    feedback: MessageFeedback | None
    created_at: Timestamp
    tool_calls: list[ToolCall] | None = None
    tool_results: list[ToolResult] | None = None


class SessionList(CursorList[Session]):
    """A page of sessions."""


class SessionEnvelope(DataEnvelope[Session]):
    """One session."""


class MessageList(CursorList[Message]):
    """A page of messages."""
