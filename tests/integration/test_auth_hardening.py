"""Authentication hardening (issue 6): a failed authentication never tells an unknown key from a revoked
one or from a key that was never issued (same status, body and headers), and every kind of failure counts
toward the per-address limit alike, so scanning the key space is slow whatever the guesses look like."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chipp_builder.server import ratelimit
from chipp_builder.server.app import create_app
from chipp_builder.server.auth import generate_key
from chipp_builder.server.config import Settings
from chipp_builder.server.resources.apps.queries import revoke_key
from tests.factories import TestApp, assert_error, make_app, uid
from tests.integration.test_ratelimit import NOW, Clock

LIMIT = 4
# Headers that differ between any two responses (the time) or follow the body (its length).
VARYING = {"date", "content-length"}


def answer(response: httpx.Response) -> tuple[int, str, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in VARYING)
    return response.status_code, response.text, headers


@pytest.fixture
async def limited(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.setattr(ratelimit, "time", Clock(NOW))  # one fixed window: no minute boundary mid-test
    server = create_app(Settings(database_url=database_url, rate_limit=LIMIT))
    yield server
    await server.state.limiter.counter.close()
    await server.state.engine.dispose()


@pytest.fixture
async def client(limited: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=limited, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def revoked(server: Any) -> TestApp:
    app = await make_app(server, name="Revoked")
    async with server.state.engine.begin() as db:
        await revoke_key(db, app.key_id)
    return app


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_unknown_and_revoked_keys_are_answered_alike_on_every_kind_of_route(server: Any,
                                                                                  api: httpx.AsyncClient) -> None:
    target = await make_app(server, name="Target")
    gone = await revoked(server)
    requests = [
        ("GET", f"{target.base}/sessions", None),
        ("GET", f"{target.base}/sessions/{uid(1, 1)}/messages", None),
        ("POST", f"{target.base}/conversations/log", {"messages": [{"role": "user", "content": "hi"}]}),
        ("GET", f"{gone.base}/sessions", None),  # even on the revoked key's own app
    ]
    for method, url, body in requests:
        answers = set()
        for key in (generate_key(), gone.key, generate_key()):
            response = await api.request(method, url, json=body, headers=bearer(key))
            assert_error(response, 401, "unauthorized", "Invalid API key")
            assert not any(name.startswith("x-ratelimit") for name in response.headers)
            answers.add(repr(answer(response)))
        assert len(answers) == 1, answers


async def test_another_apps_key_is_answered_alike_for_an_existing_and_a_missing_app(
    server: Any, api: httpx.AsyncClient
) -> None:
    mine = await make_app(server, name="Mine")
    theirs = await make_app(server, name="Theirs")
    existing = await api.get(f"{theirs.base}/sessions/{uid(1, 1)}", headers=mine.headers)
    missing = await api.get(f"/api/v1/apps/{uid(9, 9)}/sessions/{uid(1, 1)}", headers=mine.headers)
    assert_error(existing, 403, "forbidden", "API key does not match application")
    # The rate-limit headers count this key's own requests, so they differ by one; nothing else may.
    strip = {"x-ratelimit-remaining"}
    assert [(k, v) for k, v in answer(existing)[2] if k not in strip] == [
        (k, v) for k, v in answer(missing)[2] if k not in strip]
    assert answer(existing)[:2] == answer(missing)[:2]


async def test_every_kind_of_failed_authentication_counts_toward_the_address_limit(
    limited: Any, client: httpx.AsyncClient
) -> None:
    target = await make_app(limited, name="Target")
    gone = await revoked(limited)
    guesses = [
        {},  # no header
        bearer("chipp_guess"),  # not of the key format
        bearer(generate_key()),  # well-formed, unknown
        bearer(gone.key),  # revoked
    ]
    assert len(guesses) == LIMIT
    for headers in guesses:
        assert (await client.get(f"{target.base}/sessions", headers=headers)).status_code == 401
    # The address is spent: whichever guess comes next, even a revoked key, the answer is the same 429.
    blocked = set()
    for headers in [*guesses, bearer(gone.key)]:
        response = await client.get(f"{target.base}/sessions", headers=headers)
        assert_error(response, 429, "rate_limited", "Rate limit exceeded")
        blocked.add(repr(answer(response)))
    assert len(blocked) == 1, blocked
    # A valid key is not locked out by guesses made from its address.
    assert (await client.get(f"{target.base}/sessions", headers=target.headers)).status_code == 200
