"""The MCP server over Streamable HTTP, for a host that authenticates each request: stateless, answering in
JSON, each tool call reaching the API with the calling request's own key (never a key of the host's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from chipp_builder.client import AsyncClient
from chipp_builder.mcp_server.credentials import CREDENTIALS, IN_PROCESS_URL, Credentials
from chipp_builder.mcp_server.stdio import NO_RATE_LIMIT_WAITS
from chipp_builder.mcp_server.support import ToolFailure
from chipp_builder.mcp_server.tools import ClientSource, build_server


def credentials_of(ctx: Context[Any, Any]) -> Credentials | None:
    """The credentials the host stored for the HTTP request this tool call came in, if any."""
    request = ctx.request_context.request
    state = getattr(request, "scope", {}).get("state", {})
    found = state.get(CREDENTIALS)
    return found if isinstance(found, Credentials) else None


def request_clients(http: httpx.AsyncClient) -> ClientSource:
    """A ClientSource giving each tool call an SDK client on `http` with its request's key and app."""

    @asynccontextmanager
    async def source(ctx: Context[Any, Any]) -> AsyncIterator[AsyncClient]:
        credentials = credentials_of(ctx)
        if credentials is None:
            raise ToolFailure("No API key came with this request")
        # Not closed: it does not own `http`, which lives as long as the endpoint.
        yield AsyncClient(IN_PROCESS_URL, credentials.api_key, credentials.app_id, http_client=http,
                          retry=NO_RATE_LIMIT_WAITS)

    return source


def transport_security(allowed_hosts: list[str]) -> TransportSecuritySettings:
    """DNS-rebinding protection: the Host header must be one of `allowed_hosts` (`host:*` for any port; `*`
    turns the check off), and a browser's Origin one of the same hosts."""
    if "*" in allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    origins = [f"{scheme}://{host}" for host in allowed_hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=list(allowed_hosts),
                                     allowed_origins=origins)


def session_manager(http: httpx.AsyncClient, allowed_hosts: list[str]) -> StreamableHTTPSessionManager:
    """The stateless Streamable HTTP handler of the tools, reaching the API over `http`; run it (its `run()`)
    for as long as it serves."""
    server = build_server(request_clients(http))
    # Builds the handler; the Starlette app it returns is not used (its lifespan would never run, mounted).
    server.streamable_http_app(stateless_http=True, json_response=True,
                               transport_security=transport_security(allowed_hosts))
    return server.session_manager
