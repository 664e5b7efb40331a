"""What a host hands the HTTP tools for one request, kept apart from the MCP SDK so that a host can import it
without importing the SDK (about 0.6 s)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

# Where the host puts a request's credentials (the ASGI scope's state, which the request the SDK hands a tool
# shares), once it has checked them.
CREDENTIALS = "chipp_mcp_credentials"
# The in-process API needs a URL to be addressed by; no request leaves the process.
IN_PROCESS_URL = "http://chipp-builder.internal"


@dataclass(frozen=True)
class Credentials:
    """Whom a /mcp request acts for: its raw key and the app its tools read."""

    api_key: str
    app_id: UUID
