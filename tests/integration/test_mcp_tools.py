"""The MCP tools (SPEC section 15) through the MCP SDK's in-memory client, against a seeded database: each
tool's structured result is the REST API's answer to the same question, cursors round-trip, long text is cut
and says so, and API errors are tool errors carrying the API's message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult

from chipp_builder.client import AsyncClient
from chipp_builder.mcp_server.support import offset_cursor
from chipp_builder.mcp_server.tools import build_server, fixed_client
from tests.factories import (
    TestApp,
    consumer_record,
    feedback_record,
    get,
    knowledge_source_record,
    make_app,
    memory_record,
    message_record,
    message_tag_record,
    session_record,
    tag_record,
    uid,
)

ALICE, BOB = uid(2, 1), uid(2, 2)
S1, S2, S3 = uid(1, 1), uid(1, 2), uid(1, 3)
TAG1, TAG2 = uid(3, 1), uid(3, 2)
LONG = "word " * 1000  # 5,000 characters
TOOL_CALLS = [{"tool_name": "lookup_order", "status": "success"}]
TOOL_RESULTS = [{"tool_name": "lookup_order", "result": "x" * 3000}]


def records() -> list[dict[str, Any]]:
    """One app's worth: two consumers, three sessions, messages (one long, one with tool details), tags,
    ratings, knowledge sources and memories."""
    out: list[dict[str, Any]] = [
        consumer_record(ALICE, "alice@example.com", "2025-05-01T00:00:00Z", email="alice@example.com",
                        name="Alice"),
        consumer_record(BOB, "anon_bob", "2025-05-02T00:00:00Z", is_anonymous=True),
        session_record(S1, "2025-06-01T10:00:00Z", title="Billing question", consumer_id=ALICE),
        session_record(S2, "2025-06-02T10:00:00Z", title="Shipping", source="WIDGET", consumer_id=BOB),
        session_record(S3, "2025-06-03T10:00:00Z", title="Returns", source="API"),
        tag_record(TAG1, "billing", "#ef4444", "2025-05-01T00:00:00Z"),
        tag_record(TAG2, "urgent", "#22c55e", "2025-05-02T00:00:00Z"),
        knowledge_source_record("k1", "Help center", "url", "completed", "2025-05-01T00:00:00Z",
                                url="https://example.com/help"),
        knowledge_source_record("k2", "Pricing.pdf", "file", "failed", "2025-05-02T00:00:00Z",
                                error_message="Could not parse"),
        memory_record("mem1", "Prefers email", "2025-06-01T00:00:00Z", memory_type="preference",
                      consumer_id=ALICE),
        memory_record("mem2", "Has a business plan", "2025-06-02T00:00:00Z", consumer_id=ALICE),
    ]
    for n in range(7):
        out.append(message_record(f"m1-{n}", S1, f"2025-06-01T10:00:0{n}Z", role="user" if n % 2 == 0 else
                                  "assistant", content=f"billing message {n}",
                                  **({"model": "gpt-4o", "token_count": 10 + n} if n % 2 else {})))
    out += [
        message_record("m2-0", S2, "2025-06-02T10:00:01Z", content=LONG),
        message_record("m2-1", S2, "2025-06-02T10:00:02Z", role="assistant", content="Let me check",
                       model="claude", token_count=99, tool_calls=TOOL_CALLS, tool_results=TOOL_RESULTS),
        message_tag_record("m1-1", TAG1),
        message_tag_record("m1-1", TAG2),
        message_tag_record("m2-1", TAG2),
        feedback_record("f1", "m1-1", S1, 1, "2025-06-01T11:00:00Z"),
        feedback_record("f2", "m1-3", S1, -1, "2025-06-01T11:01:00Z"),
        feedback_record("f3", "m2-1", S2, 0, "2025-06-02T11:00:00Z"),
    ]
    return out


@pytest.fixture
async def app(server: Any) -> TestApp:
    return await make_app(server, records())


@dataclass
class Tools:
    """The MCP server over an SDK client with one app's key, called through the MCP SDK's in-memory client
    (a connection per call: the client's task group must open and close in the test's own task)."""

    server: MCPServer[Any]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        async with Client(self.server) as client:
            return await client.call_tool(name, arguments)


@asynccontextmanager
async def tools_for(server: Any, app: TestApp) -> AsyncIterator[Tools]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server)) as http:
        sdk = AsyncClient("http://testserver", app.key, app.id, http_client=http, max_retries=0)
        yield Tools(build_server(fixed_client(sdk)))


@pytest.fixture
async def mcp(server: Any, app: TestApp) -> AsyncIterator[Tools]:
    async with tools_for(server, app) as tools:
        yield tools


async def call(client: Tools, name: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content."""
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.content and result.content[0].type == "text" and result.content[0].text
    return result.structured_content


