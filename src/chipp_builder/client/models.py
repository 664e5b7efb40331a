"""The typed models the SDK returns and accepts: the wire schemas it shares with the server, plus plain-dict
shapes for the inputs of conversations.log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired
from uuid import UUID

from typing_extensions import TypedDict

from chipp_builder.schemas.analytics import (
    GroupBy,
    ModelTokens,
    TokenPoint,
    TokenSummary,
    TokenUsage,
    Usage,
    UsagePoint,
    UsageSummary,
)
from chipp_builder.schemas.common import (
    CursorPagination,
    OffsetPagination,
    Role,
    Source,
)
from chipp_builder.schemas.consumers import Consumer
from chipp_builder.schemas.conversations import ConsumerToken, ConversationLogged, LogConsumer, LogMessage
from chipp_builder.schemas.events import (
    ConsumerErased,
    ErasureCounts,
    Event,
    EventList,
    EventPagination,
    EventType,
    FeedPosition,
    SessionDeleteCounts,
    SessionDeleted,
)
from chipp_builder.schemas.feedback import Feedback
from chipp_builder.schemas.knowledge_sources import (
    KnowledgeSource,
    KnowledgeSourceStatus,
    KnowledgeSourceType,
)
from chipp_builder.schemas.memories import Memory, MemoryLayer, MemoryType
from chipp_builder.schemas.sessions import (
    ConsumerSummary,
    Message,
    MessageFeedback,
    MessageTag,
    Session,
    ToolCall,
    ToolResult,
)
from chipp_builder.schemas.tags import Tag


class ConsumerIn(TypedDict, total=False):
    """Who a logged conversation is with, as a plain dict (or pass a LogConsumer): matched by id, then
    email, then identifier, else created."""

    id: UUID | str
    email: str
    name: str
    identifier: str


class MessageIn(TypedDict):
    """One message of a logged conversation as a plain dict (or pass a LogMessage); role and content are
    required."""

    role: Role | str
    content: str
    created_at: NotRequired[datetime | str]
    model: NotRequired[str]
    token_count: NotRequired[int]
    latency_ms: NotRequired[int]
    tool_calls: NotRequired[list[dict[str, Any]]]
    tool_results: NotRequired[list[dict[str, Any]]]
    id: NotRequired[str]


__all__ = [
    "Consumer", "ConsumerErased", "ConsumerIn", "ConsumerSummary", "ConsumerToken", "ConversationLogged",
    "CursorPagination", "ErasureCounts", "Event", "EventList", "EventPagination", "EventType", "FeedPosition",
    "Feedback", "GroupBy", "KnowledgeSource", "KnowledgeSourceStatus", "KnowledgeSourceType", "LogConsumer",
    "LogMessage", "Memory", "MemoryLayer", "MemoryType", "Message", "MessageFeedback", "MessageIn", "MessageTag",
    "ModelTokens", "OffsetPagination", "Role", "Session", "SessionDeleteCounts", "SessionDeleted", "Source", "Tag",
    "TokenPoint", "TokenSummary", "TokenUsage", "ToolCall", "ToolResult", "Usage", "UsagePoint", "UsageSummary",
]
