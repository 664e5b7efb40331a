"""Backing services failing under a running server: PostgreSQL gives 503s and recovers, Redis falls back.

The real services are shared with other test runs, so they are never stopped: the server under test talks
to them through a small TCP proxy owned by the test, which it stops, restarts or silences instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from chipp_builder.server.app import create_app
from chipp_builder.server.auth import generate_key
from chipp_builder.server.config import Settings
from chipp_builder.server.db.engine import is_unavailable, make_engine
from chipp_builder.server.ratelimit import FallbackCounter
from chipp_builder.server.resources.apps import queries as apps
from tests.conftest import REDIS_URL, _require_service

UNAVAILABLE = {
    "error": {"code": "service_unavailable", "message": "The database is unavailable; retry shortly"}
}


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; can be stopped (refused, connections reset) or silenced."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.silent = False  # accept and read, but forward nothing: a network that drops packets
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Listen (again, on the same port after a stop) and forward."""
        self.silent = False
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and reset every open one, as a stopped server does."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.silent:
                await self._drain_forever(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()
                return
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def _drain_forever(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.silent:
                    continue  # dropped on the floor, and the connection stays open
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


@pytest.fixture
async def proxied_database(request: pytest.FixtureRequest) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy to the test PostgreSQL and the migrated test database's URL through it."""
    direct = make_url(request.getfixturevalue("postgres_database"))
    proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432)
    await proxy.start()
    url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield proxy, url
    await proxy.stop()


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app for these settings and a client for it; closed at the end."""
    server = create_app(settings)
    transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, server
    finally:
        await server.state.limiter.counter.close()
        await server.state.engine.dispose()


async def make_key(server: Any) -> tuple[str, dict[str, str]]:
    """A new app and key in the server's database: (the app's tags path, request headers)."""
    async with server.state.engine.begin() as db:
        created = await apps.create_app(db, "Failure app")
        key = await apps.create_key(db, created["id"], "test key")
    return f"/api/v1/apps/{created['id']}/tags", {"Authorization": f"Bearer {key['rawKey']}"}


async def timed_get(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[httpx.Response, float]:
    """A GET and how long it took, in seconds."""
    started = time.monotonic()
    response = await client.get(path, headers=headers)
    return response, time.monotonic() - started


# PostgreSQL


async def test_postgres_stopped_mid_run_gives_503_then_recovers(
    proxied_database: tuple[TcpProxy, str],
) -> None:
    proxy, url = proxied_database
    async with served(Settings(database_url=url, rate_limit=100_000)) as (client, server):
        path, headers = await make_key(server)
        assert (await client.get(path, headers=headers)).status_code == 200

        statuses: list[int] = []
        bodies: list[Any] = []
        done = asyncio.Event()

        async def hammer() -> None:
            while not done.is_set():
                response, elapsed = await timed_get(client, path, headers)
                assert elapsed < 5.0, f"a request took {elapsed:.1f}s"
                statuses.append(response.status_code)
                if response.status_code != 200:
                    bodies.append(response.json())

        workers = [asyncio.create_task(hammer()) for _ in range(8)]
        await asyncio.sleep(0.3)
        await proxy.stop()  # PostgreSQL goes away under load: open connections are reset
        await asyncio.sleep(1.0)
        await proxy.start()  # and comes back on the same address: no restart of the app
        await asyncio.sleep(0.5)
        done.set()
        await asyncio.gather(*workers)

        assert set(statuses) == {200, 503}, statuses
        assert all(body == UNAVAILABLE for body in bodies)
        after = [(await client.get(path, headers=headers)).status_code for _ in range(5)]
        assert after == [200] * 5


async def test_postgres_down_answers_every_request_with_a_quick_503(
    proxied_database: tuple[TcpProxy, str],
) -> None:
    proxy, url = proxied_database
    async with served(Settings(database_url=url, rate_limit=100_000)) as (client, server):
        path, headers = await make_key(server)
        await proxy.stop()
        results = await asyncio.gather(*(timed_get(client, path, headers) for _ in range(20)))
        assert [r.status_code for r, _ in results] == [503] * 20
        assert all(r.json() == UNAVAILABLE for r, _ in results)
        assert max(elapsed for _, elapsed in results) < 5.0
        await proxy.start()
        assert (await client.get(path, headers=headers)).status_code == 200


async def test_postgres_silent_network_gives_503_within_the_timeout(
    proxied_database: tuple[TcpProxy, str],
) -> None:
    """Packets dropped, connections left open: the connect and statement timeouts bound every request."""
    proxy, url = proxied_database
    settings = Settings(database_url=url, rate_limit=100_000, db_timeout_seconds=1.0)
    async with served(settings) as (client, server):
        path, headers = await make_key(server)
        assert (await client.get(path, headers=headers)).status_code == 200
        proxy.silent = True  # the pooled connection's pre-ping gets no answer; new connections neither
        for _ in range(2):
            response, elapsed = await timed_get(client, path, headers)
            assert response.status_code == 503 and response.json() == UNAVAILABLE
            assert elapsed < 2.5, f"a request took {elapsed:.1f}s with a 1s timeout"
        await proxy.stop()
        await proxy.start()
        assert (await client.get(path, headers=headers)).status_code == 200


async def test_postgres_closed_port_gives_503(request: pytest.FixtureRequest) -> None:
    direct = make_url(request.getfixturevalue("postgres_database"))
    proxy = TcpProxy("127.0.0.1", 9)
    await proxy.start()
    await proxy.stop()  # a port that was just free and now refuses
    url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    async with served(Settings(database_url=url)) as (client, _server):
        # A well-formed key, so that the request gets as far as the key lookup.
        headers = {"Authorization": f"Bearer {generate_key()}"}
        response, elapsed = await timed_get(client, f"/api/v1/apps/{uuid.uuid4()}/tags", headers)
    assert response.status_code == 503 and response.json() == UNAVAILABLE
    assert elapsed < 5.0


# Redis


@pytest.fixture
async def proxied_redis(
    sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[tuple[TcpProxy, Settings, Redis]]:
    """A proxy to the test Redis, settings of an app limited to 5 a minute through it, and a direct client."""
    direct = urlsplit(_require_service("redis", REDIS_URL))
    proxy = TcpProxy(direct.hostname or "127.0.0.1", direct.port or 6379)
    await proxy.start()
    path = tmp_path / "redis-failures.db"
    shutil.copyfile(sqlite_template, path)
    prefix = f"chipp-test:{uuid.uuid4().hex}:"
    settings = Settings(
        database_url=f"sqlite:///{path}",
        redis_url=urlunsplit(direct._replace(netloc=f"127.0.0.1:{proxy.port}")),
        redis_prefix=prefix,
        rate_limit=5,
    )
    client = Redis.from_url(REDIS_URL or "")
    yield proxy, settings, client
    await proxy.stop()
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def _shared_count(client: Redis, prefix: str) -> int:
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    return sum([int(await client.get(key) or 0) for key in keys])


async def test_redis_down_falls_back_to_memory_then_returns(
    proxied_redis: tuple[TcpProxy, Settings, Redis], caplog: pytest.LogCaptureFixture
) -> None:
    proxy, settings, direct = proxied_redis
    caplog.set_level(logging.INFO, logger="chipp_builder.ratelimit")
    if time.time() % 60 > 55:  # the test's counts must all land in one window
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    async with served(settings) as (client, server):
        counter = server.state.limiter.counter
        assert isinstance(counter, FallbackCounter)
        counter.retry_seconds = 0.3  # the deployment default is a few seconds; the test need not wait
        path, headers = await make_key(server)

        first = await client.get(path, headers=headers)
        assert first.status_code == 200 and first.headers["X-RateLimit-Remaining"] == "4"
        assert await _shared_count(direct, settings.redis_prefix) == 1

        await proxy.stop()
        down = [await timed_get(client, path, headers) for _ in range(6)]
        # This process now counts alone, from zero: five admitted, the sixth limited. Never a 500, never slow.
        assert [r.status_code for r, _ in down] == [200] * 5 + [429]
        assert [r.headers["X-RateLimit-Remaining"] for r, _ in down[:5]] == ["4", "3", "2", "1", "0"]
        assert max(elapsed for _, elapsed in down) < 1.0  # a reset connection fails at once
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "counting per process" in warnings[0].getMessage()

        await proxy.start()
        await asyncio.sleep(0.35)
        back = await client.get(path, headers=headers)
        # Counted in Redis again: the shared window still holds the one request made before the outage.
        assert back.status_code == 200 and back.headers["X-RateLimit-Remaining"] == "3"
        assert await _shared_count(direct, settings.redis_prefix) == 2
        assert not counter.degraded
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


async def test_redis_silent_network_costs_at_most_one_timeout(
    proxied_redis: tuple[TcpProxy, Settings, Redis],
) -> None:
    proxy, settings, _direct = proxied_redis
    async with served(settings.model_copy(update={"rate_limit": 1000})) as (client, server):
        path, headers = await make_key(server)
        assert (await client.get(path, headers=headers)).status_code == 200
        proxy.silent = True
        started = time.monotonic()
        results = [await timed_get(client, path, headers) for _ in range(10)]
        total = time.monotonic() - started
        assert [r.status_code for r, _ in results] == [200] * 10
        # The first request waits out the socket timeout (2 s); the rest skip Redis until the retry time.
        assert total < 3.5, f"10 requests took {total:.1f}s"
        assert sorted(elapsed for _, elapsed in results)[-2] < 0.5


# What counts as "unavailable" (503) rather than a bug (500)


async def _error_of(engine: Any, statement: str) -> BaseException:
    with pytest.raises(Exception) as caught:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    return caught.value


async def test_statement_timeout_and_pool_timeout_are_unavailable(request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_database")
    engine = make_engine(url, timeout_seconds=0.5, pool_size=1, statement_timeout_seconds=0.5)
    try:
        assert is_unavailable(await _error_of(engine, "SELECT pg_sleep(3)"))
        assert not is_unavailable(await _error_of(engine, "SELECT * FROM no_such_table"))
        async with engine.connect() as first, engine.connect() as second:  # pool_size 1 plus overflow 1
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            with pytest.raises(Exception) as caught:
                async with engine.connect():
                    pass
            assert is_unavailable(caught.value)
    finally:
        await engine.dispose()


def test_server_refusing_connections_is_unavailable() -> None:
    assert is_unavailable(asyncpg.CannotConnectNowError("the database system is starting up"))
    assert is_unavailable(asyncpg.TooManyConnectionsError("sorry, too many clients already"))
    assert is_unavailable(ConnectionRefusedError(111, "Connection refused"))
    assert not is_unavailable(asyncpg.UndefinedColumnError("column does not exist"))