async def error_of(client: Tools, name: str, **arguments: Any) -> str:
    """Call a tool that must fail; the text of its tool error."""
    result: CallToolResult = await client.call_tool(name, arguments)
    assert result.is_error, result.structured_content
    assert result.structured_content is None
    text = result.content[0]
    assert text.type == "text"
    return text.text


async def rest(api: httpx.AsyncClient, app: TestApp, path: str, params: Any = None) -> Any:
    response = await get(api, app, path, params)
    assert response.status_code == 200, response.text
    return response.json()


# --- each tool equals the REST API -------------------------------------------------------------------------


async def test_list_sessions_is_the_sessions_page(mcp: Tools, api: httpx.AsyncClient, app: TestApp) -> None:
    got = await call(mcp, "list_sessions", limit=2)
    body = await rest(api, app, "/sessions", {"limit": 2})
    assert got["sessions"] == body["data"]
    assert (got["has_more"], got["next_cursor"]) == (True, body["pagination"]["next_cursor"])
    filtered = await call(mcp, "list_sessions", source="WIDGET", search="ship")
    assert [s["id"] for s in filtered["sessions"]] == [S2]
    assert filtered["sessions"] == (await rest(api, app, "/sessions", {"source": "WIDGET", "search": "ship"}))["data"]


async def test_list_sessions_cursor_walks_every_session_once(mcp: Tools, api: httpx.AsyncClient,
                                                              app: TestApp) -> None:
    seen, cursor = [], None
    for _ in range(5):
        page = await call(mcp, "list_sessions", limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [s["id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [S3, S2, S1]
    assert seen == [s["id"] for s in (await rest(api, app, "/sessions"))["data"]]


async def test_get_transcript_is_the_session_and_its_messages_with_tool_details(
    mcp: Tools, api: httpx.AsyncClient, app: TestApp
) -> None:
    got = await call(mcp, "get_transcript", session_id=S1, limit=4)
    assert got["session"] == (await rest(api, app, f"/sessions/{S1}"))["data"]
    body = await rest(api, app, f"/sessions/{S1}/messages", {"limit": 4, "include": "tool_details"})
    flags = {"content_truncated": False, "tool_results_truncated": False}
    assert got["messages"] == [{**m, **flags, "content_length": len(m["content"])} for m in body["data"]]
    m1 = next(m for m in got["messages"] if m["id"] == "m1-1")
    assert [t["name"] for t in m1["tags"]] == ["billing", "urgent"] and m1["feedback"]["rating"] == 1
    rest_page = await call(mcp, "get_transcript", session_id=S1, limit=4, cursor=got["next_cursor"])
    assert [m["id"] for m in got["messages"] + rest_page["messages"]] == [f"m1-{n}" for n in range(7)]
    assert rest_page["has_more"] is False and rest_page["next_cursor"] is None


async def test_get_transcript_cuts_long_text_and_says_so(mcp: Tools, api: httpx.AsyncClient,
                                                          app: TestApp) -> None:
    result = await mcp.call_tool("get_transcript", {"session_id": S2, "max_content_chars": 1000})
    got = result.structured_content
    assert got is not None
    long, tool = got["messages"]
    assert (len(long["content"]), long["content_truncated"], long["content_length"]) == (1000, True, len(LONG))
    assert long["content"] == LONG[:1000]
    assert tool["content_truncated"] is False and tool["tool_results_truncated"] is True
    assert tool["tool_calls"] == TOOL_CALLS
    assert tool["tool_results"] == [{"tool_name": "lookup_order", "result": "x" * 1000}]
    assert result.content[0].type == "text" and "2 cut to 1000 characters" in result.content[0].text
    # The default cut (2,000) applies without the argument.
    default = await call(mcp, "get_transcript", session_id=S2)
    assert len(default["messages"][0]["content"]) == 2000


async def test_list_feedback_is_the_feedback_page_and_its_cursor_round_trips(
    mcp: Tools, api: httpx.AsyncClient, app: TestApp
) -> None:
    first = await call(mcp, "list_feedback", limit=2)
    body = await rest(api, app, "/feedback", {"limit": 2})
    assert first["feedback"] == body["data"] and first["total"] == 3 and first["has_more"] is True
    second = await call(mcp, "list_feedback", limit=2, cursor=first["next_cursor"])
    assert second["feedback"] == (await rest(api, app, "/feedback", {"limit": 2, "offset": 2}))["data"]
    assert second["has_more"] is False and second["next_cursor"] is None
    negative = await call(mcp, "list_feedback", rating=-1)
    assert negative["feedback"] == (await rest(api, app, "/feedback", {"rating": -1}))["data"]
    assert [f["id"] for f in negative["feedback"]] == ["f2"]


async def test_list_consumers_is_the_consumers_page(mcp: Tools, api: httpx.AsyncClient, app: TestApp) -> None:
    got = await call(mcp, "list_consumers", limit=1)
    assert got["consumers"] == (await rest(api, app, "/consumers", {"limit": 1}))["data"]
    assert got["total"] == 2
    second = await call(mcp, "list_consumers", limit=1, cursor=got["next_cursor"])
    assert second["consumers"] == (await rest(api, app, "/consumers", {"limit": 1, "offset": 1}))["data"]
    with_email = await call(mcp, "list_consumers", has_email=True)
    assert [c["id"] for c in with_email["consumers"]] == [ALICE]


async def test_get_consumer_has_the_consumer_and_its_memories(mcp: Tools, api: httpx.AsyncClient,
                                                              app: TestApp) -> None:
    got = await call(mcp, "get_consumer", consumer_id=ALICE)
    assert got["consumer"] == (await rest(api, app, f"/consumers/{ALICE}"))["data"]
    assert got["memories"] == (await rest(api, app, "/memories", {"consumer_id": ALICE}))["data"]
    assert [m["id"] for m in got["memories"]] == ["mem2", "mem1"] and got["memories_total"] == 2
    one = await call(mcp, "get_consumer", consumer_id=ALICE, memory_limit=1)
    assert len(one["memories"]) == 1 and one["memories_total"] == 2


@pytest.mark.parametrize(("tool", "path"), [("get_usage", "/analytics/usage"),
                                             ("get_token_usage", "/analytics/token-usage")])
async def test_analytics_tools_are_the_analytics(mcp: Tools, api: httpx.AsyncClient, app: TestApp, tool: str,
                                                 path: str) -> None:
    assert await call(mcp, tool) == (await rest(api, app, path))["data"]
    params = {"started_after": "2025-06-01", "started_before": "2025-06-03T00:00:00Z", "group_by": "week"}
    assert await call(mcp, tool, **params) == (await rest(api, app, path, params))["data"]


async def test_list_tags_is_the_tags_list_in_pages(mcp: Tools, api: httpx.AsyncClient, app: TestApp) -> None:
    every = (await rest(api, app, "/tags"))["data"]
    got = await call(mcp, "list_tags")
    assert got["tags"] == every and got["total"] == 2 and got["next_cursor"] is None
    first = await call(mcp, "list_tags", limit=1)
    second = await call(mcp, "list_tags", limit=1, cursor=first["next_cursor"])
    assert first["tags"] + second["tags"] == every and second["has_more"] is False


async def test_list_knowledge_sources_is_the_knowledge_sources_page(mcp: Tools, api: httpx.AsyncClient,
                                                                    app: TestApp) -> None:
    got = await call(mcp, "list_knowledge_sources")
    assert got["knowledge_sources"] == (await rest(api, app, "/knowledge-sources"))["data"]
    failed = await call(mcp, "list_knowledge_sources", status="failed")
    assert failed["knowledge_sources"] == (await rest(api, app, "/knowledge-sources", {"status": "failed"}))["data"]
    assert [k["id"] for k in failed["knowledge_sources"]] == ["k2"]
    assert (await call(mcp, "list_knowledge_sources", type="url"))["total"] == 1


# --- Part two on a server that lacks it; errors ---------------------------------------------------------------


async def _has_route(api: httpx.AsyncClient, app: TestApp, path: str) -> bool:
    response = await get(api, app, path)
    return response.status_code != 404


async def test_search_messages_matches_the_messages_endpoint_or_says_the_server_lacks_it(
    mcp: Tools, api: httpx.AsyncClient, app: TestApp
) -> None:
    if not await _has_route(api, app, "/messages"):
        text = await error_of(mcp, "search_messages", q="billing")
        assert text.startswith("This server lacks message search (GET /messages")
        return
    got = await call(mcp, "search_messages", q="billing", limit=3)
    body = await rest(api, app, "/messages", {"q": "billing", "limit": 3, "include": "tool_details"})
    assert [m["id"] for m in got["messages"]] == [m["id"] for m in body["data"]]
    assert [m["snippet"] for m in got["messages"]] == [m["snippet"] for m in body["data"]]


async def test_list_events_matches_the_feed_or_says_the_server_lacks_it(
    mcp: Tools, api: httpx.AsyncClient, app: TestApp
) -> None:
    if not await _has_route(api, app, "/events"):
        text = await error_of(mcp, "list_events")
        assert text.startswith("This server lacks the event feed (GET /events")
        return
    got = await call(mcp, "list_events", limit=5)
    body = await rest(api, app, "/events", {"limit": 5})
    assert got["events"] == body["data"] and got["next_cursor"] == body["pagination"]["next_cursor"]


async def test_an_api_error_is_a_tool_error_with_the_apis_message(mcp: Tools, api: httpx.AsyncClient,
                                                                  app: TestApp) -> None:
    assert await error_of(mcp, "get_transcript", session_id=uid(9, 9)) == "Session not found"
    assert await error_of(mcp, "get_consumer", consumer_id=uid(9, 9)) == "Consumer not found"
    response = await get(api, app, "/sessions", {"started_after": "not a time"})
    assert response.status_code == 400
    assert await error_of(mcp, "list_sessions", started_after="not a time") == response.json()["error"]["message"]


async def test_bad_arguments_and_cursors_are_tool_errors(mcp: Tools) -> None:
    assert "limit" in await error_of(mcp, "list_sessions", limit=101)
    assert "source" in await error_of(mcp, "list_sessions", source="FAX")
    assert await error_of(mcp, "list_feedback", cursor="nonsense!") == (
        "Invalid cursor: pass a `next_cursor` this tool returned")
    assert await error_of(mcp, "list_sessions", cursor="nonsense") == "Invalid cursor"
    # An offset cursor past the end is an empty last page, not an error.
    assert (await call(mcp, "list_feedback", cursor=offset_cursor(50)))["feedback"] == []


async def test_a_key_without_a_scope_gets_the_apis_403_as_a_tool_error(server: Any, app: TestApp) -> None:
    limited = await make_app(server, scopes={"sessions": "none"})
    async with tools_for(server, limited) as client:
        assert await error_of(client, "list_sessions") == "API key lacks read access to sessions"
        assert await error_of(client, "get_transcript", session_id=S1) == "API key lacks read access to sessions"
        assert (await call(client, "list_tags"))["tags"] == []
