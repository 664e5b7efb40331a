"""Hostile input with memory bounded (issue 6): each hostile request of tests/integration/test_hostile_http.py's
kinds is answered with a 4xx envelope within a second or two while the Python heap never grows by more than a
few MiB over what the request itself weighs, and a body streamed without a length is cut off at the 1 MiB cap
instead of being read whole (64 MiB offered, at most ~1 MiB held)."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import Any

import orjson
import pytest

from tests.factories import TestApp, make_app
from tests.integration.test_hostile_http import RECORDS, WRITE, assert_4xx_envelope, auth, call, still_serves

MIB = 1024 * 1024
# Far above what a request of these sizes needs, far below what reading an unbounded input would cost.
PEAK_BUDGET = 8 * MIB
TIME_BUDGET = 2.0


@pytest.fixture
async def target(server: Any) -> TestApp:
    app = await make_app(server, RECORDS, scopes=WRITE)
    # Warm up: the first request imports and compiles lazily, which is not the request's cost.
    await call(server, "GET", app.base + "/sessions", query=b"limit=1", headers=auth(app))
    await call(server, "POST", app.base + "/conversations/log", headers=auth(app), body=b"[]")
    return app


def hostile_requests(app: TestApp) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, method and path, call arguments) of one request of every hostile kind."""
    log = app.base + "/conversations/log"
    json_headers = [*auth(app), (b"content-type", b"application/json")]
    depth = 100_000
    return [
        ("64 KiB Authorization header", "GET " + app.base + "/sessions",
         {"headers": [(b"authorization", b"Bearer " + b"a" * 65536)]}),
        ("100 KB query string", "GET " + app.base + "/sessions",
         {"query": b"search=" + b"x" * 100_000, "headers": auth(app)}),
        ("10,000 repeated parameters", "GET " + app.base + "/sessions",
         {"query": b"&".join([b"limit=1"] * 10_000), "headers": auth(app)}),
        ("JSON arrays nested 100,000 deep", "POST " + log,
         {"headers": json_headers, "body": b"[" * depth + b"]" * depth}),
        ("JSON objects nested 100,000 deep", "POST " + log,
         {"headers": json_headers, "body": b'{"a":' * depth + b"1" + b"}" * depth}),
        ("invalid UTF-8 body", "POST " + log, {"headers": json_headers, "body": b"\xff" * 100_000}),
        ("invalid UTF-8 query", "GET " + app.base + "/sessions", {"query": b"search=\xff\xfe" * 10_000,
                                                                   "headers": auth(app)}),
        ("1 MiB + 1 body with its length", "POST " + log,
         {"headers": json_headers, "body": b" " * (MIB + 1)}),
    ]


@pytest.mark.parametrize("index", range(8))
async def test_a_hostile_request_is_a_quick_4xx_with_memory_bounded(server: Any, target: TestApp, index: int) -> None:
    name, route, arguments = hostile_requests(target)[index]
    method, path = route.split(" ", 1)
    weight = len(arguments.get("body", b"")) + len(arguments.get("query", b""))
    tracemalloc.start()
    try:
        started = time.perf_counter()
        result = await call(server, method, path, **arguments)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_4xx_envelope(result)
    assert elapsed < TIME_BUDGET, (name, elapsed)
    assert peak < weight * 4 + PEAK_BUDGET, (name, peak // 1024, "KiB")
    await still_serves(server, target)


async def test_a_body_streamed_without_a_length_is_cut_off_at_the_cap(server: Any, target: TestApp) -> None:
    chunk = b" " * 65536
    offered = 1024  # chunks: 64 MiB in all
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent >= offered:
            await asyncio.sleep(3600)
        sent += 1
        return {"type": "http.request", "body": chunk, "more_body": sent < offered}

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": target.base + "/conversations/log", "raw_path": (target.base + "/conversations/log").encode(),
        "root_path": "", "query_string": b"", "client": ("203.0.113.9", 50000), "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), *auth(target), (b"content-type", b"application/json"),
                    (b"transfer-encoding", b"chunked")],
    }
    started: dict[str, Any] = {}
    body: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    tracemalloc.start()
    try:
        await asyncio.wait_for(server(scope, receive, send), 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert started["status"] == 413, (started, b"".join(body)[:200])
    assert orjson.loads(b"".join(body))["error"]["code"] == "payload_too_large"
    assert sent * len(chunk) <= 2 * MIB, f"read {sent * len(chunk)} bytes of a body over the 1 MiB cap"
    assert peak < 4 * MIB + PEAK_BUDGET, peak // 1024
    await still_serves(server, target)
