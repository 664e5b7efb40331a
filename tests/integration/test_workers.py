"""Several worker processes behind one Redis never admit more than the limit per key per window."""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.resources.apps import queries as apps
from tests.conftest import REDIS_URL, _require_service

WORKERS = 4
LIMIT = 50
REQUESTS = 200
START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _make_key(database_url: str) -> tuple[str, str]:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as db:
            created = await apps.create_app(db, "Workers app")
            key = await apps.create_key(db, created["id"], "load key")
    finally:
        await engine.dispose()
    return f"/api/v1/apps/{created['id']}/tags", key["rawKey"]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test alone, its keys removed afterwards."""
    url = _require_service("redis", REDIS_URL)
    prefix = f"chipp-test:{uuid.uuid4().hex}:"
    yield prefix
    client = Redis.from_url(url)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def database_file(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database for the workers to share."""
    path = tmp_path / "workers.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
async def workers(database_file: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[str]:
    """`uvicorn --workers 4` over the database and Redis, configured from the environment; its base URL."""
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHIPP_")}
    env.update(
        CHIPP_DATABASE_URL=database_file,
        CHIPP_REDIS_URL=REDIS_URL or "",
        CHIPP_REDIS_PREFIX=redis_prefix,
        CHIPP_RATE_LIMIT=str(LIMIT),
    )
    log_path = tmp_path / "uvicorn.log"
    log = log_path.open("wb")
    command = [
        sys.executable, "-m", "uvicorn", "chipp_builder.server.app:create_app", "--factory",
        "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]
    # A session of its own, so that the workers can be stopped with their supervisor and nothing else.
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_until_serving(base, process, log_path)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


async def _wait_until_serving(
    base: str, process: subprocess.Popen[bytes], log_path: Path, workers: int = WORKERS
) -> None:
    # Every worker must be up, or the load would meet fewer processes than the test claims.
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient(base_url=base, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {process.returncode}: {log_path.read_text()}")
            started = log_path.read_text().count("Application startup complete")
            try:
                # An unknown route is answered (404) before authentication: polling spends no rate limit.
                if started >= workers and (await client.get("/ready-probe")).status_code == 404:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"uvicorn did not start {workers} workers in time: {log_path.read_text()}")


async def _away_from_a_window_boundary(margin: float = 10.0) -> None:
    left = 60 - time.time() % 60
    if left < margin:
        await asyncio.sleep(left + 0.2)


async def test_four_workers_admit_exactly_the_limit(
    workers: str, database_file: str, redis_prefix: str, tmp_path: Path
) -> None:
    path, key = await _make_key(database_file)
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=workers, limits=limits, timeout=30.0) as client:
        await _away_from_a_window_boundary()
        responses = await asyncio.gather(*(client.get(path, headers=headers) for _ in range(REQUESTS)))
    statuses = collections.Counter(r.status_code for r in responses)
    assert statuses == {200: LIMIT, 429: REQUESTS - LIMIT}, (tmp_path / "uvicorn.log").read_text()[-2000:]
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in responses if r.status_code == 200) == list(
        range(LIMIT)
    )
    assert all(r.json()["error"]["code"] == "rate_limited" for r in responses if r.status_code == 429)
    # Every request was counted once, in Redis, under this test's prefix.
    client_redis = Redis.from_url(REDIS_URL or "")
    try:
        keys = [k async for k in client_redis.scan_iter(match=redis_prefix + "*")]
        assert len(keys) == 1 and int(await client_redis.get(keys[0]) or 0) == REQUESTS
    finally:
        await client_redis.aclose()
