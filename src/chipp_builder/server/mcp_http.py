"""/mcp: the MCP server (mcp_server/) inside `serve`, over Streamable HTTP. The door checks the request's
key as every route does (401 in the error envelope otherwise); the tools then call this same app in-process
through an ASGI transport with that key, so scopes, the rate limit and every error are the API's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from chipp_builder.errors import AuthenticationError, Forbidden, RateLimited, ServiceUnavailable
from chipp_builder.mcp_server.credentials import CREDENTIALS, IN_PROCESS_URL, Credentials
from chipp_builder.server.auth import lookup_key, presented_key
from chipp_builder.server.deps import refuse_unauthenticated
from chipp_builder.server.responses import error_response

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

PATH = "/mcp"
# A tool call is a handful of API requests in-process; this bounds one that hangs on a stalled database.
TOOL_REQUEST_TIMEOUT = 30.0


class McpEndpoint:
    """The ASGI endpoint at /mcp; serves once `running()` (entered by the host's lifespan) has started."""

    def __init__(self, allowed_hosts: list[str]) -> None:
        self.allowed_hosts = allowed_hosts
        self.manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self, host: Any) -> AsyncIterator[None]:
        """Run the MCP handler for as long as the host app runs (a mounted app's own lifespan never does)."""
        # Imported here: the MCP SDK takes about 0.6 s to import, paid at start-up rather than by every
        # process that imports the app (the CLI, each test run).
        from chipp_builder.mcp_server.http import session_manager

        # A fault inside the API comes back as its 500 envelope (a tool error), not as a raised exception.
        transport = httpx.ASGITransport(app=host, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_URL,
                                     timeout=TOOL_REQUEST_TIMEOUT) as http:
            manager = session_manager(http, self.allowed_hosts)
            async with manager.run():
                self.manager = manager
                try:
                    yield
                finally:
                    self.manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            key = presented_key(request.headers.get("authorization"))
            identity = await lookup_key(request.app.state.reader, key)
        except AuthenticationError as error:
            refusal = await refuse_unauthenticated(request, error)
            headers = {"Retry-After": str(refusal.retry_after)} if isinstance(refusal, RateLimited) else None
            await error_response(refusal, headers)(scope, receive, send)
            return
        app_id: UUID = identity.app_id
        named = request.query_params.get("app")
        if named is not None:
            try:
                app_id = UUID(named)
            except ValueError:
                await error_response(Forbidden("API key does not match application"))(scope, receive, send)
                return
        if self.manager is None:
            await error_response(ServiceUnavailable("The MCP endpoint is not running"))(scope, receive, send)
            return
        # Another app named in ?app= is left to the API, whose 403 each tool call then returns.
        scope.setdefault("state", {})[CREDENTIALS] = Credentials(key, app_id)
        await self.manager.handle_request(scope, receive, send)
