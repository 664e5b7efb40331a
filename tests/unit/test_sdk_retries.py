"""SDK retries with httpx.MockTransport: Retry-After on 429, capped backoff with jitter on 5xx and transport
errors, and never a second send of a write the server cannot deduplicate. No test really sleeps."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from chipp_builder.client import (
    AsyncClient,
    Client,
    ConnectionFailed,
    InvalidRequest,
    NotFound,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
    UnexpectedStatus,
)

APP_ID = str(uuid.uuid4())
KEY = "chipp_" + "a" * 32
SESSION = {
    "id": str(uuid.uuid4()), "consumer_id": None, "consumer": None, "title": "Hi", "source": "API",
    "mode": "default", "is_bookmarked": False, "is_multiplayer": False, "message_count": 0,
    "started_at": "2025-06-15T14:30:00Z", "ended_at": None, "last_activity_at": "2025-06-15T14:30:00Z",
}
FEEDBACK = {
    "id": "f1", "session_id": SESSION["id"], "message_id": "m1", "consumer_id": None, "rating": 1,
    "message_preview": "hello", "created_at": "2025-06-15T14:30:00Z",
}
TOKEN = {
    "consumer": {
        "id": str(uuid.uuid4()), "identifier": "a@example.com", "email": "a@example.com", "name": None,
        "picture_url": None, "email_verified": False, "credits": 0, "subscription_active": False,
        "mode": "default", "is_anonymous": False, "created_at": "2025-06-15T14:30:00Z",
        "updated_at": "2025-06-15T14:30:00Z",
    },
    "token": "t", "expires_at": "2025-06-15T15:30:00Z",
}
LOGGED = {"session_id": SESSION["id"], "consumer_id": None, "message_ids": ["m1"]}


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


def ok(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"data": data})


class Script:
    """A fake server that answers requests from a list, in order, and records what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_client(script: Script, sleeps: list[float], **kwargs: Any) -> Client:
    policy = kwargs.pop("retry", RetryPolicy(random=lambda: 1.0))
    return Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(script), sleep=sleeps.append,
                  retry=policy, **kwargs)


def test_429_waits_retry_after_then_succeeds() -> None:
    script = Script(error(429, "rate_limited", "Rate limit exceeded", {"Retry-After": "7"}), ok(SESSION))
    sleeps: list[float] = []
    session = make_client(script, sleeps).sessions.get(SESSION["id"])
    assert session.title == "Hi"
    assert sleeps == [7.0]
    assert len(script.requests) == 2


def test_429_retry_after_as_http_date_is_honoured() -> None:
    script = Script(error(429, "rate_limited", "Rate limit exceeded",
                          {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), ok(SESSION))
    sleeps: list[float] = []
    make_client(script, sleeps).sessions.get(SESSION["id"])
    assert sleeps == [0.0]  # a date in the past means "now"


def test_rate_limited_after_retries_are_exhausted_says_how_long() -> None:
    limited = [error(429, "rate_limited", "Rate limit exceeded", {"Retry-After": "3"}) for _ in range(3)]
    script = Script(*limited)
    sleeps: list[float] = []
    with pytest.raises(RateLimited) as caught:
        make_client(script, sleeps, max_retries=2).sessions.get(SESSION["id"])
    assert caught.value.retry_after == 3
    assert caught.value.status == 429 and caught.value.code == "rate_limited"
    assert "retry after 3 s" in str(caught.value)
    assert sleeps == [3.0, 3.0]
    assert len(script.requests) == 3


def test_429_longer_than_max_retry_after_is_raised_at_once() -> None:
    script = Script(error(429, "rate_limited", "Rate limit exceeded", {"Retry-After": "600"}))
    sleeps: list[float] = []
    with pytest.raises(RateLimited) as caught:
        make_client(script, sleeps).sessions.get(SESSION["id"])
    assert caught.value.retry_after == 600
    assert sleeps == []


def test_5xx_is_retried_with_exponential_backoff() -> None:
    script = Script(error(503, "service_unavailable", "down"), error(500, "internal_error", "oops"),
                    error(502, "internal_error", "bad gateway"), ok(SESSION))
    sleeps: list[float] = []
    make_client(script, sleeps, max_retries=3).sessions.get(SESSION["id"])
    assert sleeps == [0.5, 1.0, 2.0]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(max_retries=8, backoff_base=0.5, backoff_max=3.0, random=lambda: 1.0)
    script = Script(*[error(503, "service_unavailable", "down") for _ in range(8)], ok(SESSION))
    sleeps: list[float] = []
    make_client(script, sleeps, retry=policy).sessions.get(SESSION["id"])
    assert sleeps == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize("draw", [0.0, 0.3, 0.999])
def test_backoff_jitter_stays_between_half_and_full_delay(draw: float) -> None:
    policy = RetryPolicy(backoff_base=1.0, random=lambda: draw)
    for attempt, ceiling in enumerate([1.0, 2.0, 4.0]):
        assert ceiling / 2 <= policy.backoff(attempt) <= ceiling


def test_5xx_after_retries_are_exhausted_raises_its_error() -> None:
    script = Script(*[error(503, "service_unavailable", "The database is unavailable") for _ in range(3)])
    with pytest.raises(ServiceUnavailable) as caught:
        make_client(script, []).sessions.get(SESSION["id"])
    assert caught.value.status == 503
    assert caught.value.message == "The database is unavailable"
    assert len(script.requests) == 3


def test_a_503_with_retry_after_waits_that_long() -> None:
    script = Script(error(503, "service_unavailable", "down", {"Retry-After": "4"}), ok(SESSION))
    sleeps: list[float] = []
    make_client(script, sleeps).sessions.get(SESSION["id"])
    assert sleeps == [4.0]


@pytest.mark.parametrize(
    "status, code, cls", [(400, "invalid_request", InvalidRequest), (404, "not_found", NotFound)]
)
def test_4xx_is_not_retried(status: int, code: str, cls: type[Exception]) -> None:
    script = Script(error(status, code, "no"))
    sleeps: list[float] = []
    with pytest.raises(cls):
        make_client(script, sleeps).sessions.get(SESSION["id"])
    assert len(script.requests) == 1 and sleeps == []


def test_501_is_not_retried() -> None:
    script = Script(error(501, "internal_error", "not implemented"))
    with pytest.raises(UnexpectedStatus) as caught:  # the API never sends 501: its status is kept
        make_client(script, []).sessions.get(SESSION["id"])
    assert len(script.requests) == 1 and caught.value.status == 501


def test_connection_errors_are_retried_for_reads() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ok(SESSION))
    sleeps: list[float] = []
    make_client(script, sleeps).sessions.get(SESSION["id"])
    assert sleeps == [0.5, 1.0]


