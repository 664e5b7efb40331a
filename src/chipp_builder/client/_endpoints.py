"""Every endpoint of the API as a Call, built once for both clients: path, accepted filters, body, envelope
and pagination kind. The sync and async resource classes only hand these to their requester."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeAlias
from uuid import UUID

from typing_extensions import TypedDict

from chipp_builder.client._core import (
    IDEMPOTENCY_HEADER,
    Call,
    ListCall,
    PageKind,
    compact,
    encode_params,
    jsonable,
)
from chipp_builder.client._core import path_segment as seg
from chipp_builder.client.models import ConsumerIn, MessageIn
from chipp_builder.schemas.analytics import GroupBy, TokenUsageEnvelope, UsageEnvelope
from chipp_builder.schemas.common import Role, Source
from chipp_builder.schemas.consumers import ConsumerEnvelope, ConsumerList
from chipp_builder.schemas.conversations import (
    ConsumerTokenEnvelope,
    ConversationLoggedEnvelope,
    LogConsumer,
    LogMessage,
)
from chipp_builder.schemas.events import (
    EVENT_TYPES,
    ConsumerErasedEnvelope,
    EventList,
    FeedPositionEnvelope,
    SessionDeletedEnvelope,
)
from chipp_builder.schemas.feedback import FeedbackEnvelope, FeedbackList
from chipp_builder.schemas.knowledge_sources import (
    KnowledgeSourceList,
    KnowledgeSourceStatus,
    KnowledgeSourceType,
)
from chipp_builder.schemas.memories import MemoryLayer, MemoryList, MemoryType
from chipp_builder.schemas.sessions import MessageList, SessionEnvelope, SessionList
from chipp_builder.schemas.tags import TagList

# A timestamp filter: a datetime (naive means UTC), a date (midnight UTC), or a string the server parses.
When: TypeAlias = datetime | date | str
AnyId: TypeAlias = UUID | str


class SessionFilters(TypedDict, total=False):
    """Filters of sessions.list (SPEC 2)."""

    limit: int
    cursor: str
    source: Source | str
    consumer_id: AnyId
    started_after: When
    started_before: When
    search: str


class MessageFilters(TypedDict, total=False):
    """Filters of sessions.messages (SPEC 2); include="tool_details" adds tool calls and results."""

    limit: int
    cursor: str
    role: Role | str
    created_after: When
    created_before: When
    include: str | Sequence[str]


class ConsumerFilters(TypedDict, total=False):
    """Filters of consumers.list (SPEC 3)."""

    limit: int
    offset: int
    search: str
    has_email: bool
    created_after: When
    created_before: When


class FeedbackFilters(TypedDict, total=False):
    """Filters of feedback.list (SPEC 4)."""

    limit: int
    offset: int
    rating: int
    session_id: AnyId
    created_after: When
    created_before: When


class KnowledgeSourceFilters(TypedDict, total=False):
    """Filters of knowledge_sources.list (SPEC 6)."""

    limit: int
    offset: int
    status: KnowledgeSourceStatus | str
    type: KnowledgeSourceType | str


class MemoryFilters(TypedDict, total=False):
    """Filters of memories.list (SPEC 7)."""

    limit: int
    offset: int
    consumer_id: AnyId
    memory_type: MemoryType | str
    memory_layer: MemoryLayer | str


class AnalyticsFilters(TypedDict, total=False):
    """Range and bucket size of analytics.usage and analytics.token_usage (SPEC 8)."""

    started_after: When
    started_before: When
    group_by: GroupBy | str


def _names(filters: type) -> frozenset[str]:
    return frozenset(filters.__annotations__)


def _list(where: str, path: str, envelope: Any, kind: PageKind, accepted: type, filters: Mapping[str, object]
          ) -> ListCall[Any]:
    return ListCall("GET", path, envelope, encode_params(where, filters, _names(accepted)), kind=kind)


def _get(where: str, path: str, envelope: Any, accepted: type | None = None,
         filters: Mapping[str, object] | None = None) -> Call[Any]:
    params = encode_params(where, filters or {}, _names(accepted) if accepted else frozenset())
    return Call("GET", path, envelope, params)


def list_sessions(filters: Mapping[str, object]) -> ListCall[SessionList]:
    """GET /sessions."""
    return _list("sessions.list", "/sessions", SessionList, "cursor", SessionFilters, filters)


def get_session(session_id: AnyId) -> Call[SessionEnvelope]:
    """GET /sessions/{id}."""
    return _get("sessions.get", f"/sessions/{seg(session_id)}", SessionEnvelope)


def list_messages(session_id: AnyId, filters: Mapping[str, object]) -> ListCall[MessageList]:
    """GET /sessions/{id}/messages."""
    return _list("sessions.messages", f"/sessions/{seg(session_id)}/messages", MessageList, "cursor",
                 MessageFilters, filters)


def delete_session(session_id: AnyId) -> Call[SessionDeletedEnvelope]:
    """DELETE /sessions/{id} (not retried: a second attempt after a lost response would answer 404)."""
    return Call("DELETE", f"/sessions/{seg(session_id)}", SessionDeletedEnvelope)


def list_consumers(filters: Mapping[str, object]) -> ListCall[ConsumerList]:
    """GET /consumers."""
    return _list("consumers.list", "/consumers", ConsumerList, "offset", ConsumerFilters, filters)


def get_consumer(consumer_id: AnyId) -> Call[ConsumerEnvelope]:
    """GET /consumers/{id}."""
    return _get("consumers.get", f"/consumers/{seg(consumer_id)}", ConsumerEnvelope)


def erase_consumer(consumer_id: AnyId) -> Call[ConsumerErasedEnvelope]:
    """DELETE /consumers/{id}: erase the person (not retried, as delete_session)."""
    return Call("DELETE", f"/consumers/{seg(consumer_id)}", ConsumerErasedEnvelope)


def auth_consumer(
    external_id: str | None, email: str | None, name: str | None, picture_url: str | None
) -> Call[ConsumerTokenEnvelope]:
    """POST /consumers/auth (not retried: the server keeps no idempotency record for it)."""
    body = compact(external_id=external_id, email=email, name=name, picture_url=picture_url)
    return Call("POST", "/consumers/auth", ConsumerTokenEnvelope, body=body)


def list_feedback(filters: Mapping[str, object]) -> ListCall[FeedbackList]:
    """GET /feedback."""
    return _list("feedback.list", "/feedback", FeedbackList, "offset", FeedbackFilters, filters)


def create_feedback(
    message_id: str, rating: int, consumer_id: AnyId | None, idempotency_key: str | None
) -> Call[FeedbackEnvelope]:
    """POST /feedback, with an Idempotency-Key (the server honours one here too) unless given None."""
    body = compact(message_id=message_id, rating=rating, consumer_id=consumer_id)
    return Call("POST", "/feedback", FeedbackEnvelope, body=body, headers=_idempotency(idempotency_key))


def list_tags() -> ListCall[TagList]:
    """GET /tags (one unpaginated list)."""
    return ListCall("GET", "/tags", TagList, kind="none")


def list_knowledge_sources(filters: Mapping[str, object]) -> ListCall[KnowledgeSourceList]:
    """GET /knowledge-sources."""
    return _list("knowledge_sources.list", "/knowledge-sources", KnowledgeSourceList, "offset",
                 KnowledgeSourceFilters, filters)


def list_memories(filters: Mapping[str, object]) -> ListCall[MemoryList]:
    """GET /memories."""
    return _list("memories.list", "/memories", MemoryList, "offset", MemoryFilters, filters)


# Seconds a long poll's read may take beyond its `wait`: the server answers when `wait` runs out, and the
# response still has to arrive.
LONG_POLL_MARGIN = 10.0
MAX_WAIT = 30
MAX_EVENTS_LIMIT = 500


def list_events(
    after: str | None, types: str | Sequence[str] | None, limit: int | None, wait: int | None = None
) -> Call[EventList]:
    """GET /events from `after` (the oldest kept event when None); `wait` seconds of long poll when given.

    The types are checked here, as filters' names are: the server would answer 400, but a typo is better
    caught before the first request of a follower that is meant to run for days."""
    wanted = [types] if isinstance(types, str) else list(types or ())
    names = [part.strip() for item in wanted for part in str(item).split(",")]
    unknown = sorted(set(names) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"events: unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    if limit is not None and not 1 <= limit <= MAX_EVENTS_LIMIT:
        raise ValueError(f"events: limit must be between 1 and {MAX_EVENTS_LIMIT}, got {limit}")
    if wait is not None and not 0 <= wait <= MAX_WAIT:
        raise ValueError(f"events: wait must be between 0 and {MAX_WAIT} seconds, got {wait}")
    params = {
        "after": after,
        "types": ",".join(names) if names else None,
        "limit": None if limit is None else str(limit),
        "wait": None if wait is None else str(wait),
    }
    read = None if not wait else wait + LONG_POLL_MARGIN
    return Call("GET", "/events", EventList, {k: v for k, v in params.items() if v is not None}, min_read=read)


def latest_event() -> Call[FeedPositionEnvelope]:
    """GET /events/latest."""
    return Call("GET", "/events/latest", FeedPositionEnvelope)


def usage(filters: Mapping[str, object]) -> Call[UsageEnvelope]:
    """GET /analytics/usage."""
    return _get("analytics.usage", "/analytics/usage", UsageEnvelope, AnalyticsFilters, filters)


def token_usage(filters: Mapping[str, object]) -> Call[TokenUsageEnvelope]:
    """GET /analytics/token-usage."""
    return _get("analytics.token_usage", "/analytics/token-usage", TokenUsageEnvelope, AnalyticsFilters,
                filters)


class _Auto:
    """The default of `idempotency_key`: a fresh random key per call."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO: Any = _Auto()


def _idempotency(idempotency_key: str | None) -> dict[str, str]:
    """The Idempotency-Key header: a fresh UUID for AUTO (one per call, kept across its retries)."""
    key = str(uuid.uuid4()) if isinstance(idempotency_key, _Auto) else idempotency_key
    return {IDEMPOTENCY_HEADER: key} if key is not None else {}


def log_conversation(
    messages: Sequence[LogMessage | MessageIn | Mapping[str, Any]],
    session_id: AnyId | None,
    consumer: LogConsumer | ConsumerIn | Mapping[str, Any] | None,
    title: str | None,
    source: Source | str | None,
    idempotency_key: str | None,
) -> Call[ConversationLoggedEnvelope]:
    """POST /conversations/log, with an Idempotency-Key unless the caller passed None, so that it can be
    retried safely: the server replays the first response instead of writing the messages twice."""
    if isinstance(messages, Mapping) or isinstance(messages, str):
        raise TypeError("messages must be a list of message objects")
    body = compact(session_id=session_id, consumer=consumer, title=title, source=source)
    body["messages"] = jsonable(list(messages))
    return Call("POST", "/conversations/log", ConversationLoggedEnvelope, body=body,
                headers=_idempotency(idempotency_key))
