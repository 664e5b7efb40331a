"""The MCP server (SPEC section 15): read-only tools that let an AI agent read one app's chats, a client of
the Builder API through the SDK. `chipp-builder mcp` serves it over stdio (stdio.py); `chipp-builder serve`
mounts it at /mcp (server/mcp_http.py). Needs the `mcp` extra. Never named `mcp`: that is the SDK's package."""
