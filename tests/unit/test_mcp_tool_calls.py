"""The MCP tools against a stand-in API (httpx.MockTransport), for what the seeded server cannot show yet:
the Part-two endpoints (GET /messages, GET /events) as SPEC sections 11 and 13 give them, a 429, a server
that cannot be reached, and the tool-made cursors of offset lists."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from mcp import Client

from chipp_builder.client import AsyncClient
from chipp_builder.mcp_server.support import ToolFailure, offset_cursor, offset_of
from chipp_builder.mcp_server.tools import build_server, fixed_client

APP = "123e4567-e89b-12d3-a456-426614174000"
SESSION = "00000001-0000-4000-8000-000000000001"
MESSAGE: dict[str, Any] = {
    "id": "m1", "session_id": SESSION, "role": "user", "content": "a" * 300, "model": None, "token_count": None,
    "latency_ms": None, "audio_url": None, "audio_duration_ms": None, "tags": [], "feedback": None,
    "created_at": "2025-06-01T10:00:00Z", "tool_calls": None, "tool_results": None,
    "snippet": "<mark>refund</mark> please",
}
EVENT = {"id": "e1", "type": "message.created", "object_id": "m1", "session_id": SESSION,
         "occurred_at": "2025-06-01T10:00:00.250000Z"}


def _answer(request: httpx.Request) -> httpx.Response:
    path = request.url.path.removeprefix(f"/api/v1/apps/{APP}")
    if path == "/messages":
        return httpx.Response(200, json={"data": [MESSAGE], "pagination": {
            "has_more": True, "next_cursor": "next-messages", "limit": 1}})
    if path == "/events":
        return httpx.Response(200, json={"data": [EVENT], "pagination": {
            "has_more": False, "next_cursor": "feed-position-2", "limit": 100}})
    if path == "/tags":
        return httpx.Response(429, headers={"Retry-After": "17"},
                              json={"error": {"code": "rate_limited", "message": "Rate limit exceeded"}})
    return httpx.Response(404, json={"error": {"code": "not_found", "message": "Not found"}})


async def _call(name: str, arguments: dict[str, Any], handler: Any = _answer) -> tuple[Any, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    sdk = AsyncClient("http://api.test", "chipp_test", APP, transport=httpx.MockTransport(record), max_retries=0)
    async with sdk, Client(build_server(fixed_client(sdk))) as client:
        return await client.call_tool(name, arguments), seen


async def test_search_messages_sends_the_filters_and_cuts_the_hits() -> None:
    result, seen = await _call("search_messages", {"q": "refund", "role": "user", "rating": -1, "limit": 1,
                                                   "max_content_chars": 100})
    assert not result.is_error, result.content
    query = dict(seen[0].url.params)
    assert query == {"q": "refund", "role": "user", "rating": "-1", "limit": "1", "include": "tool_details"}
    hit = result.structured_content["messages"][0]
    assert (hit["content"], hit["content_truncated"], hit["content_length"]) == ("a" * 100, True, 300)
    assert hit["snippet"] == MESSAGE["snippet"]
    assert result.structured_content["next_cursor"] == "next-messages"


async def test_list_events_follows_the_feed_position() -> None:
    result, seen = await _call("list_events", {"cursor": "feed-position-1", "types": ["message.created",
                                                                                        "session.deleted"]})
    assert dict(seen[0].url.params) == {"after": "feed-position-1", "limit": "100",
                                        "types": "message.created,session.deleted"}
    assert result.structured_content == {"events": [EVENT], "has_more": False, "next_cursor": "feed-position-2"}
    assert "continue with cursor=feed-position-2" in result.content[0].text


async def test_a_server_without_part_two_says_so() -> None:
    def without(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "Not found"}})

    searched, _ = await _call("search_messages", {"q": "x"}, without)
    assert searched.is_error and searched.content[0].text.startswith("This server lacks message search")
    events, _ = await _call("list_events", {}, without)
    assert events.is_error and events.content[0].text.startswith("This server lacks the event feed")


async def test_a_429_is_a_tool_error_saying_when_to_retry() -> None:
    result, seen = await _call("list_tags", {})
    assert result.is_error and result.content[0].text == "Rate limit exceeded (retry after 17 s)"
    assert len(seen) == 1  # handed to the agent at once, not waited out


async def test_an_unreachable_server_is_a_tool_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result, _ = await _call("list_sessions", {}, refuse)
    assert result.is_error
    assert result.content[0].text.startswith("Cannot reach the Builder API: GET /sessions failed: ConnectError")


def test_offset_cursors_round_trip_and_refuse_anything_else() -> None:
    for offset in (0, 25, 999_975):
        assert offset_of(offset_cursor(offset)) == offset
    assert offset_of(None) == 0
    for bad in ("", "x", offset_cursor(-1), "eyJvZmZzZXQiOiAiMSJ9", json.dumps({"offset": 1}), "e30"):
        with pytest.raises(ToolFailure, match="Invalid cursor"):
            offset_of(bad)


def test_the_sync_client_sends_a_described_call_too() -> None:
    from chipp_builder.client import Client
    from chipp_builder.client._core import ListCall
    from chipp_builder.mcp_server.tools import _EventsEnvelope

    with Client("http://api.test", "chipp_test", APP, transport=httpx.MockTransport(_answer)) as client:
        page = client.send(ListCall("GET", "/events", _EventsEnvelope, {"limit": "1"}, kind="cursor"))
    assert page.pagination.next_cursor == "feed-position-2" and page.data[0].id == "e1"
