"""Where the SDK's base URL, API key and app id come from: arguments, else CHIPP_* variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

ENV_BASE_URL = "CHIPP_BASE_URL"
ENV_API_KEY = "CHIPP_API_KEY"
ENV_APP_ID = "CHIPP_APP_ID"


class ConfigurationError(ValueError):
    """The client was not given what it needs to talk to the API (base URL, API key or app id)."""


@dataclass(frozen=True)
class ClientConfig:
    """Resolved connection settings: the server root, the key, and the app every request is scoped to."""

    base_url: str
    api_key: str
    app_id: UUID

    @property
    def app_url(self) -> str:
        """Absolute URL of the app's API; every resource path is relative to it."""
        return f"{self.base_url}/api/v1/apps/{self.app_id}"


def _pick(value: str | UUID | None, env_name: str, what: str, argument: str, env: Mapping[str, str]) -> str:
    text = str(value).strip() if value is not None else env.get(env_name, "").strip()
    if not text:
        raise ConfigurationError(f"No {what}: pass {argument}= or set the {env_name} environment variable")
    return text


def resolve_config(
    base_url: str | None,
    api_key: str | None,
    app_id: str | UUID | None,
    env: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Fill each missing argument from the environment, failing early, naming what is missing."""
    env = os.environ if env is None else env
    url = _pick(base_url, ENV_BASE_URL, "base URL", "base_url", env).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"base_url must start with http:// or https://, got {url!r}")
    # Accept a URL copied from the docs with the API prefix already on it; the client adds the prefix itself.
    for suffix in ("/api/v1", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    key = _pick(api_key, ENV_API_KEY, "API key", "api_key", env)
    raw_app_id = _pick(app_id, ENV_APP_ID, "app id", "app_id", env)
    try:
        parsed_app_id = UUID(raw_app_id)
    except ValueError:
        # The server would answer 403 for a non-UUID app id; a local message is clearer.
        raise ConfigurationError(f"app_id must be a UUID, got {raw_app_id!r}") from None
    return ClientConfig(base_url=url, api_key=key, app_id=parsed_app_id)
