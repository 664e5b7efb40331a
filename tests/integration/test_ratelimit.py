"""Rate limiting through HTTP (SPEC section 1): headers, 429, windows, failed authentications per address."""

from __future__ import annotations

import time as real_time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chipp_builder.server import ratelimit
from chipp_builder.server.app import create_app
from chipp_builder.server.auth import generate_key
from chipp_builder.server.config import Settings
from tests.factories import assert_error, make_app, uid

LIMIT = 3
WINDOW_START = 1_750_000_020  # a UTC minute boundary (divisible by 60)
NOW = WINDOW_START + 30.4
RESET = WINDOW_START + 60
RATELIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


class Clock:
    """A settable stand-in for the limiter's `time` module: `time()` is fixed, the rest is the real module."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(real_time, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(NOW)
    monkeypatch.setattr(ratelimit, "time", fake)
    return fake


async def _limited_server(database_url: str, **settings: Any) -> Any:
    return create_app(Settings(database_url=database_url, rate_limit=LIMIT, **settings))


async def _close(server: Any) -> None:
    await server.state.limiter.counter.close()
    await server.state.engine.dispose()


@pytest.fixture
async def limited(database_url: str, clock: Clock) -> AsyncIterator[Any]:
    """An app limited to 3 requests per minute."""
    server = await _limited_server(database_url)
    yield server
    await _close(server)


@pytest.fixture
async def client(limited: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=limited, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def app(limited):
    return await make_app(limited)


def ratelimit_headers(response: httpx.Response) -> tuple[int, int, int]:
    return tuple(int(response.headers[name]) for name in RATELIMIT_HEADERS)  # type: ignore[return-value]


async def test_a_success_carries_limit_remaining_and_reset(client, app):
    response = await client.get(f"{app.base}/sessions", headers=app.headers)
    assert response.status_code == 200
    assert ratelimit_headers(response) == (LIMIT, LIMIT - 1, RESET)


async def test_remaining_counts_down_to_zero(client, app):
    remaining = []
    for _ in range(LIMIT):
        response = await client.get(f"{app.base}/tags", headers=app.headers)
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    assert remaining == [2, 1, 0]


async def test_over_the_limit_is_429_with_retry_after_and_no_ratelimit_headers(client, app):
    for _ in range(LIMIT):
        assert (await client.get(f"{app.base}/sessions", headers=app.headers)).status_code == 200
    response = await client.get(f"{app.base}/sessions", headers=app.headers)
    assert_error(response, 429, "rate_limited", "Rate limit exceeded")
    assert response.headers["retry-after"] == "30"  # ceil(RESET - NOW) = ceil(29.6)
    assert not any(name in response.headers for name in RATELIMIT_HEADERS)


async def test_reset_is_the_start_of_the_next_minute(client, app, clock):
    clock.now = WINDOW_START
    first = await client.get(f"{app.base}/sessions", headers=app.headers)
    clock.now = WINDOW_START + 59.999
    last = await client.get(f"{app.base}/sessions", headers=app.headers)
    assert first.headers["x-ratelimit-reset"] == last.headers["x-ratelimit-reset"] == str(RESET)


async def test_retry_after_is_rounded_up_and_at_least_one_second(client, app, clock):
    clock.now = RESET - 0.001
    for _ in range(LIMIT):
        await client.get(f"{app.base}/sessions", headers=app.headers)
    response = await client.get(f"{app.base}/sessions", headers=app.headers)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


async def test_a_new_minute_starts_a_new_window(client, app, clock):
    for _ in range(LIMIT + 1):
        await client.get(f"{app.base}/sessions", headers=app.headers)
    clock.now = RESET
    response = await client.get(f"{app.base}/sessions", headers=app.headers)
    assert response.status_code == 200
    assert ratelimit_headers(response) == (LIMIT, LIMIT - 1, RESET + 60)


async def test_a_400_carries_the_ratelimit_headers(client, app):
    response = await client.get(f"{app.base}/sessions", params={"limit": "0"}, headers=app.headers)
    assert response.status_code == 400
    assert ratelimit_headers(response) == (LIMIT, LIMIT - 1, RESET)


async def test_a_404_carries_the_ratelimit_headers(client, app):
    response = await client.get(f"{app.base}/sessions/{uid(1, 99)}", headers=app.headers)
    assert response.status_code == 404
    assert ratelimit_headers(response) == (LIMIT, LIMIT - 1, RESET)


async def test_a_403_for_another_app_carries_the_ratelimit_headers(client, app):
    response = await client.get(f"/api/v1/apps/{uid(9, 9)}/sessions", headers=app.headers)
    assert response.status_code == 403
    assert ratelimit_headers(response) == (LIMIT, LIMIT - 1, RESET)


async def test_every_request_with_a_valid_key_counts_whatever_follows(client, app):
    await client.get(f"{app.base}/sessions", params={"limit": "0"}, headers=app.headers)
    await client.get(f"{app.base}/sessions/{uid(1, 99)}", headers=app.headers)
    await client.get(f"/api/v1/apps/{uid(9, 9)}/sessions", headers=app.headers)
    response = await client.get(f"{app.base}/sessions", headers=app.headers)
    assert_error(response, 429, "rate_limited", "Rate limit exceeded")


async def test_each_key_has_its_own_window(client, limited, app):
    second = await make_app(limited, name="Second app")
    for _ in range(LIMIT):
        await client.get(f"{app.base}/sessions", headers=app.headers)
    response = await client.get(f"{second.base}/sessions", headers=second.headers)
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining"] == str(LIMIT - 1)


async def test_a_failed_authentication_carries_no_ratelimit_headers(client, app):
    response = await client.get(f"{app.base}/sessions")
    assert response.status_code == 401
    assert not any(name in response.headers for name in RATELIMIT_HEADERS)


async def test_failed_authentications_are_limited_per_client_address(client, app):
    for _ in range(LIMIT):
        response = await client.get(
            f"{app.base}/sessions", headers={"Authorization": f"Bearer {generate_key()}"}
        )
        assert_error(response, 401, "unauthorized", "Invalid API key")
    response = await client.get(f"{app.base}/sessions", headers={"Authorization": "Bearer chipp_guess"})
    assert_error(response, 429, "rate_limited", "Rate limit exceeded")
    assert int(response.headers["retry-after"]) >= 1


async def test_a_limited_address_can_still_use_a_valid_key(client, app):
    for _ in range(LIMIT + 1):
        await client.get(f"{app.base}/sessions")
    assert (await client.get(f"{app.base}/sessions", headers=app.headers)).status_code == 200


async def test_forwarded_headers_are_ignored_unless_trusted(client, app):
    for n in range(LIMIT):
        await client.get(f"{app.base}/sessions", headers={"X-Forwarded-For": f"10.0.0.{n}"})
    response = await client.get(f"{app.base}/sessions", headers={"X-Forwarded-For": "10.0.0.99"})
    assert response.status_code == 429


async def test_a_trusted_forwarded_header_separates_client_addresses(database_url, clock):
    server = await _limited_server(database_url, trusted_client_ip_header="X-Forwarded-For")
    try:
        app = await make_app(server)
        transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for _ in range(LIMIT):
                await client.get(f"{app.base}/sessions", headers={"X-Forwarded-For": "10.0.0.1"})
            blocked = await client.get(
                f"{app.base}/sessions", headers={"X-Forwarded-For": "10.0.0.1, 10.9.9.9"}
            )
            other = await client.get(f"{app.base}/sessions", headers={"X-Forwarded-For": "10.0.0.2"})
        assert blocked.status_code == 429
        assert_error(other, 401, "unauthorized")
    finally:
        await _close(server)


@pytest.mark.parametrize(("proxies", "separated"), [("10.1.1.1, 192.168.0.0/16", False), ("127.0.0.0/8, ::1", True)])
async def test_the_forwarded_header_is_read_only_from_a_trusted_proxy(database_url, clock, proxies, separated):
    # The test client connects from 127.0.0.1: a listed proxy in the second case only.
    server = await _limited_server(database_url, trusted_client_ip_header="X-Forwarded-For", trusted_proxies=proxies)
    try:
        app = await make_app(server)
        transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for n in range(LIMIT):
                await client.get(f"{app.base}/sessions", headers={"X-Forwarded-For": f"10.0.0.{n}"})
            last = await client.get(f"{app.base}/sessions", headers={"X-Forwarded-For": "10.0.0.99"})
        assert last.status_code == (401 if separated else 429)
    finally:
        await _close(server)


def test_trusted_proxies_must_be_addresses_or_networks(database_url):
    with pytest.raises(ValueError, match="proxy.example"):
        Settings(database_url=database_url, trusted_proxies="10.0.0.1, proxy.example")


async def test_the_default_limit_is_120(api, server, clock, monkeypatch):
    default = Settings.model_fields["rate_limit"].default
    assert default == 120
    monkeypatch.setattr(server.state.limiter, "limit", default)
    app = await make_app(server)
    response = await api.get(f"{app.base}/sessions", headers=app.headers)
    assert ratelimit_headers(response) == (120, 119, RESET)
