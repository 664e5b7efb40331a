"""Sessions and their messages."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BeforeValidator, Field

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


Rating = Literal[-1, 0, 1]
# What a rating's consumer_id says (the seed gives a UUID); null is the one case where nobody can be named.
RATER = (
    "The consumer who gave the rating: the one named when it was given, else the session's consumer. Null "
    "only when neither exists: the rating named no consumer and its session has none."
)


class MessageFeedback(WireModel):
    """The newest rating of a message."""

    id: str
    rating: Rating
    consumer_id: Annotated[UUID | None, Field(description=RATER)]
    created_at: Timestamp


class ToolCall(WireModel):
    """A tool the assistant invoked."""

    tool_name: str
    status: str


def tool_result_text(value: Any) -> str:
    """A tool's result as the API gives it: text as it is, anything else (an object, a list, a number, null)
    as its compact JSON text, so `result` is always a string, as the seed shows it."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ToolResult(WireModel):
    """What a tool returned."""

    tool_name: str
    # The SDK reads an older server's structured result as its JSON text too.
    result: Annotated[str, BeforeValidator(tool_result_text)] = Field(
        description="The tool's output as text; a structured result is its JSON text."
    )


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
