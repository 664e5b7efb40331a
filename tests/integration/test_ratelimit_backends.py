"""The rate limiter on every counter backend (memory and Redis): counts, windows, the limit, its headers."""

from __future__ import annotations

import asyncio
import math
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.ratelimit import (
    WINDOW_SECONDS,
    CounterUnavailable,
    FallbackCounter,
    MemoryCounter,
    RateLimiter,
    WindowCounter,
)
from chipp_builder.server.ratelimit_redis import RedisCounter
from chipp_builder.server.resources.apps import queries as apps
from tests.conftest import REDIS_URL, _require_service

# A fixed instant 10 s into a UTC minute, so no test straddles a window boundary by accident.
NOW = 1_750_000_000 - 1_750_000_000 % WINDOW_SECONDS + 10.0
WINDOW = int(NOW // WINDOW_SECONDS)


async def _delete_prefix(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def counter_backend(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str | None, str]]:
    """(name, Redis URL or None, key prefix): the backend a test runs on, its keys removed afterwards."""
    prefix = f"chipp-test:{uuid.uuid4().hex}:"
    if request.param == "memory":
        yield "memory", None, prefix
        return
    url = _require_service("redis", REDIS_URL)
    yield "redis", url, prefix
    await _delete_prefix(url, prefix)


@pytest.fixture
async def redis_only() -> AsyncIterator[tuple[str, str]]:
    """(Redis URL, key prefix) for the Redis-specific cases, the prefix's keys removed afterwards."""
    url = _require_service("redis", REDIS_URL)
    prefix = f"chipp-test:{uuid.uuid4().hex}:"
    yield url, prefix
    await _delete_prefix(url, prefix)


@pytest.fixture
async def counter(counter_backend: tuple[str, str | None, str]) -> AsyncIterator[WindowCounter]:
    """A fresh counter of the test's backend."""
    _name, url, prefix = counter_backend
    made: WindowCounter = MemoryCounter() if url is None else RedisCounter(url, prefix)
    yield made
    await made.close()


async def test_counts_each_hit_in_a_window(counter: WindowCounter) -> None:
    assert [await counter.hit("key:a", WINDOW, 120) for _ in range(3)] == [1, 2, 3]


async def test_keys_are_counted_separately(counter: WindowCounter) -> None:
    await counter.hit("key:a", WINDOW, 120)
    await counter.hit("key:a", WINDOW, 120)
    assert await counter.hit("key:b", WINDOW, 120) == 1


async def test_a_new_window_counts_from_one(counter: WindowCounter) -> None:
    await counter.hit("key:a", WINDOW, 120)
    await counter.hit("key:a", WINDOW, 120)
    assert await counter.hit("key:a", WINDOW + 1, 120) == 1


async def test_concurrent_hits_each_get_their_own_count(counter: WindowCounter) -> None:
    counts = await asyncio.gather(*(counter.hit("key:a", WINDOW, 120) for _ in range(200)))
    assert sorted(counts) == list(range(1, 201))


async def test_limiter_admits_exactly_the_limit(counter: WindowCounter) -> None:
    limiter = RateLimiter(counter, limit=5)
    decisions = [await limiter.check("key:a", now=NOW) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    assert {d.reset_at for d in decisions} == {(WINDOW + 1) * WINDOW_SECONDS}
    assert decisions[-1].retry_after == math.ceil((WINDOW + 1) * WINDOW_SECONDS - NOW) == 50


async def test_conditional_requests_count_apart_and_show_the_keys_own_count(counter: WindowCounter) -> None:
    limiter = RateLimiter(counter, limit=2)
    await limiter.check("key:a", now=NOW)
    decisions = [await limiter.check_conditional("key:a", now=NOW) for _ in range(21)]
    assert [d.allowed for d in decisions] == [True] * 20 + [False]  # ten times the limit
    assert {d.remaining for d in decisions} == {1}  # the key's own count, not counted by them
    assert (await limiter.check("key:a", now=NOW)).remaining == 0


async def test_limiter_starts_again_at_the_next_utc_minute(counter: WindowCounter) -> None:
    limiter = RateLimiter(counter, limit=1)
    assert (await limiter.check("key:a", now=NOW)).allowed
    assert not (await limiter.check("key:a", now=NOW + 49.9)).allowed
    assert (await limiter.check("key:a", now=NOW + 50.0)).allowed


async def test_retry_after_is_at_least_one_second(counter: WindowCounter) -> None:
    limiter = RateLimiter(counter, limit=1)
    end = (WINDOW + 1) * WINDOW_SECONDS
    await limiter.check("key:a", now=end - 0.2)
    assert (await limiter.check("key:a", now=end - 0.2)).retry_after == 1


async def test_redis_counts_are_shared_between_processes(redis_only: tuple[str, str]) -> None:
    """Two counters on one Redis stand for two workers: together they count each request once."""
    url, prefix = redis_only
    workers = [RedisCounter(url, prefix), RedisCounter(url, prefix)]
    try:
        counts = await asyncio.gather(*(workers[i % 2].hit("key:a", WINDOW, 120) for i in range(100)))
    finally:
        for worker in workers:
            await worker.close()
    assert sorted(counts) == list(range(1, 101))


async def test_redis_window_keys_expire(redis_only: tuple[str, str]) -> None:
    url, prefix = redis_only
    counter = RedisCounter(url, prefix)
    client = Redis.from_url(url)
    try:
        await counter.hit("key:a", WINDOW, 120)
        await counter.hit("key:a", WINDOW, 120)  # the second hit must not reset or drop the expiry
        assert 0 < await client.ttl(counter.key_for("key:a", WINDOW)) <= 120
    finally:
        await counter.close()
        await client.aclose()


# Through HTTP: the app builds its counter from the settings, as a deployment does.


@pytest.fixture
async def limited_api(
    counter_backend: tuple[str, str | None, str], sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """A client for an app limited to 3 requests a minute on the test's counter backend, and the app."""
    _name, url, prefix = counter_backend
    path = tmp_path / "limits.db"
    shutil.copyfile(sqlite_template, path)
    server = create_app(
        Settings(database_url=f"sqlite:///{path}", rate_limit=3, redis_url=url, redis_prefix=prefix)
    )
    transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, server
    await server.state.limiter.counter.close()
    await server.state.engine.dispose()


async def _make_key(server: Any) -> tuple[uuid.UUID, str]:
    async with server.state.engine.begin() as db:
        created = await apps.create_app(db, "Limited app")
        key = await apps.create_key(db, created["id"], "test key")
    return created["id"], key["rawKey"]


async def test_http_counter_matches_the_settings(
    limited_api: tuple[httpx.AsyncClient, Any], counter_backend: tuple[str, str | None, str]
) -> None:
    _client, server = limited_api
    counter = server.state.limiter.counter
    if counter_backend[1] is None:
        assert isinstance(counter, MemoryCounter)
    else:
        assert isinstance(counter, FallbackCounter) and isinstance(counter.primary, RedisCounter)


async def test_http_headers_then_429_over_the_limit(limited_api: tuple[httpx.AsyncClient, Any]) -> None:
    client, server = limited_api
    app_id, key = await _make_key(server)
    headers = {"Authorization": f"Bearer {key}"}
    responses = [await client.get(f"/api/v1/apps/{app_id}/tags", headers=headers) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in responses[:3]} == {"3"}
    reset = int(responses[0].headers["X-RateLimit-Reset"])
    assert reset % WINDOW_SECONDS == 0
    over = responses[3]
    assert over.json() == {"error": {"code": "rate_limited", "message": "Rate limit exceeded"}}
    assert 1 <= int(over.headers["Retry-After"]) <= WINDOW_SECONDS
    assert not any(name.lower().startswith("x-ratelimit") for name in over.headers)


async def test_http_failed_authentication_is_limited_per_address(
    limited_api: tuple[httpx.AsyncClient, Any],
) -> None:
    client, server = limited_api
    app_id, _key = await _make_key(server)
    bad = {"Authorization": "Bearer chipp_" + "0" * 32}
    statuses = [(await client.get(f"/api/v1/apps/{app_id}/tags", headers=bad)).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


class _Down:
    """A shared counter that cannot be reached."""

    async def hit(self, key: str, window: int, ttl: int) -> int:
        raise CounterUnavailable("down")

    async def hit_and_peek(self, key: str, other: str, window: int, ttl: int) -> tuple[int, int]:
        raise CounterUnavailable("down")

    async def close(self) -> None:
        pass


async def test_conditional_counts_fall_back_to_memory_while_the_shared_counter_is_down() -> None:
    counter = FallbackCounter(_Down(), MemoryCounter(), retry_seconds=60)
    limiter = RateLimiter(counter, limit=3)
    await limiter.check("key:a", now=NOW)
    decision = await limiter.check_conditional("key:a", now=NOW)
    assert decision.allowed and decision.remaining == 2 and counter.degraded
    assert (await limiter.check_conditional("key:a", now=NOW)).remaining == 2
