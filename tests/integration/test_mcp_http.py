"""/mcp over Streamable HTTP (SPEC section 15), in-process with the app's lifespan running, through the MCP
SDK's own HTTP client: the key is checked at the door (401 in the envelope), and each tool call reaches the
API with the request's key, so another app's key, a missing scope and the rate limit give the API's errors
as tool errors, never data."""

from __future__ import annotations

import time as real_time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from chipp_builder.server import ratelimit
from chipp_builder.server.app import create_app
from chipp_builder.server.auth import generate_key
from chipp_builder.server.config import Settings
from chipp_builder.server.resources.apps import queries as apps
from chipp_builder.server.resources.tags import queries as tag_queries
from tests.factories import assert_error, make_app, message_record, session_record, uid

S1 = uid(1, 1)
RECORDS = [
    session_record(S1, "2025-06-01T10:00:00Z", title="Billing"),
    message_record("m1", S1, "2025-06-01T10:00:01Z", content="My invoice"),
]
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@asynccontextmanager
async def running(database_url: str, **settings: Any) -> AsyncIterator[Any]:
    """The app with its lifespan entered, as `serve` runs it (entered in the test's own task: the MCP
    handler's task group must be left in the task that entered it)."""
    settings.setdefault("rate_limit", 100_000)
    app = create_app(Settings(database_url=database_url, mcp_allowed_hosts="testserver", **settings))
    async with app.router.lifespan_context(app):
        yield app


def http_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def call(app: Any, key: str, name: str, arguments: dict[str, Any] | None = None,
               query: str = "") -> CallToolResult:
    """One tool call through the MCP SDK's Streamable HTTP client with `key` (a session per call)."""
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), headers={"Authorization": f"Bearer {key}"})
    async with http, Client(streamable_http_client(f"http://testserver/mcp{query}", http_client=http)) as client:
        return await client.call_tool(name, arguments or {})


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    assert result.structured_content is None
    block = result.content[0]
    assert block.type == "text"
    return block.text


async def test_without_a_valid_key_the_door_answers_401_in_the_envelope(database_url: str) -> None:
    async with running(database_url) as app, http_for(app) as http:
        assert_error(await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS), 401, "unauthorized",
                     "Missing or invalid Authorization header")
        bad_format = {**MCP_HEADERS, "Authorization": "Bearer chipp_short"}
        assert_error(await http.post("/mcp", json=INITIALIZE, headers=bad_format), 401, "unauthorized",
                     "Invalid API key format")
        unknown = {**MCP_HEADERS, "Authorization": f"Bearer {generate_key()}"}
        response = await http.post("/mcp", json=INITIALIZE, headers=unknown)
        assert_error(response, 401, "unauthorized", "Invalid API key")
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(await http.get("/mcp"), 401, "unauthorized")


async def test_a_valid_key_lists_the_tools_and_reads_its_apps_data(database_url: str) -> None:
    async with running(database_url) as app, http_for(app) as http:
        owner = await make_app(app, RECORDS)
        key_http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app),
                                      headers={"Authorization": f"Bearer {owner.key}"})
        async with key_http, Client(streamable_http_client("http://testserver/mcp", http_client=key_http),
                                    mode="legacy") as client:
            assert client.server_info is not None and client.server_info.name == "chipp-builder"
            tools = (await client.list_tools()).tools
            assert len(tools) == 11 and all(t.annotations and t.annotations.read_only_hint for t in tools)
            result = await client.call_tool("list_sessions", {})
        expected = (await http.get(f"{owner.base}/sessions", headers=owner.headers)).json()["data"]
        assert result.structured_content is not None and result.structured_content["sessions"] == expected
        assert [s["id"] for s in expected] == [S1]