def test_connection_errors_after_retries_raise_connection_failed() -> None:
    script = Script(*[httpx.ConnectError("refused") for _ in range(3)])
    with pytest.raises(ConnectionFailed) as caught:
        make_client(script, []).sessions.get(SESSION["id"])
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert caught.value.code == "connection_error"


def test_max_retries_zero_sends_once() -> None:
    script = Script(error(503, "service_unavailable", "down"))
    with pytest.raises(ServiceUnavailable):
        make_client(script, [], max_retries=0).sessions.get(SESSION["id"])
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [error(503, "service_unavailable", "down"), error(500, "internal_error", "oops"),
     httpx.ReadTimeout("slow"), error(429, "rate_limited", "Rate limit exceeded", {"Retry-After": "1"})],
    ids=["503", "500", "timeout", "429"],
)
def test_a_post_without_idempotency_key_is_never_retried(answer: httpx.Response | Exception) -> None:
    script = Script(answer, ok(TOKEN, 201))
    sleeps: list[float] = []
    with pytest.raises(Exception):  # noqa: B017 - the class depends on the answer; the count is the point
        make_client(script, sleeps).consumers.auth(email="a@example.com")
    assert len(script.requests) == 1 and sleeps == []
    assert "Idempotency-Key" not in script.requests[0].headers


def test_feedback_create_without_idempotency_key_is_not_retried() -> None:
    script = Script(error(503, "service_unavailable", "down"), ok(FEEDBACK, 201))
    with pytest.raises(ServiceUnavailable):
        make_client(script, []).feedback.create("m1", 1, idempotency_key=None)
    assert len(script.requests) == 1


def test_feedback_create_sends_an_idempotency_key_and_retries_with_it() -> None:
    script = Script(httpx.ConnectError("refused"), ok(FEEDBACK, 201))
    assert make_client(script, []).feedback.create("m1", 1).rating == 1
    assert len({r.headers["Idempotency-Key"] for r in script.requests}) == 1 and len(script.requests) == 2


def test_conversations_log_sends_an_idempotency_key_and_retries_with_the_same_one() -> None:
    script = Script(error(503, "service_unavailable", "down"), httpx.ReadTimeout("slow"), ok(LOGGED, 201))
    sleeps: list[float] = []
    logged = make_client(script, sleeps).conversations.log([{"role": "user", "content": "hi"}])
    assert logged.message_ids == ["m1"]
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1
    uuid.UUID(keys.pop())


def test_each_conversations_log_call_gets_its_own_idempotency_key() -> None:
    script = Script(ok(LOGGED, 201), ok(LOGGED, 201))
    client = make_client(script, [])
    client.conversations.log([{"role": "user", "content": "hi"}])
    client.conversations.log([{"role": "user", "content": "hi"}])
    assert script.requests[0].headers["Idempotency-Key"] != script.requests[1].headers["Idempotency-Key"]


def test_conversations_log_uses_the_callers_idempotency_key() -> None:
    script = Script(ok(LOGGED, 201))
    make_client(script, []).conversations.log([{"role": "user", "content": "hi"}], idempotency_key="run-42")
    assert script.requests[0].headers["Idempotency-Key"] == "run-42"


def test_conversations_log_without_idempotency_key_is_not_retried() -> None:
    script = Script(error(503, "service_unavailable", "down"), ok(LOGGED, 201))
    with pytest.raises(ServiceUnavailable):
        make_client(script, []).conversations.log([{"role": "user", "content": "hi"}], idempotency_key=None)
    assert len(script.requests) == 1
    assert "Idempotency-Key" not in script.requests[0].headers


async def test_async_client_retries_with_the_injected_sleep() -> None:
    script = Script(error(429, "rate_limited", "Rate limit exceeded", {"Retry-After": "2"}),
                    error(503, "service_unavailable", "down"), ok(SESSION))
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with AsyncClient("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(script), sleep=sleep,
                           retry=RetryPolicy(random=lambda: 1.0)) as client:
        session = await client.sessions.get(SESSION["id"])
    assert str(session.id) == SESSION["id"]
    assert sleeps == [2.0, 1.0]


async def test_async_client_does_not_retry_a_plain_post() -> None:
    script = Script(error(503, "service_unavailable", "down"))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with AsyncClient("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(script),
                           sleep=sleep) as client:
        with pytest.raises(ServiceUnavailable):
            await client.consumers.auth(email="a@example.com")
    assert len(script.requests) == 1 and slept == []
