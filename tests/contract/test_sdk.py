"""The SDK (AsyncClient) against the in-process server over httpx.ASGITransport: every method, typed
results, every page walked, and errors raised as their errors.py classes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from chipp_builder.client import AsyncClient, Forbidden, InvalidRequest, NotFound, RateLimited, Unauthorized
from chipp_builder.client.models import (
    Consumer,
    CursorPagination,
    Feedback,
    KnowledgeSource,
    Memory,
    Message,
    OffsetPagination,
    Session,
    Source,
    Tag,
)
from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from tests.factories import TestApp, make_app

ALICE = "00000002-0000-4000-8000-000000000001"
ANON = "00000002-0000-4000-8000-000000000002"
S = {n: f"00000001-0000-4000-8000-{n:012x}" for n in range(1, 6)}
TAG = "00000003-0000-4000-8000-000000000001"


def _session(n: int, day: int, source: str, **fields: Any) -> dict[str, Any]:
    return {"type": "session", "id": S[n], "started_at": f"2025-06-{day:02d}T10:00:00Z", "source": source,
            **fields}


def _message(id: str, session: int, at: str, role: str = "user", content: str = "hello", **fields: Any
             ) -> dict[str, Any]:
    return {"type": "message", "id": id, "session_id": S[session], "role": role, "content": content,
            "created_at": at, **fields}


RECORDS: list[dict[str, Any]] = [
    {"type": "consumer", "id": ALICE, "identifier": "alice@example.com", "email": "alice@example.com",
     "name": "Alice", "created_at": "2025-05-01T00:00:00Z"},
    {"type": "consumer", "id": ANON, "identifier": "anon_7f3k", "is_anonymous": True,
     "created_at": "2025-05-02T00:00:00Z"},
    _session(1, 1, "APP", title="Billing question", consumer_id=ALICE),
    _session(2, 2, "WIDGET", title="Shipping"),
    _session(3, 3, "WIDGET", title="Returns", consumer_id=ANON),
    _session(4, 4, "API", title="Get 50% off", consumer_id=ALICE),
    _session(5, 5, "SLACK", title=None),
    _message("s1-m1", 1, "2025-06-01T10:00:05Z", content="My invoice is wrong"),
    _message("s1-m2", 1, "2025-06-01T10:00:06.500000Z", role="assistant", content="Let me check",
             model="gpt-4o", token_count=40, latency_ms=900,
             tool_calls=[{"tool_name": "lookup_invoice", "status": "success"}],
             tool_results=[{"tool_name": "lookup_invoice", "result": {"total": 42}}]),
    _message("s1-m3", 1, "2025-06-01T10:01:00Z", content="Thanks"),
    _message("s2-m1", 2, "2025-06-02T10:00:05Z", role="assistant", content="Hi", model="claude",
             token_count=10),
    {"type": "tag", "id": TAG, "name": "billing", "color": "#ef4444", "created_at": "2025-05-01T00:00:00Z"},
    {"type": "message_tag", "message_id": "s1-m2", "tag_id": TAG},
    {"type": "feedback", "id": "f1", "message_id": "s1-m2", "session_id": S[1], "rating": -1,
     "consumer_id": ALICE, "created_at": "2025-06-01T10:02:00Z"},
    {"type": "feedback", "id": "f2", "message_id": "s2-m1", "session_id": S[2], "rating": 1,
     "created_at": "2025-06-02T10:02:00Z"},
    {"type": "knowledge_source", "id": "k1", "name": "Help center", "source_type": "url",
     "status": "completed", "url": "https://example.com/help", "chunk_count": 12,
     "created_at": "2025-05-01T00:00:00Z"},
    {"type": "knowledge_source", "id": "k2", "name": "Prices.pdf", "source_type": "file", "status": "failed",
     "error_message": "Could not parse", "file_size_bytes": 1024, "created_at": "2025-05-02T00:00:00Z"},
    {"type": "memory", "id": "mem1", "consumer_id": ALICE, "content": "Prefers email",
     "memory_type": "preference", "memory_layer": "fact", "confidence": 0.9,
     "created_at": "2025-06-01T00:00:00Z"},
    {"type": "memory", "id": "mem2", "consumer_id": ANON, "content": "Asked about returns",
     "memory_type": "topic", "memory_layer": "episodic", "created_at": "2025-06-03T00:00:00Z"},
]
NEWEST_FIRST = [S[5], S[4], S[3], S[2], S[1]]


def sdk_for(server: Any, app: TestApp, **kwargs: Any) -> AsyncClient:
    """An AsyncClient that talks to the in-process app with the test app's key."""
    transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
    return AsyncClient("http://testserver", app.key, app.id, transport=transport, **kwargs)


