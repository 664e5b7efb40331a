"""SDK construction and error mapping with httpx.MockTransport: configuration from arguments or CHIPP_*
variables, the headers every request carries, and one errors.py class per error code."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from chipp_builder.client import APIError, Client, ConfigurationError, RateLimited, UnexpectedStatus
from chipp_builder.client.models import LogConsumer, LogMessage
from chipp_builder.errors import WIRE_ERRORS

APP_ID = str(uuid.uuid4())
KEY = "chipp_" + "c" * 32
SESSION = {
    "id": str(uuid.uuid4()), "consumer_id": None, "consumer": None, "title": None, "source": "API",
    "mode": "default", "is_bookmarked": False, "is_multiplayer": False, "message_count": 0,
    "started_at": "2025-06-15T14:30:00Z", "ended_at": None, "last_activity_at": "2025-06-15T14:30:00Z",
}


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("CHIPP_BASE_URL", "CHIPP_API_KEY", "CHIPP_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_arguments_fall_back_to_the_environment(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("CHIPP_BASE_URL", "http://env.test/")
    no_env.setenv("CHIPP_API_KEY", KEY)
    no_env.setenv("CHIPP_APP_ID", APP_ID)
    client = Client()
    assert client.config.app_url == f"http://env.test/api/v1/apps/{APP_ID}"
    assert client.config.api_key == KEY


def test_arguments_win_over_the_environment(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("CHIPP_BASE_URL", "http://env.test")
    client = Client("http://arg.test", KEY, APP_ID)
    assert client.config.base_url == "http://arg.test"


@pytest.mark.parametrize(
    "missing, words",
    [("base_url", "CHIPP_BASE_URL"), ("api_key", "CHIPP_API_KEY"), ("app_id", "CHIPP_APP_ID")],
)
def test_a_missing_setting_is_a_clear_error(no_env: pytest.MonkeyPatch, missing: str, words: str) -> None:
    given = {"base_url": "http://api.test", "api_key": KEY, "app_id": APP_ID}
    del given[missing]
    with pytest.raises(ConfigurationError, match=f"{missing}=.*{words}"):
        Client(**given)


def test_app_id_must_be_a_uuid(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="UUID"):
        Client("http://api.test", KEY, "my-app")


def test_base_url_with_the_api_prefix_is_accepted(no_env: pytest.MonkeyPatch) -> None:
    assert Client("https://api.test/api/v1/", KEY, APP_ID).config.base_url == "https://api.test"


def test_every_request_carries_the_key_and_a_user_agent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": SESSION})

    client = Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler),
                    headers={"X-Trace": "1"})
    client.sessions.get(SESSION["id"])
    assert seen[0].headers["Authorization"] == f"Bearer {KEY}"
    assert seen[0].headers["User-Agent"].startswith("chipp-builder-python/")
    assert seen[0].headers["X-Trace"] == "1"
    assert str(seen[0].url) == f"http://api.test/api/v1/apps/{APP_ID}/sessions/{SESSION['id']}"


@pytest.mark.parametrize("cls", WIRE_ERRORS, ids=lambda c: c.code)
def test_each_error_code_raises_its_class(cls: type[APIError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(cls.status, json={"error": {"code": cls.code, "message": "why"}},
                              headers={"Retry-After": "5"} if cls is RateLimited else None)

    client = Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler), max_retries=0)
    with pytest.raises(cls) as caught:
        client.sessions.get(SESSION["id"])
    assert type(caught.value) is cls
    assert (caught.value.status, caught.value.code) == (cls.status, cls.code)
    assert caught.value.message.startswith("why")


def test_a_non_json_error_body_still_raises_by_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad gateway</html>")

    client = Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler), max_retries=0)
    with pytest.raises(UnexpectedStatus) as caught:
        client.sessions.get(SESSION["id"])
    assert caught.value.status == 502 and caught.value.message == "HTTP 502"


def test_an_unknown_error_code_keeps_its_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(418, json={"error": {"code": "teapot", "message": "short and stout"}})

    client = Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler))
    with pytest.raises(UnexpectedStatus) as caught:
        client.sessions.get(SESSION["id"])
    error = caught.value
    assert (error.status, error.code, error.message) == (418, "teapot", "short and stout")


def test_write_bodies_are_sent_as_the_spec_shapes_them() -> None:
    seen: list[httpx.Request] = []
    consumer_id = uuid.uuid4()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/feedback"):
            return httpx.Response(201, json={"data": {
                "id": "f1", "session_id": SESSION["id"], "message_id": "m1", "consumer_id": str(consumer_id),
                "rating": -1, "message_preview": "hi", "created_at": "2025-06-15T14:30:00Z"}})
        if request.url.path.endswith("/consumers/auth"):
            return httpx.Response(200, json={"data": {"consumer": {
                "id": str(consumer_id), "identifier": "a@example.com", "email": "a@example.com", "name": None,
                "picture_url": None, "email_verified": False, "credits": 0, "subscription_active": False,
                "mode": "default", "is_anonymous": False, "created_at": "2025-06-15T14:30:00Z",
                "updated_at": "2025-06-15T14:30:00Z"}, "token": "t", "expires_at": "2025-06-15T15:30:00Z"}})
        return httpx.Response(201, json={"data": {"session_id": SESSION["id"], "consumer_id": None,
                                                  "message_ids": ["a", "b"]}})

    client = Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler))
    assert client.feedback.create("m1", -1, consumer_id=consumer_id).rating == -1
    token = client.consumers.auth(email="a@example.com")
    assert token.consumer.email == "a@example.com" and token.expires_at.tzinfo is not None
    logged = client.conversations.log(
        [{"role": "user", "content": "hi", "created_at": datetime(2025, 6, 1, tzinfo=UTC)},
         {"role": "assistant", "content": "hello", "model": "gpt-4o", "token_count": 5}],
        consumer={"email": "a@example.com"}, title="Hi", source="API",
    )
    assert logged.message_ids == ["a", "b"]
    bodies = [json.loads(r.content) for r in seen]
    assert bodies[0] == {"message_id": "m1", "rating": -1, "consumer_id": str(consumer_id)}
    assert bodies[1] == {"email": "a@example.com"}
    assert bodies[2] == {
        "consumer": {"email": "a@example.com"}, "title": "Hi", "source": "API",
        "messages": [{"role": "user", "content": "hi", "created_at": "2025-06-01T00:00:00Z"},
                     {"role": "assistant", "content": "hello", "model": "gpt-4o", "token_count": 5}],
    }
    assert "Idempotency-Key" in seen[0].headers and "Idempotency-Key" not in seen[1].headers
    assert [r.url.path.rsplit("/", 2)[-2:] for r in seen] == [
        [APP_ID, "feedback"], ["consumers", "auth"], ["conversations", "log"]]


def test_conversations_log_accepts_the_shared_pydantic_models() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"data": {"session_id": SESSION["id"], "consumer_id": None,
                                                  "message_ids": ["a"]}})

    client = Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler))
    message = LogMessage(role="user", content="hi", created_at=datetime(2025, 6, 1, tzinfo=UTC))
    client.conversations.log([message], consumer=LogConsumer(identifier="u-1"))
    assert json.loads(seen[0].content) == {
        "consumer": {"identifier": "u-1"},
        "messages": [{"role": "user", "content": "hi", "created_at": "2025-06-01T00:00:00Z"}],
    }


def test_conversations_log_refuses_a_single_message_instead_of_a_list() -> None:
    never = httpx.MockTransport(lambda request: httpx.Response(500))
    client = Client("http://api.test", KEY, APP_ID, transport=never)
    with pytest.raises(TypeError, match="list"):
        client.conversations.log({"role": "user", "content": "hi"})  # type: ignore[arg-type]


def test_a_callers_http_client_is_used_and_left_open() -> None:
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": SESSION}))
    http = httpx.Client(transport=answer)
    with Client("http://api.test", KEY, APP_ID, http_client=http) as client:
        assert client.sessions.get(SESSION["id"]).mode == "default"
    assert not http.is_closed
    http.close()


def test_transport_and_http_client_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(lambda r: httpx.Response(200)),
               http_client=httpx.Client())
