"""The MCP tool list (SPEC section 15) as an agent sees it, through the MCP SDK's in-memory client: names,
descriptions, input and output schemas and annotations, equal to the committed mcp_tools.json (regenerate
with UPDATE_SNAPSHOT=1), every tool read-only, every list with `limit` and `cursor`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from chipp_builder.mcp_server.tools import build_server, fixed_client

SNAPSHOT = Path(__file__).with_name("mcp_tools.json")
TOOLS = [
    "list_sessions", "get_transcript", "search_messages", "list_feedback", "list_consumers", "get_consumer",
    "get_usage", "get_token_usage", "list_tags", "list_knowledge_sources", "list_events",
]
LISTS = [name for name in TOOLS if name.startswith(("list_", "search_")) or name == "get_transcript"]


@pytest.fixture
async def listed() -> list[dict[str, Any]]:
    # No API is reached: listing the tools calls none.
    async with Client(build_server(fixed_client(None))) as client:  # type: ignore[arg-type]  # never called
        tools = (await client.list_tools()).tools
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]


async def test_the_tool_list_matches_the_committed_snapshot(listed: list[dict[str, Any]]) -> None:
    rendered = json.dumps(listed, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(rendered, encoding="utf-8")
    assert SNAPSHOT.exists(), "no snapshot yet: run this test with UPDATE_SNAPSHOT=1 and commit mcp_tools.json"
    assert json.loads(SNAPSHOT.read_text(encoding="utf-8")) == listed, (
        "the MCP tools changed: review the difference, then run with UPDATE_SNAPSHOT=1"
    )


async def test_the_tools_are_the_spec_list_all_read_only(listed: list[dict[str, Any]]) -> None:
    assert [tool["name"] for tool in listed] == TOOLS
    for tool in listed:
        assert tool["annotations"] == {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True,
                                       "openWorldHint": False}, tool["name"]
        assert tool["description"] and tool["outputSchema"]["type"] == "object", tool["name"]


async def test_every_list_takes_limit_and_cursor(listed: list[dict[str, Any]]) -> None:
    by_name = {tool["name"]: tool for tool in listed}
    for name in LISTS:
        properties = by_name[name]["inputSchema"]["properties"]
        assert {"limit", "cursor"} <= set(properties), name
        assert properties["limit"]["minimum"] == 1, name
        assert "next_cursor" in by_name[name]["outputSchema"]["properties"], name
