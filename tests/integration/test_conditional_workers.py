"""Conditional GETs across processes (SPEC section 12): two uvicorn workers sharing the database and Redis.
After a write through either, no conditional read through either answers 304 for the page it changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_feed_workers import serve_workers

TRIES = 40  # writes, each followed by conditional reads over fresh connections


@pytest.fixture
async def two_workers(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, str, str]]:
    """`uvicorn --workers 2` over the test's database with Redis; (base URL, app id, raw key)."""
    async with serve_workers(database_url, tmp_path, 2, "Conditional workers") as served:
        yield served


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
