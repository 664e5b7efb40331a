"""The SDK's base URL: the server's root, or an app's URL as `make demo` prints it for curl (root and app id
taken from it, a different app id given as well refused), with requests checked through httpx.MockTransport."""

from __future__ import annotations

import uuid

import httpx
import pytest

from chipp_builder.client import Client, ConfigurationError
from chipp_builder.client._config import SettingNames, resolve_config

APP_ID = str(uuid.uuid4())
OTHER_APP = str(uuid.uuid4())
KEY = "chipp_" + "d" * 32
APP_URL = f"http://127.0.0.1:8000/api/v1/apps/{APP_ID}"
EMPTY = {"data": [], "pagination": {"has_more": False, "next_cursor": None, "limit": 25}}


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("CHIPP_BASE_URL", "CHIPP_API_KEY", "CHIPP_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _requests_of(client_args: dict[str, str | None]) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=EMPTY)

    client = Client(**client_args, transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    list(client.sessions.list())
    return seen


@pytest.mark.parametrize("url", [APP_URL, APP_URL + "/"])
def test_an_app_url_gives_the_root_and_the_app(no_env: pytest.MonkeyPatch, url: str) -> None:
    seen = _requests_of({"base_url": url, "api_key": KEY, "app_id": None})
    assert str(seen[0].url) == f"{APP_URL}/sessions"


def test_an_app_url_from_the_environment(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("CHIPP_BASE_URL", APP_URL)
    no_env.setenv("CHIPP_API_KEY", KEY)
    client = Client()
    assert client.config.base_url == "http://127.0.0.1:8000"
    assert str(client.config.app_id) == APP_ID


def test_an_app_url_below_a_path_prefix_keeps_the_prefix(no_env: pytest.MonkeyPatch) -> None:
    config = resolve_config(f"https://example.test/chipp/api/v1/apps/{APP_ID}", KEY, None, env={})
    assert config.base_url == "https://example.test/chipp"
    assert config.app_url == f"https://example.test/chipp/api/v1/apps/{APP_ID}"


def test_the_same_app_id_given_as_well_is_fine(no_env: pytest.MonkeyPatch) -> None:
    seen = _requests_of({"base_url": APP_URL, "api_key": KEY, "app_id": APP_ID.upper()})
    assert str(seen[0].url) == f"{APP_URL}/sessions"


def test_a_different_app_id_is_a_clear_error(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=f"base_url is the URL of app {APP_ID}, but app_id is '{OTHER_APP}'"):
        Client(APP_URL, KEY, OTHER_APP)
    no_env.setenv("CHIPP_APP_ID", OTHER_APP)
    with pytest.raises(ConfigurationError, match="but CHIPP_APP_ID is"):
        Client(APP_URL, KEY)


def test_a_path_inside_the_api_or_a_bad_app_id_is_a_clear_error(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="server's root .* or an app's URL .*not a path inside the API"):
        Client(APP_URL + "/sessions", KEY)
    with pytest.raises(ConfigurationError, match="the app id in base_url must be a UUID, got 'APP'"):
        Client("http://127.0.0.1:8000/api/v1/apps/APP", KEY)


def test_the_root_still_works_and_needs_an_app_id(no_env: pytest.MonkeyPatch) -> None:
    seen = _requests_of({"base_url": "http://127.0.0.1:8000", "api_key": KEY, "app_id": APP_ID})
    assert str(seen[0].url) == f"{APP_URL}/sessions"
    with pytest.raises(ConfigurationError, match="No app id: pass app_id= or set the CHIPP_APP_ID"):
        Client("http://127.0.0.1:8000", KEY)


def test_messages_use_the_callers_names() -> None:
    names = SettingNames(base_url="--base-url", api_key="--key", app_id="--app")
    with pytest.raises(ConfigurationError, match="^No base URL: pass --base-url or set the CHIPP_BASE_URL"):
        resolve_config(None, KEY, APP_ID, env={}, names=names)
    with pytest.raises(ConfigurationError, match="^No API key: pass --key or set the CHIPP_API_KEY"):
        resolve_config(APP_URL, None, None, env={}, names=names)
    with pytest.raises(ConfigurationError, match="^--app must be a UUID"):
        resolve_config("http://127.0.0.1:8000", KEY, "my-app", env={}, names=names)
    with pytest.raises(ConfigurationError, match="^--base-url is the URL of app .* but --app is"):
        resolve_config(APP_URL, KEY, OTHER_APP, env={}, names=names)
