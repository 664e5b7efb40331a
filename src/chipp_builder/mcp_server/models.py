"""The structured results of the MCP tools: the API's wire models (schemas/) inside small page shapes, plus
the two Part-two objects (a search hit, an event) the SDK has no model for yet, and the cut-text flags."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field

from chipp_builder.schemas.common import Timestamp, WireModel
from chipp_builder.schemas.consumers import Consumer
from chipp_builder.schemas.feedback import Feedback
from chipp_builder.schemas.knowledge_sources import KnowledgeSource
from chipp_builder.schemas.memories import Memory
from chipp_builder.schemas.sessions import Message, Session
from chipp_builder.schemas.tags import Tag

NEXT_CURSOR = "Pass as `cursor` to the same tool, with the same filters, for the next page; null on the last page."
TOTAL = "How many items match the filters, over every page."


class CutMessage(Message):
    """A message as the API gives it, with its content (and tool results) cut to the tool's
    `max_content_chars`; the flags say whether anything was cut."""

    content_truncated: bool = Field(description="True when `content` was cut; `content_length` is the whole.")
    content_length: int = Field(description="Length of the whole content, in characters (code points).")
    tool_results_truncated: bool = Field(False, description="True when a tool result's text was cut.")


class SearchHit(CutMessage):
    """A message found by search_messages: the message, cut as in a transcript, plus its `snippet` (up to 200
    characters around the first match, matched words in <mark>; null without `q`)."""

    snippet: str | None = None


class Event(WireModel):
    """One change in the app's event feed (SPEC section 11): thin, no content; fetch the object by id."""

    id: str
    type: str
    object_id: str
    session_id: UUID | None = None
    occurred_at: Timestamp


class _CursorPage(BaseModel):
    has_more: bool
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class _CountedPage(_CursorPage):
    total: int = Field(description=TOTAL)


class SessionsPage(_CursorPage):
    """A page of sessions, newest first."""

    sessions: list[Session]


class Transcript(_CursorPage):
    """A session and a page of its messages, oldest first, each with its tags, newest rating, tool calls and
    tool results."""

    session: Session
    messages: list[CutMessage]


class SearchPage(_CursorPage):
    """A page of messages across sessions, newest first."""

    messages: list[SearchHit]


class FeedbackPage(_CountedPage):
    """A page of ratings, newest first."""

    feedback: list[Feedback]


class ConsumersPage(_CountedPage):
    """A page of consumers, newest first."""

    consumers: list[Consumer]


class ConsumerDetail(BaseModel):
    """One consumer and what the app remembers about them (newest first, up to `memory_limit`)."""

    consumer: Consumer
    memories: list[Memory]
    memories_total: int = Field(description="How many memories the consumer has in all.")


class TagsPage(_CountedPage):
    """A page of the app's tags, oldest first."""

    tags: list[Tag]


class KnowledgeSourcesPage(_CountedPage):
    """A page of knowledge sources, newest first."""

    knowledge_sources: list[KnowledgeSource]


class EventsPage(BaseModel):
    """A page of the event feed, oldest first."""

    events: list[Event]
    has_more: bool
    next_cursor: str = Field(
        description="The feed position after this page (never null): pass it as `cursor` later to get only "
        "what changed since."
    )
