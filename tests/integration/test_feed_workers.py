"""The event feed across processes (SPEC section 11): four uvicorn workers sharing the database and Redis, many
concurrent writers spread over them, and followers long-polling through any of them: every follower sees every
event exactly once, in the order of one full walk of the feed, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.resources.apps import queries as apps
from tests.conftest import REDIS_URL, _require_service
from tests.integration.test_workers import _free_port, _wait_until_serving

WORKERS = 4
WRITES = 60  # conversations/log requests, each a new session with one message: two events


@asynccontextmanager
async def serve_workers(
    database_url: str, tmp_path: Path, workers: int, name: str
) -> AsyncIterator[tuple[str, str, str]]:
    """`uvicorn --workers N` over a database with Redis and an app with a write key; (base URL, app id, raw key).
    Shared by the tests that need several real processes (here and test_conditional_workers.py)."""
    _require_service("redis", REDIS_URL)
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as db:
            created = await apps.create_app(db, name)
            key = await apps.create_key(db, created["id"], "writer", {"sessions": "write"})
    finally:
        await engine.dispose()
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHIPP_")}
    env.update(CHIPP_DATABASE_URL=database_url, CHIPP_REDIS_URL=REDIS_URL or "",
               CHIPP_REDIS_PREFIX=f"chipp-test:{uuid.uuid4().hex}:", CHIPP_RATE_LIMIT="1000000")
    log_path = tmp_path / "uvicorn.log"
    log = log_path.open("wb")
    command = [sys.executable, "-m", "uvicorn", "chipp_builder.server.app:create_app", "--factory",
               "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_until_serving(base, process, log_path, workers)
        yield base, str(created["id"]), str(key["rawKey"])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture
async def feed_workers(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, str, str]]:
    """Four workers over the test's database with Redis."""
    async with serve_workers(database_url, tmp_path, WORKERS, "Feed workers") as served:
        yield served


async def test_followers_on_any_worker_see_every_event_once(feed_workers: tuple[str, str, str]) -> None:
    base, app_id, key = feed_workers
    prefix = f"/api/v1/apps/{app_id}"
    headers = {"Authorization": f"Bearer {key}"}
    # Separate connections, so that requests spread over the workers the kernel hands them to.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
        start = (await client.get(prefix + "/events/latest")).json()["data"]["cursor"]
        done = asyncio.Event()

        async def follow() -> list[str]:
            seen: list[str] = []
            cursor = start
            while True:
                finished = done.is_set()
                page = (await client.get(prefix + "/events", params={"after": cursor, "limit": 9, "wait": 1})).json()
                seen.extend(event["id"] for event in page["data"])
                cursor = page["pagination"]["next_cursor"]
                if finished and not page["pagination"]["has_more"]:
                    return seen

        async def write(n: int) -> Any:
            body = {"messages": [{"role": "user", "content": f"hello {n}"}]}
            response = await client.post(prefix + "/conversations/log", json=body)
            assert response.status_code == 201, response.text

        followers = [asyncio.create_task(follow()) for _ in range(3)]
        await asyncio.gather(*(write(n) for n in range(WRITES)))
        done.set()
        walks = await asyncio.wait_for(asyncio.gather(*followers), 60)
        full: list[str] = []
        cursor = start
        while True:
            page = (await client.get(prefix + "/events", params={"after": cursor, "limit": 500})).json()
            full.extend(event["id"] for event in page["data"])
            cursor = page["pagination"]["next_cursor"]
            if not page["pagination"]["has_more"]:
                break
    assert len(full) == 2 * WRITES and len(set(full)) == len(full)
    for seen in walks:
        assert seen == full
