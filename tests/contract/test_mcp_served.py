"""The MCP server against a running server process (SPEC section 15): `chipp-builder mcp` spawned over stdio
by the MCP SDK's stdio client (initialize, tools/list, tools/call), its standard output nothing but
protocol; and /mcp of the served process itself over Streamable HTTP, its lifespan run by uvicorn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from typer.testing import CliRunner

from chipp_builder.cli.main import app as cli
from tests.contract import test_sdk_http
from tests.contract.test_sdk_http import S1, Served

served = test_sdk_http.served  # the served process (module-scoped), the SDK's HTTP tests' own

SCRIPT = Path(sys.executable).parent / "chipp-builder"


def _environment(served: Served, **extra: str) -> dict[str, str]:
    """The process's environment without a developer's own CHIPP_* settings, plus the given ones."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHIPP_")}
    return {**env, **extra}


def _stdio(served: Served) -> StdioServerParameters:
    env = _environment(served, CHIPP_BASE_URL=served.base_url, CHIPP_API_KEY=served.key,
                       CHIPP_APP_ID=str(served.app_id))
    return StdioServerParameters(command=str(SCRIPT), args=["mcp"], env=env)


def _rest(served: Served, path: str, params: dict[str, Any] | None = None) -> Any:
    response = httpx.get(f"{served.base_url}/api/v1/apps/{served.app_id}{path}", params=params,
                         headers={"Authorization": f"Bearer {served.key}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


async def test_stdio_initializes_lists_the_tools_and_calls_one(served: Served) -> None:
    async with Client(_stdio(served), mode="legacy", read_timeout_seconds=30) as client:
        assert client.server_info is not None and client.server_info.name == "chipp-builder"
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} >= {"list_sessions", "get_transcript", "list_events"}
        result = await client.call_tool("get_transcript", {"session_id": S1})
        missing = await client.call_tool("get_consumer", {"consumer_id": "123e4567-e89b-12d3-a456-426614174000"})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["session"] == _rest(served, f"/sessions/{S1}")["data"]
    messages = _rest(served, f"/sessions/{S1}/messages", {"limit": 50, "include": "tool_details"})["data"]
    assert [m["id"] for m in result.structured_content["messages"]] == [m["id"] for m in messages]
    assert missing.is_error and missing.content[0].type == "text" and missing.content[0].text == "Consumer not found"


def test_stdio_writes_nothing_but_protocol_to_standard_output(served: Served) -> None:
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "list_tags", "arguments": {}}},
    ]
    params = _stdio(served)
    process = subprocess.Popen([params.command, *params.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=params.env)
    assert process.stdin is not None and process.stdout is not None
    answers = []
    watchdog = threading.Timer(60, process.kill)  # a hung server fails the test instead of hanging it
    watchdog.start()
    try:
        for request in requests:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            if "id" in request:
                # Each answer before the next request (the server ends its in-flight calls when stdin closes).
                line = process.stdout.readline()
                answers.append(json.loads(line))  # a line that is not JSON-RPC fails here
    finally:
        process.stdin.close()
        rest = process.stdout.read()
        process.wait(timeout=30)
        watchdog.cancel()
    assert rest == "", rest  # and nothing after the last answer
    assert all(answer["jsonrpc"] == "2.0" for answer in answers)
    assert [answer["id"] for answer in answers] == [1, 2, 3]
    tags = next(a for a in answers if a.get("id") == 3)["result"]["structuredContent"]["tags"]
    assert tags == _rest(served, "/tags")["data"]


def test_mcp_without_settings_says_what_is_missing_on_standard_error() -> None:
    result = CliRunner().invoke(cli, ["mcp", "--base-url", "http://127.0.0.1:9", "--key", "chipp_x"],
                                env={"CHIPP_APP_ID": ""})
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "Error: No app id: pass --app or set the CHIPP_APP_ID environment variable\n"


async def test_the_served_process_answers_mcp_over_http(served: Served) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {served.key}"}, timeout=30)
    async with http, Client(streamable_http_client(f"{served.base_url}/mcp", http_client=http)) as client:
        result = await client.call_tool("list_sessions", {"limit": 2})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["sessions"] == _rest(served, "/sessions", {"limit": 2})["data"]
    refused = httpx.post(f"{served.base_url}/mcp", json={}, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
