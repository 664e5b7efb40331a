"""Where the SDK's base URL, API key and app id come from: arguments, else CHIPP_* variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit
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


@dataclass(frozen=True)
class SettingNames:
    """How the caller's user names the three settings, for error messages: the SDK's keyword arguments by
    default; a command line passes its options (`--base-url`, …) so its messages speak its own words."""

    base_url: str = "base_url="
    api_key: str = "api_key="
    app_id: str = "app_id="


SDK_NAMES = SettingNames()
# An app's URL, as `make demo` prints it for curl: the server's root, then /api/v1/apps/APP_ID.
_APP_URL = re.compile(r"^(?P<root>.*?)/api/v1/apps/(?P<app>[^/]+)(?P<rest>/.*)?$")


def _label(name: str) -> str:
    return name.removesuffix("=")


def _given(value: str | UUID | None, env_name: str, name: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    """The setting's text and where it came from (the argument's name or the variable's), if it is given."""
    if value is not None and str(value).strip():
        return str(value).strip(), _label(name)
    text = env.get(env_name, "").strip()
    return (text, env_name) if text else None


def _pick(value: str | UUID | None, env_name: str, what: str, name: str,
          env: Mapping[str, str]) -> tuple[str, str]:
    """The setting's text and where it came from, or an error naming the argument and the variable."""
    given = _given(value, env_name, name, env)
    if given is None:
        raise ConfigurationError(f"No {what}: pass {name} or set the {env_name} environment variable")
    return given


def _split_app_url(url: str, label: str) -> tuple[str, str | None]:
    """The server's root and, when the URL is an app's URL (…/api/v1/apps/APP_ID), the app id in it."""
    parts = urlsplit(url)
    match = _APP_URL.match(parts.path)
    if match is None:
        # Accept a URL copied from the docs with the API prefix already on it; the client adds the prefix itself.
        for suffix in ("/api/v1", "/api"):
            if url.endswith(suffix):
                return url[: -len(suffix)], None
        return url, None
    if match["rest"]:
        raise ConfigurationError(f"{label} must be the server's root (e.g. http://127.0.0.1:8000) or an app's URL "
                                 f"(…/api/v1/apps/APP_ID), not a path inside the API: {url!r}")
    return f"{parts.scheme}://{parts.netloc}{match['root']}", match["app"]


def resolve_config(
    base_url: str | None,
    api_key: str | None,
    app_id: str | UUID | None,
    env: Mapping[str, str] | None = None,
    names: SettingNames = SDK_NAMES,
) -> ClientConfig:
    """Fill each missing argument from the environment, failing early, naming what is missing.

    The base URL may be the server's root or an app's URL (`http://host:port/api/v1/apps/APP_ID`, what
    `make demo` prints for curl): the root and the app id are taken from it, and an app id given as well
    (argument or variable) must be the same app.
    """
    env = os.environ if env is None else env
    url, url_from = _pick(base_url, ENV_BASE_URL, "base URL", names.base_url, env)
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"{url_from} must start with http:// or https://, got {url!r}")
    url, app_in_url = _split_app_url(url, url_from)
    key, _ = _pick(api_key, ENV_API_KEY, "API key", names.api_key, env)
    if app_in_url is not None:
        app_label = f"the app id in {url_from}"
        try:
            parsed_app_id = UUID(app_in_url)
        except ValueError:
            raise ConfigurationError(f"{app_label} must be a UUID, got {app_in_url!r}") from None
        given = _given(app_id, ENV_APP_ID, names.app_id, env)
        if given is not None:
            raw, source = given
            try:
                same = UUID(raw) == parsed_app_id
            except ValueError:
                same = False
            if not same:
                raise ConfigurationError(f"{url_from} is the URL of app {parsed_app_id}, but {source} is {raw!r}: "
                                         f"give one app (or the server's root, {url}, as {url_from})")
        return ClientConfig(base_url=url, api_key=key, app_id=parsed_app_id)
    raw_app_id, app_from = _pick(app_id, ENV_APP_ID, "app id", names.app_id, env)
    try:
        parsed_app_id = UUID(raw_app_id)
    except ValueError:
        # The server would answer 403 for a non-UUID app id; a local message is clearer.
        raise ConfigurationError(f"{app_from} must be a UUID, got {raw_app_id!r}") from None
    return ClientConfig(base_url=url, api_key=key, app_id=parsed_app_id)
