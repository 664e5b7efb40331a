"""`chipp-builder mcp`: the MCP server over stdio for an AI agent (Claude, Cursor, …), reaching one app
through the API with the same settings as export (remote: a base URL, a key and an app id)."""

from __future__ import annotations

import anyio

from chipp_builder.cli.export import CLI_NAMES, AppOption, BaseUrlOption, KeyOption
from chipp_builder.cli.support import friendly_errors


def mcp_command(base_url: BaseUrlOption = None, key: KeyOption = None, app: AppOption = None) -> None:
    """Serve the app's chats to an AI agent over MCP on stdin/stdout (read-only tools; see docs/mcp.md)."""
    with friendly_errors():
        # Checked first, so a missing setting is one line on standard error before any protocol starts.
        from chipp_builder.client._config import resolve_config

        config = resolve_config(base_url, key, app, names=CLI_NAMES)
        from chipp_builder.mcp_server.stdio import serve_stdio

        anyio.run(serve_stdio, config)
