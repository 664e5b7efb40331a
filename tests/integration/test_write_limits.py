"""Bodies over the 1 MiB limit are a 413 in the envelope, refused before they are read whole, on every
write route; scopes are enforced per resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.factories import assert_error, get, make_app

MIB = 1024 * 1024
WRITE_ROUTES = ["/conversations/log", "/feedback", "/consumers/auth"]


def big_log_body(size: int) -> bytes:
    """A valid conversations/log body of exactly `size` bytes."""
    base = orjson.dumps({"messages": [{"role": "user", "content": ""}]})
    return orjson.dumps({"messages": [{"role": "user", "content": "x" * (size - len(base))}]})


async def test_a_body_of_exactly_the_limit_is_accepted(server: Any, api: Any) -> None:
    app = await make_app(server, scopes={"sessions": "write"})
    body = big_log_body(MIB)
    assert len(body) == MIB
    response = await api.post(
        app.base + "/conversations/log",
        content=body,
        headers={**app.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text[:200]


@pytest.mark.parametrize("path", WRITE_ROUTES)
async def test_a_declared_length_over_the_limit_is_a_413_before_authentication(
    server: Any, api: Any, path: str
) -> None:
    app = await make_app(server, scopes={"sessions": "write"})
    response = await api.post(
        app.base + path, content=big_log_body(MIB + 1), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large", "Request body is larger than 1048576 bytes")
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", WRITE_ROUTES)
async def test_a_streamed_body_over_the_limit_is_a_413_without_reading_it_all(
    server: Any, api: Any, path: str
) -> None:
    app = await make_app(server, scopes={"sessions": "write", "feedback": "write", "consumers": "write"})
    sent = 0
    chunk = b"x" * 65536

    async def endless() -> AsyncIterator[bytes]:
        # 64 MiB on offer: the server must stop asking long before the end.
        nonlocal sent
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(1024):
            sent += len(chunk)
            yield chunk

    response = await api.post(app.base + path, content=endless(), headers=app.headers)
    assert_error(response, 413, "payload_too_large")
    assert "content-length" not in response.request.headers
    assert sent <= MIB + 2 * len(chunk)
    assert (await get(api, app, "/sessions")).json()["data"] == []


async def test_a_malformed_content_length_is_a_400(server: Any, api: Any) -> None:
    app = await make_app(server, scopes={"sessions": "write"})
    headers = [(b"authorization", f"Bearer {app.key}".encode()), (b"content-length", b"12abc")]
    response = await api.post(app.base + "/conversations/log", content=b'{"messages":[]}', headers=headers)
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("path", "resource", "body"),
    [
        ("/conversations/log", "sessions", {"messages": [{"role": "user", "content": "hi"}]}),
        ("/feedback", "feedback", {"message_id": "m", "rating": 1}),
        ("/consumers/auth", "consumers", {"external_id": "u"}),
    ],
)
async def test_each_write_needs_write_on_its_own_resource(
    server: Any, api: Any, path: str, resource: str, body: dict[str, Any]
) -> None:
    others = {r: "write" for r in ("sessions", "feedback", "consumers") if r != resource}
    for scopes in ({}, {resource: "read"}, {resource: "none"}, others):
        app = await make_app(server, scopes=scopes)
        response = await api.post(app.base + path, json=body, headers=app.headers)
        assert_error(response, 403, "forbidden", f"API key lacks write access to {resource}")
