"""Wire models shared by the server and the SDK: one module per resource plus the envelopes."""

from chipp_builder.schemas.analytics import TokenUsage, TokenUsageEnvelope, Usage, UsageEnvelope
from chipp_builder.schemas.common import (
    CursorPagination,
    ErrorBody,
    ErrorEnvelope,
    OffsetPagination,
)
from chipp_builder.schemas.consumers import Consumer, ConsumerEnvelope, ConsumerList
from chipp_builder.schemas.feedback import Feedback, FeedbackCreate, FeedbackEnvelope, FeedbackList
from chipp_builder.schemas.keys import ApiKey, ApiKeyCreated, App
from chipp_builder.schemas.knowledge_sources import KnowledgeSource, KnowledgeSourceList
from chipp_builder.schemas.memories import Memory, MemoryList
from chipp_builder.schemas.sessions import Message, MessageList, Session, SessionEnvelope, SessionList
from chipp_builder.schemas.tags import Tag, TagList

__all__ = [
    "ApiKey", "ApiKeyCreated", "App", "Consumer", "ConsumerEnvelope", "ConsumerList", "CursorPagination",
    "ErrorBody", "ErrorEnvelope", "Feedback", "FeedbackCreate", "FeedbackEnvelope", "FeedbackList",
    "KnowledgeSource", "KnowledgeSourceList", "Memory", "MemoryList", "Message", "MessageList",
    "OffsetPagination", "Session", "SessionEnvelope", "SessionList", "Tag", "TagList", "TokenUsage",
    "TokenUsageEnvelope", "Usage", "UsageEnvelope",
]
