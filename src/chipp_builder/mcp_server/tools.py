"""The read-only MCP tools (SPEC section 15), each a client of the Builder API through the SDK's AsyncClient:
typed inputs, a structured result (models.py) with a short text summary, and every API error a tool error
carrying the API's own message."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal, TypeAlias
from uuid import UUID

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from chipp_builder import __version__
from chipp_builder.client import AsyncClient
from chipp_builder.client._core import ListCall
from chipp_builder.mcp_server.models import (
    ConsumerDetail,
    ConsumersPage,
    Event,
    EventsPage,
    FeedbackPage,
    KnowledgeSourcesPage,
    SearchHit,
    SearchPage,
    SessionsPage,
    TagsPage,
    Transcript,
)
from chipp_builder.mcp_server.support import (
    ToolFn,
    answering_failures,
    api_errors,
    cut,
    cut_message,
    given,
    item_lines,
    next_note,
    next_offset,
    offset_of,
    query_params,
    result,
)
from chipp_builder.schemas.analytics import GroupBy, TokenUsage, Usage
from chipp_builder.schemas.common import CursorPagination, Role, Source, WireModel
from chipp_builder.schemas.events import EventType
from chipp_builder.schemas.knowledge_sources import KnowledgeSourceStatus, KnowledgeSourceType
from chipp_builder.schemas.sessions import Message

# What a tool is given to reach the API for one call: the stdio server's one client, or (over HTTP) a client
# with the calling request's key.
ClientSource: TypeAlias = Callable[[Context[Any, Any]], AbstractAsyncContextManager[AsyncClient]]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)
INSTRUCTIONS = """Read one chat app's data through the Builder API: sessions and their transcripts, message
search, feedback, consumers with their memories, usage and token analytics, tags, knowledge sources and the
event feed. Every tool is read-only. Lists take `limit` and `cursor`: pass a result's `next_cursor` back,
with the same filters, for the next page. Timestamps are RFC 3339 (`2025-06-01T00:00:00Z`) or a date."""

DEFAULT_CUT = 2000

# --- inputs -------------------------------------------------------------------------------------------------

Limit = Annotated[int, Field(ge=1, le=100, description="Items per page, 1 to 100.")]
Cursor = Annotated[str | None, Field(description="`next_cursor` of the previous page; absent: the first page.")]
When = Annotated[str | None, Field(description="RFC 3339 timestamp or date, e.g. 2025-06-01T00:00:00Z.")]
MaxChars = Annotated[
    int,
    Field(ge=100, le=100_000, description="Longer message content and tool results are cut to this many "
          "characters and flagged (`content_truncated`, `tool_results_truncated`)."),
]
SessionId = Annotated[UUID, Field(description="A session's id (a UUID).")]
ConsumerId = Annotated[UUID, Field(description="A consumer's id (a UUID).")]
Rating = Literal[-1, 0, 1]


class _SearchEnvelope(WireModel):
    data: list[dict[str, Any]]
    pagination: CursorPagination


class _EventsEnvelope(WireModel):
    data: list[Event]
    pagination: CursorPagination


@contextmanager
def _root_logging_kept() -> Iterator[None]:
    """Undo what MCPServer() does to the root logger (logging.basicConfig with a handler of its own): inside
    `serve` the process's logging is uvicorn's, and the stdio command sets up its own."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


# --- the server -----------------------------------------------------------------------------------------------


