"""Conditional GETs across processes (SPEC section 12): two uvicorn workers sharing the database and Redis.
After a write through either, no conditional read through either answers 304 for the page it changed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.resources.apps import queries as apps
from tests.conftest import REDIS_URL, _require_service
from tests.integration import test_workers
from tests.integration.test_workers import _free_port, _wait_until_serving

TRIES = 40  # writes, each followed by conditional reads over fresh connections


@pytest.fixture
async def two_workers(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, str, str]]:
    """`uvicorn --workers 2` over the test's database with Redis; (base URL, app id, raw key)."""
    monkeypatch.setattr(test_workers, "WORKERS", 2)  # what _wait_until_serving waits for
    _require_service("redis", REDIS_URL)
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as db:
            created = await apps.create_app(db, "Conditional workers")
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
               "--workers", "2", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_until_serving(base, process, log_path)
        yield base, str(created["id"]), str(key["rawKey"])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


async def test_no_worker_answers_304_for_a_page_another_changed(two_workers: tuple[str, str, str]) -> None:
    base, app_id, key = two_workers
    prefix = f"/api/v1/apps/{app_id}"
    headers = {"Authorization": f"Bearer {key}"}
    # No kept connections: every request gets whichever worker the kernel hands the new connection to.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        etag = (await client.get(prefix + "/sessions")).headers["etag"]
        not_modified = 0
        for n in range(TRIES):
            body = {"messages": [{"role": "user", "content": f"hello {n}"}]}
            logged = await client.post(prefix + "/conversations/log", json=body)
            assert logged.status_code == 201, logged.text
            session_id = logged.json()["data"]["session_id"]
            fresh = None
            for _ in range(3):
                read = await client.get(prefix + "/sessions", params={"limit": 100}, headers={"If-None-Match": etag})
                assert read.status_code == 200, (n, "a stale 304 after a write")
                assert session_id in {row["id"] for row in read.json()["data"]}
                fresh = fresh or read.headers["etag"]
                assert read.headers["etag"] == fresh  # every worker works out the same ETag
            assert fresh is not None and fresh != etag
            etag = fresh
            for _ in range(2):
                again = await client.get(prefix + "/sessions", params={"limit": 100}, headers={"If-None-Match": etag})
                assert again.status_code == 304
                not_modified += 1
    assert not_modified == 2 * TRIES