@pytest.fixture
async def app(server: Any) -> TestApp:
    return await make_app(server, RECORDS)


@pytest.fixture
async def sdk(server: Any, app: TestApp) -> Any:
    async with sdk_for(server, app) as client:
        yield client


async def test_sessions_list_yields_every_session_across_pages(sdk: AsyncClient) -> None:
    sessions = [s async for s in sdk.sessions.list(limit=2)]
    assert [str(s.id) for s in sessions] == NEWEST_FIRST
    assert all(isinstance(s, Session) for s in sessions)


async def test_sessions_list_pages_and_first_pagination(sdk: AsyncClient) -> None:
    page = await sdk.sessions.list(limit=2)
    assert isinstance(page.pagination, CursorPagination)
    assert page.pagination.has_more and page.pagination.limit == 2 and page.pagination.next_cursor
    sizes = [len(p.data) async for p in page.pages()]
    assert sizes == [2, 2, 1]


async def test_sessions_list_filters(sdk: AsyncClient) -> None:
    widget = [str(s.id) async for s in sdk.sessions.list(source=Source.WIDGET)]
    assert widget == [S[3], S[2]]
    after = [str(s.id) async for s in sdk.sessions.list(started_after=datetime(2025, 6, 3, 10, tzinfo=UTC))]
    assert after == [S[5], S[4]]
    alice = [str(s.id) async for s in sdk.sessions.list(consumer_id=uuid.UUID(ALICE), search="50%")]
    assert alice == [S[4]]


async def test_sessions_get_is_typed_with_aware_timestamps(sdk: AsyncClient) -> None:
    session = await sdk.sessions.get(S[1])
    assert session.title == "Billing question" and session.source is Source.APP
    assert session.consumer is not None and session.consumer.email == "alice@example.com"
    assert session.message_count == 3
    assert session.started_at == datetime(2025, 6, 1, 10, tzinfo=UTC)


async def test_sessions_get_unknown_raises_not_found(sdk: AsyncClient) -> None:
    with pytest.raises(NotFound) as caught:
        await sdk.sessions.get(uuid.uuid4())
    assert (caught.value.status, caught.value.code, caught.value.message) == (404, "not_found",
                                                                              "Session not found")


async def test_sessions_messages_walks_every_message_with_tool_details(sdk: AsyncClient) -> None:
    messages = [m async for m in sdk.sessions.messages(S[1], limit=1, include="tool_details")]
    assert [m.id for m in messages] == ["s1-m1", "s1-m2", "s1-m3"]
    assert all(isinstance(m, Message) for m in messages)
    reply = messages[1]
    assert reply.model == "gpt-4o" and reply.token_count == 40
    assert reply.created_at == datetime(2025, 6, 1, 10, 0, 6, 500000, tzinfo=UTC)
    assert reply.tool_calls is not None and reply.tool_calls[0].tool_name == "lookup_invoice"
    assert reply.tool_results is not None and reply.tool_results[0].result == '{"total":42}'  # as its JSON text
    assert [t.name for t in reply.tags] == ["billing"]
    assert reply.feedback is not None and reply.feedback.rating == -1


async def test_sessions_messages_role_filter(sdk: AsyncClient) -> None:
    assert [m.id async for m in sdk.sessions.messages(S[1], role="assistant")] == ["s1-m2"]


async def test_sessions_messages_of_an_unknown_session_raise_not_found(sdk: AsyncClient) -> None:
    with pytest.raises(NotFound, match="Session not found"):
        [m async for m in sdk.sessions.messages(uuid.uuid4())]


async def test_consumers_list_and_get(sdk: AsyncClient) -> None:
    page = await sdk.consumers.list(limit=1)
    assert isinstance(page.pagination, OffsetPagination) and page.pagination.total == 2
    everyone = [c async for c in page]
    assert [str(c.id) for c in everyone] == [ANON, ALICE]
    assert all(isinstance(c, Consumer) for c in everyone)
    with_email = [str(c.id) async for c in sdk.consumers.list(has_email=True)]
    assert with_email == [ALICE]
    alice = await sdk.consumers.get(ALICE)
    assert alice.name == "Alice" and alice.created_at.tzinfo is not None
    with pytest.raises(NotFound, match="Consumer not found"):
        await sdk.consumers.get(uuid.uuid4())