def build_server(clients: ClientSource, *, name: str = "chipp-builder") -> MCPServer[Any]:
    """The MCP server with every tool, reaching the API through `clients` for each call."""
    with _root_logging_kept():
        server: MCPServer[Any] = MCPServer(name, version=__version__, instructions=INSTRUCTIONS)

    def tool(annotations: ToolAnnotations) -> Callable[[ToolFn], ToolFn]:
        def register(fn: ToolFn) -> ToolFn:
            server.add_tool(answering_failures(fn), annotations=annotations)
            return fn

        return register

    @tool(annotations=READ_ONLY)
    async def list_sessions(
        ctx: Context[Any, Any],
        limit: Limit = 25,
        cursor: Cursor = None,
        source: Annotated[Source | None, Field(description="Only sessions from this channel.")] = None,
        consumer_id: Annotated[UUID | None, Field(description="Only this consumer's sessions.")] = None,
        started_after: When = None,
        started_before: When = None,
        search: Annotated[str | None, Field(max_length=200, description="Case-insensitive substring of the "
                                            "title.")] = None,
    ) -> Annotated[CallToolResult, SessionsPage]:
        """The app's chat sessions, newest first: title, source, consumer, message count and times."""
        async with clients(ctx) as client:
            with api_errors():
                page = await client.sessions.list(**given(
                    limit=limit, cursor=cursor, source=source, consumer_id=consumer_id,
                    started_after=started_after, started_before=started_before, search=search))
        pagination = page.pagination
        value = SessionsPage(sessions=page.data, has_more=pagination.has_more, next_cursor=pagination.next_cursor)
        lines = [f"{s.started_at:%Y-%m-%d %H:%M} {s.source.value} {s.title or '(untitled)'} "
                 f"({s.message_count} messages) id={s.id}" for s in page.data]
        return result(f"{len(page.data)} sessions{next_note(pagination.next_cursor)}" + item_lines(lines), value)

    @tool(annotations=READ_ONLY)
    async def get_transcript(
        ctx: Context[Any, Any],
        session_id: SessionId,
        limit: Annotated[int, Field(ge=1, le=100, description="Messages per page, 1 to 100.")] = 50,
        cursor: Cursor = None,
        role: Annotated[Role | None, Field(description="Only messages of this role.")] = None,
        max_content_chars: MaxChars = DEFAULT_CUT,
    ) -> Annotated[CallToolResult, Transcript]:
        """A session with its messages, oldest first, each with its tags, newest rating (feedback), tool calls
        and tool results; long text is cut and flagged."""
        async with clients(ctx) as client:
            with api_errors():
                session = await client.sessions.get(session_id)
                page = await client.sessions.messages(session_id, **given(limit=limit, cursor=cursor, role=role,
                                                                    include="tool_details"))
        messages = [cut_message(m, max_content_chars) for m in page.data]
        pagination = page.pagination
        value = Transcript(session=session, messages=messages, has_more=pagination.has_more,
                           next_cursor=pagination.next_cursor)
        was_cut = sum(m.content_truncated or m.tool_results_truncated for m in messages)
        note = f", {was_cut} cut to {max_content_chars} characters" if was_cut else ""
        return result(f"Session {session.title or '(untitled)'} ({session.id}): {len(messages)} of "
                      f"{session.message_count} messages{note}{next_note(pagination.next_cursor)}", value)

    @tool(annotations=READ_ONLY)
    async def search_messages(
        ctx: Context[Any, Any],
        q: Annotated[str | None, Field(max_length=500, description='Words that must all occur; "a phrase", '
                                       "word*, -word, a OR b.")] = None,
        session_id: Annotated[UUID | None, Field(description="Only this session's messages.")] = None,
        consumer_id: Annotated[UUID | None, Field(description="Only messages of this consumer's sessions.")] = None,
        role: Annotated[Role | None, Field(description="Only messages of this role.")] = None,
        source: Annotated[Source | None, Field(description="Only messages of sessions from this channel.")] = None,
        model: Annotated[str | None, Field(description="Only messages written by this model.")] = None,
        tag_id: Annotated[UUID | None, Field(description="Only messages with this tag.")] = None,
        rating: Annotated[Rating | None, Field(description="Only messages whose newest rating is this.")] = None,
        created_after: When = None,
        created_before: When = None,
        limit: Limit = 25,
        cursor: Cursor = None,
        max_content_chars: MaxChars = DEFAULT_CUT,
    ) -> Annotated[CallToolResult, SearchPage]:
        """Messages across every session, newest first, found by words (`q`) and filters, with a snippet
        around the match; needs a server with message search (SPEC section 13)."""
        query = query_params("search_messages", {
            "q": q, "session_id": session_id, "consumer_id": consumer_id, "role": role, "source": source,
            "model": model, "tag_id": tag_id, "rating": rating, "created_after": created_after,
            "created_before": created_before, "limit": limit, "cursor": cursor, "include": "tool_details",
        })
        async with clients(ctx) as client:
            with api_errors("/messages"):
                envelope = await client.send(ListCall("GET", "/messages", _SearchEnvelope, query, kind="cursor"))
        hits = []
        for item in envelope.data:
            snippet = item.get("snippet")
            hit = cut_message(Message.model_validate(item), max_content_chars, SearchHit, snippet=snippet)
            hits.append(hit)
        pagination = envelope.pagination
        value = SearchPage(messages=hits, has_more=pagination.has_more, next_cursor=pagination.next_cursor)
        lines = [f"{m.created_at:%Y-%m-%d %H:%M} {m.role.value} in session {m.session_id}: "
                 f"{cut(m.content, 80)[0]!r} id={m.id}" for m in hits]
        return result(f"{len(hits)} messages{next_note(pagination.next_cursor)}" + item_lines(lines), value)

    @tool(annotations=READ_ONLY)
    async def list_feedback(
        ctx: Context[Any, Any],
        limit: Limit = 25,
        cursor: Cursor = None,
        rating: Annotated[Rating | None, Field(description="Only ratings of this value: -1, 0 or 1.")] = None,
        session_id: Annotated[UUID | None, Field(description="Only this session's ratings.")] = None,
        created_after: When = None,
        created_before: When = None,
    ) -> Annotated[CallToolResult, FeedbackPage]:
        """Consumers' ratings of messages (-1, 0, 1), newest first, each with a preview of the rated message."""
        offset = offset_of(cursor)
        async with clients(ctx) as client:
            with api_errors():
                page = await client.feedback.list(**given(
                    limit=limit, offset=offset, rating=rating, session_id=session_id,
                    created_after=created_after, created_before=created_before))
        total = page.pagination.total
        next_cursor = next_offset(offset, len(page.data), total)
        value = FeedbackPage(feedback=page.data, total=total, has_more=next_cursor is not None,
                             next_cursor=next_cursor)
        lines = [f"{f.rating:+d} on message {f.message_id}: {f.message_preview!r}" for f in page.data]
        return result(f"{len(page.data)} of {total} ratings{next_note(next_cursor)}" + item_lines(lines), value)

    @tool(annotations=READ_ONLY)
    async def list_consumers(
        ctx: Context[Any, Any],
        limit: Limit = 25,
        cursor: Cursor = None,
        search: Annotated[str | None, Field(max_length=200, description="Case-insensitive substring of name, "
                                            "email or identifier.")] = None,
        has_email: Annotated[bool | None, Field(description="Only consumers with (true) or without (false) an "
                                                "email.")] = None,
        created_after: When = None,
        created_before: When = None,
    ) -> Annotated[CallToolResult, ConsumersPage]:
        """The people who chat with the app, newest first."""
        offset = offset_of(cursor)
        async with clients(ctx) as client:
            with api_errors():
                page = await client.consumers.list(**given(
                    limit=limit, offset=offset, search=search, has_email=has_email,
                    created_after=created_after, created_before=created_before))
        total = page.pagination.total
        next_cursor = next_offset(offset, len(page.data), total)
        value = ConsumersPage(consumers=page.data, total=total, has_more=next_cursor is not None,
                              next_cursor=next_cursor)
        lines = [f"{c.name or c.email or c.identifier} id={c.id}" for c in page.data]
        return result(f"{len(page.data)} of {total} consumers{next_note(next_cursor)}" + item_lines(lines), value)

    @tool(annotations=READ_ONLY)
    async def get_consumer(
        ctx: Context[Any, Any],
        consumer_id: ConsumerId,
        memory_limit: Annotated[int, Field(ge=1, le=100, description="Memories to include, newest first.")] = 25,
    ) -> Annotated[CallToolResult, ConsumerDetail]:
        """One consumer with what the app remembers about them (memories: preferences, facts, ...)."""
        async with clients(ctx) as client:
            with api_errors():
                consumer = await client.consumers.get(consumer_id)
                memories = await client.memories.list(consumer_id=consumer_id, limit=memory_limit)
        value = ConsumerDetail(consumer=consumer, memories=memories.data, memories_total=memories.pagination.total)
        who = consumer.name or consumer.email or consumer.identifier
        return result(f"Consumer {who} ({consumer.id}), {memories.pagination.total} memories"
                      + item_lines([f"{m.memory_type.value}: {m.content}" for m in memories.data]), value)

    @tool(annotations=READ_ONLY)
    async def get_usage(
        ctx: Context[Any, Any],
        started_after: When = None,
        started_before: When = None,
        group_by: Annotated[GroupBy, Field(description="Bucket size of the timeseries.")] = GroupBy.day,
    ) -> Annotated[CallToolResult, Usage]:
        """Sessions, unique consumers and messages in a range (default: all time), with a zero-filled
        timeseries by day, week or month."""
        async with clients(ctx) as client:
            with api_errors():
                usage = await client.analytics.usage(**given(
                    started_after=started_after, started_before=started_before, group_by=group_by))
        s = usage.summary
        return result(f"{s.total_sessions} sessions, {s.unique_consumers} unique consumers, {s.total_messages} "
                      f"messages over {len(usage.timeseries)} {group_by.value} buckets", usage)

    @tool(annotations=READ_ONLY)
    async def get_token_usage(
        ctx: Context[Any, Any],
        started_after: When = None,
        started_before: When = None,
        group_by: Annotated[GroupBy, Field(description="Bucket size of the timeseries.")] = GroupBy.day,
    ) -> Annotated[CallToolResult, TokenUsage]:
        """Tokens used in a range (default: all time), by model and over time."""
        async with clients(ctx) as client:
            with api_errors():
                usage = await client.analytics.token_usage(**given(
                    started_after=started_after, started_before=started_before, group_by=group_by))
        lines = [f"{m.model or '(no model)'}: {m.total_tokens} tokens in {m.message_count} messages"
                 for m in usage.by_model]
        return result(f"{usage.summary.total_tokens} tokens in {usage.summary.message_count} messages"
                      + item_lines(lines), usage)

    @tool(annotations=READ_ONLY)
    async def list_tags(
        ctx: Context[Any, Any],
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, TagsPage]:
        """The app's tags (labels on messages), oldest first, with how often each was applied."""
        offset = offset_of(cursor)
        async with clients(ctx) as client:
            with api_errors():
                every = (await client.tags.list()).data  # one unpaginated list in the API
        tags = every[offset:offset + limit]
        next_cursor = next_offset(offset, len(tags), len(every))
        value = TagsPage(tags=tags, total=len(every), has_more=next_cursor is not None, next_cursor=next_cursor)
        lines = [f"{t.name} ({t.usage_count} uses) id={t.id}" for t in tags]
        return result(f"{len(tags)} of {len(every)} tags{next_note(next_cursor)}" + item_lines(lines), value)

    @tool(annotations=READ_ONLY)
    async def list_knowledge_sources(
        ctx: Context[Any, Any],
        limit: Limit = 25,
        cursor: Cursor = None,
        status: Annotated[KnowledgeSourceStatus | None, Field(description="Only sources in this state.")] = None,
        type: Annotated[KnowledgeSourceType | None, Field(description="Only sources of this kind.")] = None,
    ) -> Annotated[CallToolResult, KnowledgeSourcesPage]:
        """The app's knowledge sources (its training data), newest first, with their processing status."""
        offset = offset_of(cursor)
        async with clients(ctx) as client:
            with api_errors():
                page = await client.knowledge_sources.list(**given(limit=limit, offset=offset, status=status,
                                                                   type=type))
        total = page.pagination.total
        next_cursor = next_offset(offset, len(page.data), total)
        value = KnowledgeSourcesPage(knowledge_sources=page.data, total=total, has_more=next_cursor is not None,
                                     next_cursor=next_cursor)
        lines = [f"{k.name} ({k.type.value}, {k.status.value}) id={k.id}" for k in page.data]
        return result(f"{len(page.data)} of {total} knowledge sources{next_note(next_cursor)}"
                      + item_lines(lines), value)

    @tool(annotations=READ_ONLY)
    async def list_events(
        ctx: Context[Any, Any],
        limit: Annotated[int, Field(ge=1, le=500, description="Events per page, 1 to 500.")] = 100,
        cursor: Annotated[str | None, Field(description="A `next_cursor` from this tool: only events after "
                                            "it; absent: from the oldest kept event.")] = None,
        types: Annotated[list[EventType] | None, Field(description="Only events of these types.")] = None,
    ) -> Annotated[CallToolResult, EventsPage]:
        """What changed in the app, oldest first (created, updated, deleted objects; no content): follow up
        with the other tools; needs a server with the event feed (SPEC section 11)."""
        query = query_params("list_events", {"after": cursor, "limit": limit, "types": types})
        async with clients(ctx) as client:
            with api_errors("/events"):
                envelope = await client.send(ListCall("GET", "/events", _EventsEnvelope, query, kind="cursor"))
        pagination = envelope.pagination
        position = pagination.next_cursor or cursor or ""
        value = EventsPage(events=envelope.data, has_more=pagination.has_more, next_cursor=position)
        lines = [f"{e.occurred_at:%Y-%m-%d %H:%M:%S} {e.type} {e.object_id}" for e in envelope.data]
        return result(f"{len(envelope.data)} events; continue with cursor={position}" + item_lines(lines), value)

    return server


def fixed_client(client: AsyncClient) -> ClientSource:
    """A ClientSource that hands every call the same client (the stdio server's, from its configuration)."""

    @asynccontextmanager
    async def source(_ctx: Context[Any, Any]) -> AsyncIterator[AsyncClient]:
        yield client

    return source
