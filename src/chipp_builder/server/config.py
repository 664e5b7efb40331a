"""Server settings: the only place that reads the environment (CHIPP_ prefix)."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chipp_builder.schemas.common import parse_duration

DEFAULT_DATABASE_URL = "sqlite:///chipp-builder.db"


class Settings(BaseSettings):
    """Everything the server can be told; every field is documented in docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="CHIPP_", extra="ignore")

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLite file (default) or postgresql:// URL.")
    database_read_url: str | None = Field(None, description="Optional replica that GET requests read from.")
    redis_url: str | None = Field(None, description="When set, the rate limit is shared through Redis.")
    redis_prefix: str = Field(
        "chipp:ratelimit:",
        description="Prefix of the rate-limit keys in Redis, so several deployments can share one Redis.",
    )
    rate_limit: int = Field(120, ge=1, description="Requests per minute per API key.")
    admin_token: str | None = Field(None, description="Enables the management endpoints when set.")
    trusted_client_ip_header: str | None = Field(
        None, description="Header (e.g. X-Forwarded-For) to read the client address from behind a proxy."
    )
    trusted_proxies: str | None = Field(
        None,
        description="Comma-separated addresses or networks (CIDR) of the proxy: the client address header is "
        "read only from requests that come from one of them.",
    )
    max_body_bytes: int = Field(1024 * 1024, description="Largest accepted request body.")
    clock_skew_seconds: float = Field(
        60.0, ge=0, description="How far in the future a written timestamp may be (clients' clocks drift)."
    )
    consumer_token_ttl_seconds: int = Field(
        3600, ge=60, le=86400, description="Lifetime of the tokens POST /consumers/auth issues."
    )
    event_retention: timedelta = Field(
        timedelta(days=30),
        description="How long the event feed keeps events (`30s`, `15m`, `12h`, `90d`; default 30d): an older "
        "cursor is a 410 cursor_expired.",
    )
    db_timeout_seconds: float = Field(5.0, description="Connect and statement timeout for the database.")
    mcp_allowed_hosts: str = Field(
        "127.0.0.1:*,localhost:*,[::1]:*",
        description="Host headers the /mcp endpoint answers (DNS-rebinding protection): comma-separated "
        "`host` or `host:port`, `host:*` for any port; `*` for any host.",
    )

    response_cache_mb: float = Field(
        16.0,
        ge=0,
        le=65536,
        description="Megabytes of rendered pages each worker keeps in memory, by ETag, to answer a repeated "
        "GET without its query; it can never serve stale data (the ETag holds the app's data version). 0: off.",
    )

    cors_origins: str | None = Field(
        None,
        description="Origins (comma-separated, or `*`) whose browser pages may call the API (CORS); unset: none.",
    )

    @property
    def cors_origin_list(self) -> list[str]:
        """CHIPP_CORS_ORIGINS as a list (empty: CORS off)."""
        return [part.strip().rstrip("/") for part in (self.cors_origins or "").split(",") if part.strip()]

    @property
    def mcp_hosts(self) -> list[str]:
        """CHIPP_MCP_ALLOWED_HOSTS as a list."""
        return [part.strip() for part in self.mcp_allowed_hosts.split(",") if part.strip()]

    @field_validator("event_retention", mode="before")
    @classmethod
    def _retention_is_a_duration(cls, value: object) -> object:
        """The keys' duration syntax (`30s`, `15m`, `12h`, `90d`, or a bare number of days)."""
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str | None) -> str | None:
        """Refuse at start-up what would otherwise fail on the first failed authentication."""
        if value is not None:
            for part in value.split(","):
                ip_network(part.strip(), strict=False)  # a ValueError names the bad entry
        return value