async def test_feedback_list(sdk: AsyncClient) -> None:
    negative = await sdk.feedback.list(rating=-1)
    assert negative.pagination.total == 1
    assert [f.message_preview for f in negative.data] == ["Let me check"]
    every = [f async for f in sdk.feedback.list(limit=1)]
    assert [f.id for f in every] == ["f2", "f1"] and all(isinstance(f, Feedback) for f in every)


async def test_tags_list(sdk: AsyncClient) -> None:
    tags = [t async for t in sdk.tags.list()]
    assert [(t.name, t.usage_count) for t in tags] == [("billing", 1)]
    assert isinstance(tags[0], Tag) and (await sdk.tags.list()).pagination is None


async def test_knowledge_sources_list(sdk: AsyncClient) -> None:
    failed = [k async for k in sdk.knowledge_sources.list(status="failed")]
    assert [(k.id, k.error_message) for k in failed] == [("k2", "Could not parse")]
    every = [k async for k in sdk.knowledge_sources.list(limit=1)]
    assert [k.id for k in every] == ["k2", "k1"] and all(isinstance(k, KnowledgeSource) for k in every)


async def test_memories_list(sdk: AsyncClient) -> None:
    alice = [m async for m in sdk.memories.list(consumer_id=ALICE)]
    assert [(m.id, m.confidence) for m in alice] == [("mem1", 0.9)]
    every = [m async for m in sdk.memories.list(limit=1, memory_layer="episodic")]
    assert [m.id for m in every] == ["mem2"] and all(isinstance(m, Memory) for m in every)


async def test_analytics_usage(sdk: AsyncClient) -> None:
    usage = await sdk.analytics.usage(group_by="month")
    summary = usage.summary
    assert (summary.total_sessions, summary.unique_consumers, summary.total_messages) == (5, 2, 4)
    assert [p.period for p in usage.timeseries] == ["2025-06-01T00:00:00.000Z"]
    daily = await sdk.analytics.usage(started_after="2025-06-02",
                                      started_before=datetime(2025, 6, 4, tzinfo=UTC))
    assert [(p.session_count, p.message_count) for p in daily.timeseries] == [(1, 1), (1, 0)]


async def test_analytics_token_usage(sdk: AsyncClient) -> None:
    tokens = await sdk.analytics.token_usage()
    assert tokens.summary.total_tokens == 50 and tokens.summary.message_count == 4
    assert [(m.model, m.total_tokens) for m in tokens.by_model] == [("gpt-4o", 40), ("claude", 10), (None, 0)]


async def test_a_bad_filter_value_raises_invalid_request(sdk: AsyncClient) -> None:
    with pytest.raises(InvalidRequest, match="limit must be an integer between 1 and 100"):
        await sdk.sessions.list(limit=500)


async def test_a_malformed_key_raises_unauthorized(server: Any, app: TestApp) -> None:
    async with AsyncClient("http://testserver", "chipp_nope", app.id,
                           transport=httpx.ASGITransport(app=server)) as client:
        with pytest.raises(Unauthorized, match="Invalid API key format"):
            await client.tags.list()


async def test_another_apps_id_raises_forbidden(server: Any, app: TestApp) -> None:
    other = await make_app(server, name="Other")
    async with AsyncClient("http://testserver", other.key, app.id,
                           transport=httpx.ASGITransport(app=server)) as client:
        with pytest.raises(Forbidden, match="API key does not match application"):
            await client.sessions.get(S[1])


async def test_a_missing_scope_raises_forbidden(server: Any) -> None:
    limited = await make_app(server, scopes={"analytics": "none"})
    async with sdk_for(server, limited) as client:
        with pytest.raises(Forbidden) as caught:
            await client.analytics.usage()
    assert caught.value.status == 403 and "analytics" in caught.value.message