async def test_another_apps_key_gets_the_apis_errors_never_data(database_url: str) -> None:
    async with running(database_url) as app:
        owner = await make_app(app, RECORDS)
        other = await make_app(app, name="Other app")
        # Naming this app with the other app's key: the API's 403 on every tool call.
        named = await call(app, other.key, "list_sessions", query=f"?app={owner.id}")
        assert error_text(named) == "API key does not match application"
        transcript = await call(app, other.key, "get_transcript", {"session_id": S1}, query=f"?app={owner.id}")
        assert error_text(transcript) == "API key does not match application"
        # Without ?app= the key reads its own app: not this app's session.
        assert error_text(await call(app, other.key, "get_transcript", {"session_id": S1})) == "Session not found"
        own = await call(app, other.key, "list_sessions")
        assert own.structured_content is not None and own.structured_content["sessions"] == []
        async with http_for(app) as http:
            headers = {**MCP_HEADERS, "Authorization": f"Bearer {other.key}"}
            assert_error(await http.post("/mcp?app=not-a-uuid", json=INITIALIZE, headers=headers), 403,
                         "forbidden", "API key does not match application")


async def test_a_key_without_sessions_read_cannot_read_transcripts(database_url: str) -> None:
    async with running(database_url) as app:
        owner = await make_app(app, RECORDS)
        no_sessions = await make_app(app, scopes={"sessions": "none"})
        async with app.state.engine.begin() as db:
            key = (await apps.create_key(db, owner.id, "no sessions", {"sessions": "none"}, None))["rawKey"]
        for tool, arguments in [("get_transcript", {"session_id": S1}), ("list_sessions", {})]:
            assert error_text(await call(app, key, tool, arguments)) == "API key lacks read access to sessions"
        assert not (await call(app, key, "list_tags")).is_error
        assert not (await call(app, no_sessions.key, "get_usage")).is_error


class Clock:
    """A fixed `time()` for the limiter, so the test's requests fall in one window."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(real_time, name)


async def test_the_keys_rate_limit_applies_to_tool_calls(database_url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "time", Clock(1_750_000_020 + 30.4))
    async with running(database_url, rate_limit=3) as app:
        owner = await make_app(app, RECORDS)
        for _ in range(3):
            assert not (await call(app, owner.key, "list_tags")).is_error
        assert error_text(await call(app, owner.key, "list_tags")) == "Rate limit exceeded (retry after 30 s)"
        # The same key over REST is limited by the same count.
        async with http_for(app) as http:
            assert_error(await http.get(f"{owner.base}/tags", headers=owner.headers), 429, "rate_limited")


async def test_a_host_not_allowed_is_refused(database_url: str) -> None:
    async with running(database_url) as app, http_for(app) as http:
        owner = await make_app(app)
        headers = {**MCP_HEADERS, **owner.headers}
        assert (await http.post("/mcp", json=INITIALIZE, headers=headers)).status_code == 200
        rebound = await http.post("/mcp", json=INITIALIZE, headers={**headers, "Host": "evil.example"})
        assert rebound.status_code == 421
    default = create_app(Settings(database_url=database_url))
    async with default.router.lifespan_context(default), http_for(default) as http:
        owner = await make_app(default)
        headers = {**MCP_HEADERS, **owner.headers}
        assert (await http.post("/mcp", json=INITIALIZE, headers=headers)).status_code == 421  # testserver
        local = await http.post("/mcp", json=INITIALIZE, headers={**headers, "Host": "127.0.0.1:8000"})
        assert local.status_code == 200


async def test_mcp_before_the_lifespan_is_a_503_and_stays_out_of_the_api_document(server: Any) -> None:
    owner = await make_app(server)
    async with http_for(server) as http:
        response = await http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **owner.headers})
        assert_error(response, 503, "service_unavailable", "The MCP endpoint is not running")
        assert_error(await http.get("/mcp/", headers=owner.headers), 404, "not_found")
    assert not any(path.startswith("/mcp") for path in server.openapi()["paths"])


async def test_a_fault_inside_the_api_is_its_500_as_a_tool_error(database_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(tag_queries, "list_tags", broken)
    async with running(database_url) as app:
        owner = await make_app(app)
        assert error_text(await call(app, owner.key, "list_tags")) == "Internal server error"
        assert not (await call(app, owner.key, "list_sessions")).is_error  # and the endpoint goes on
