"""Hostile requests through the ASGI app (issue 6): oversized headers and query strings, thousands of
repeated parameters, JSON nested 100,000 deep, invalid UTF-8 in the query, the path and the body. Each is
answered quickly with a 4xx error envelope, never a 500, and the server keeps serving afterwards.

Raw requests go straight to the ASGI callable, so bytes no HTTP client would send still reach the app."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.factories import TestApp, make_app, message_record, session_record, uid

SESSION = uid(1, 1)
RECORDS = [
    session_record(SESSION, "2025-06-01T10:00:00Z", title="Billing"),
    message_record("m1", SESSION, "2025-06-01T10:00:01Z"),
]
WRITE = {"sessions": "write", "feedback": "write", "consumers": "write"}
# Generous: these must be quick, but a loaded CI machine must not make them flaky.
TIMEOUT = 10.0


async def call(app: Any, method: str, path: bytes | str, *, query: bytes = b"",
               headers: list[tuple[bytes, bytes]] = (), body: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
    """One request to the ASGI app with exactly these bytes; (status, headers, body)."""
    raw_path = path.encode() if isinstance(path, str) else path
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": raw_path.decode("latin-1"), "raw_path": raw_path, "root_path": "", "query_string": query,
        "headers": [(b"host", b"testserver"), *headers, (b"content-length", str(len(body)).encode())],
        "client": ("203.0.113.9", 50000), "server": ("testserver", 80),
    }
    sent = False
    started: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await asyncio.wait_for(app(scope, receive, send), TIMEOUT)
    return started["status"], {k.lower(): v for k, v in started.get("headers", [])}, b"".join(chunks)


def assert_4xx_envelope(result: tuple[int, dict[bytes, bytes], bytes], status: int | None = None) -> str:
    code, headers, body = result
    assert 400 <= code < 500, (code, body[:300])
    if status is not None:
        assert code == status, (code, body[:300])
    assert headers[b"content-type"].startswith(b"application/json"), headers
    assert headers.get(b"x-content-type-options") == b"nosniff", headers
    parsed = orjson.loads(body)
    assert list(parsed) == ["error"] and list(parsed["error"]) == ["code", "message"], parsed
    assert isinstance(parsed["error"]["message"], str) and parsed["error"]["message"]
    return str(parsed["error"]["code"])


@pytest.fixture
async def target(server: Any) -> TestApp:
    return await make_app(server, RECORDS, scopes=WRITE)


def auth(app: TestApp) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {app.key}".encode())]


async def still_serves(server: Any, app: TestApp) -> None:
    code, _, body = await call(server, "GET", app.base + "/sessions", headers=auth(app))
    assert code == 200 and orjson.loads(body)["data"][0]["id"] == SESSION


BIG = b"a" * 65536


async def test_a_64_kb_header_value(server: Any, target: TestApp) -> None:
    base = target.base + "/sessions"
    assert assert_4xx_envelope(await call(server, "GET", base, headers=[(b"authorization", b"Bearer " + BIG)]),
                               401) == "unauthorized"
    assert assert_4xx_envelope(await call(server, "GET", base, headers=[(b"authorization", BIG)]),
                               401) == "unauthorized"
    log = target.base + "/conversations/log"
    body = orjson.dumps({"messages": [{"role": "user", "content": "hi"}]})
    idempotency = [(b"idempotency-key", BIG), (b"content-type", b"application/json")]
    assert assert_4xx_envelope(await call(server, "POST", log, headers=auth(target) + idempotency, body=body),
                               400) == "invalid_request"
    # A large header the server does not read changes nothing.
    code, _, _ = await call(server, "GET", base, headers=[*auth(target), (b"x-padding", BIG)])
    assert code == 200
    await still_serves(server, target)


async def test_a_100_kb_query_string(server: Any, target: TestApp) -> None:
    for name in ("search", "cursor", "started_after", "limit", "source", "consumer_id"):
        query = name.encode() + b"=" + b"x" * 100_000
        result = await call(server, "GET", target.base + "/sessions", query=query, headers=auth(target))
        assert assert_4xx_envelope(result, 400) == "invalid_request"
    query = b"include=" + b"tool_details," * 8000 + b"tool_details"
    result = await call(server, "GET", f"{target.base}/sessions/{SESSION}/messages", query=query,
                        headers=auth(target))
    assert assert_4xx_envelope(result, 400) == "invalid_request"
    await still_serves(server, target)


async def test_ten_thousand_repeated_parameters(server: Any, target: TestApp) -> None:
    for name in (b"limit", b"search", b"cursor", b"source"):
        query = b"&".join([name + b"=1"] * 10_000)
        result = await call(server, "GET", target.base + "/sessions", query=query, headers=auth(target))
        assert assert_4xx_envelope(result, 400) == "invalid_request"
    # Ten thousand unknown parameters are ignored, quickly.
    query = b"&".join(b"p%d=1" % n for n in range(10_000))
    code, _, _ = await call(server, "GET", target.base + "/sessions", query=query, headers=auth(target))
    assert code == 200
    await still_serves(server, target)


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_deeply_nested_json_bodies(server: Any, target: TestApp, depth: int) -> None:
    log = target.base + "/conversations/log"
    headers = [*auth(target), (b"content-type", b"application/json")]
    nested_arrays = b"[" * depth + b"]" * depth
    nested_objects = b'{"a":' * depth + b"1" + b"}" * depth
    in_a_field = (b'{"messages":[{"role":"user","content":"hi","tool_results":[{"tool_name":"t","result":'
                  + nested_arrays + b"}]}]}")
    in_title = b'{"title":' + nested_objects + b',"messages":[{"role":"user","content":"hi"}]}'
    for body in (nested_arrays, nested_objects, in_a_field, in_title):
        assert assert_4xx_envelope(await call(server, "POST", log, headers=headers, body=body),
                                   400) == "invalid_request"
    await still_serves(server, target)


async def test_invalid_utf8_in_the_query_string(server: Any, target: TestApp) -> None:
    for query in (b"search=%FF%FE", b"search=\xff\xfe", b"search=%C0%AF", b"cursor=%ED%A0%80", b"source=\x80",
                  b"started_after=2025-06-01%FF", b"limit=%FF", b"%FF=1", b"search=a%", b"search=%zz"):
        result = await call(server, "GET", target.base + "/sessions", query=query, headers=auth(target))
        code = result[0]
        if code != 200:  # `%FF=1` is an unknown (ignored) parameter, `%zz` a literal search
            assert_4xx_envelope(result, 400)
    await still_serves(server, target)


async def test_invalid_utf8_in_the_path(server: Any, target: TestApp) -> None:
    for path in (target.base.encode() + b"/sessions/\xff\xfe", target.base.encode() + b"/sessions/%FF",
                 b"/api/v1/apps/\xc0\xaf/sessions"):
        assert_4xx_envelope(await call(server, "GET", path, headers=auth(target)))
    await still_serves(server, target)


async def test_invalid_utf8_in_the_body(server: Any, target: TestApp) -> None:
    headers = [*auth(target), (b"content-type", b"application/json")]
    bodies = (
        b'{"messages":[{"role":"user","content":"\xff\xfe"}]}',
        b'{"messages":[{"role":"user","content":"\xed\xa0\x80"}]}',  # an encoded surrogate
        b'{"messages":[{"role":"user","content":"\\ud800"}]}',  # an escaped lone surrogate
        b'\xef\xbb\xbf{"messages":[{"role":"user","content":"hi"}]}',  # a byte-order mark
        b"\xff" * 1000,
    )
    for body in bodies:
        result = await call(server, "POST", target.base + "/conversations/log", headers=headers, body=body)
        assert assert_4xx_envelope(result, 400) == "invalid_request"
    for path, body in ((target.base + "/feedback", b'{"message_id":"m1\xff","rating":1}'),
                       (target.base + "/consumers/auth", b'{"external_id":"\xc3"}')):
        assert assert_4xx_envelope(await call(server, "POST", path, headers=headers, body=body),
                                   400) == "invalid_request"
    await still_serves(server, target)


async def test_invalid_utf8_in_headers(server: Any, target: TestApp) -> None:
    base = target.base + "/sessions"
    for value in (b"Bearer \xff\xfe", b"\xff", b"Bearer chipp_\xc3\xa9" + b"a" * 30):
        assert assert_4xx_envelope(await call(server, "GET", base, headers=[(b"authorization", value)]),
                                   401) == "unauthorized"
    log = target.base + "/conversations/log"
    headers = [*auth(target), (b"content-type", b"application/json"), (b"idempotency-key", b"k\xff")]
    body = orjson.dumps({"messages": [{"role": "user", "content": "hi"}]})
    assert assert_4xx_envelope(await call(server, "POST", log, headers=headers, body=body), 400)
    await still_serves(server, target)