async def test_rate_limit_waits_retry_after_then_says_how_long(database_url: str) -> None:
    server = create_app(Settings(database_url=database_url, rate_limit=2))
    try:
        app = await make_app(server)
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        async with sdk_for(server, app, sleep=sleep, max_retries=2) as client:
            await client.tags.list()
            await client.tags.list()
            with pytest.raises(RateLimited) as caught:
                await client.tags.list()
        assert 1 <= caught.value.retry_after <= 60
        assert f"retry after {caught.value.retry_after} s" in str(caught.value)
        assert len(sleeps) == 2 and all(1 <= s <= 60 for s in sleeps)
    finally:
        await server.state.limiter.counter.close()
        await server.state.engine.dispose()


@pytest.fixture
async def writer(server: Any) -> Any:
    """An AsyncClient whose key may write sessions, feedback and consumers."""
    scopes = {"sessions": "write", "feedback": "write", "consumers": "write"}
    app = await make_app(server, RECORDS, scopes=scopes)
    async with sdk_for(server, app) as client:
        yield client


async def test_conversations_log_creates_a_session(writer: AsyncClient) -> None:
    logged = await writer.conversations.log(
        [{"role": "user", "content": "Where is my parcel?",
          "created_at": datetime(2025, 6, 10, 12, tzinfo=UTC)},
         {"role": "assistant", "content": "On its way", "model": "gpt-4o", "token_count": 12}],
        consumer={"email": "bob@example.com", "name": "Bob"}, title="Parcel", source=Source.WIDGET,
    )
    assert len(logged.message_ids) == 2 and logged.consumer_id is not None
    session = await writer.sessions.get(logged.session_id)
    assert (session.title, session.source, session.message_count) == ("Parcel", Source.WIDGET, 2)
    assert session.consumer is not None and session.consumer.email == "bob@example.com"
    messages = [m async for m in writer.sessions.messages(logged.session_id)]
    assert [m.content for m in messages] == ["Where is my parcel?", "On its way"]
    assert messages[0].created_at == datetime(2025, 6, 10, 12, tzinfo=UTC)


async def test_conversations_log_appends_to_a_session(writer: AsyncClient) -> None:
    logged = await writer.conversations.log([{"role": "user", "content": "One more thing"}], session_id=S[2])
    assert str(logged.session_id) == S[2]
    assert (await writer.sessions.get(S[2])).message_count == 2


async def test_conversations_log_retried_with_its_key_writes_once(writer: AsyncClient) -> None:
    first = await writer.conversations.log([{"role": "user", "content": "once"}], idempotency_key="job-1")
    again = await writer.conversations.log([{"role": "user", "content": "once"}], idempotency_key="job-1")
    assert again == first
    assert (await writer.sessions.get(first.session_id)).message_count == 1


async def test_conversations_log_invalid_message_raises_invalid_request(writer: AsyncClient) -> None:
    with pytest.raises(InvalidRequest, match=r"messages\[1\]\.role"):
        await writer.conversations.log([{"role": "user", "content": "ok"},
                                        {"role": "robot", "content": "no"}])


async def test_conversations_log_to_an_unknown_session_raises_not_found(writer: AsyncClient) -> None:
    with pytest.raises(NotFound, match="Session not found"):
        await writer.conversations.log([{"role": "user", "content": "hi"}], session_id=uuid.uuid4())


async def test_feedback_create_rates_a_message(writer: AsyncClient) -> None:
    rated = await writer.feedback.create("s1-m3", 1, consumer_id=ALICE)
    assert (rated.message_id, rated.rating, str(rated.consumer_id)) == ("s1-m3", 1, ALICE)
    assert rated.created_at.tzinfo is not None
    replaced = await writer.feedback.create("s1-m3", -1, consumer_id=ALICE)
    assert replaced.rating == -1
    with pytest.raises(NotFound):
        await writer.feedback.create("no-such-message", 1)


async def test_consumers_auth_finds_or_creates_and_issues_a_token(writer: AsyncClient) -> None:
    created = await writer.consumers.auth(external_id="site-user-7", email="carol@example.com", name="Carol")
    assert created.token and created.expires_at > datetime.now(UTC)
    assert created.consumer.email == "carol@example.com"
    found = await writer.consumers.auth(email="carol@example.com")
    assert found.consumer.id == created.consumer.id


async def test_writing_without_the_scope_raises_forbidden(sdk: AsyncClient) -> None:
    with pytest.raises(Forbidden, match="write"):
        await sdk.conversations.log([{"role": "user", "content": "hi"}])
