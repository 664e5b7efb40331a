"""The MCP server over stdio, on one SDK client made from the command's settings: standard output carries
the protocol and nothing else; logs go to standard error."""

from __future__ import annotations

import logging
import sys

from chipp_builder.client import AsyncClient, RetryPolicy
from chipp_builder.client._config import ClientConfig
from chipp_builder.mcp_server.tools import build_server, fixed_client

# A 429 is not waited out inside the SDK but handed to the agent as a tool error saying when to retry: a
# tool call that hangs for most of a minute looks broken to the person watching.
NO_RATE_LIMIT_WAITS = RetryPolicy(max_retry_after=0)


async def serve_stdio(config: ClientConfig) -> None:
    """Serve MCP on standard input and output until the client closes them."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(levelname)s: %(message)s")
    async with AsyncClient(config.base_url, config.api_key, config.app_id, retry=NO_RATE_LIMIT_WAITS) as client:
        await build_server(fixed_client(client)).run_stdio_async()
