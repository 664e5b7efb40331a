"""HTTP that clients and caches rely on (SPEC section 12): HEAD, gzip, CORS."""

from __future__ import annotations

import gzip
import shutil
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from tests.factories import get, make_app, session_record, uid

SESSIONS = [session_record(uid(3, n), f"2025-06-01T10:{n // 60:02d}:{n % 60:02d}Z") for n in range(100)]


async def test_head_answers_with_the_get_headers_and_no_body(server: Any, api: Any) -> None:
    app = await make_app(server, SESSIONS)
    got = await get(api, app, "/sessions", {"limit": 5})
    head = await api.head(app.base + "/sessions", params={"limit": 5}, headers=app.headers)
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    counted = "x-ratelimit-remaining"  # the HEAD is one more request
    assert {**head.headers, counted: ""} == {**got.headers, counted: ""}  # Content-Length, -Encoding included
    missing = await api.head(app.base + f"/sessions/{uid(9, 9)}", headers=app.headers)
    assert missing.status_code == 404 and missing.content == b""


async def test_head_on_a_post_only_route_is_a_405(server: Any, api: Any) -> None:
    app = await make_app(server)
    response = await api.head(app.base + "/conversations/log", headers=app.headers)
    assert response.status_code == 405 and response.content == b""


async def test_a_large_page_is_gzipped_when_accepted_and_small_bodies_are_not(server: Any, api: Any) -> None:
    app = await make_app(server, SESSIONS)
    identity = {**app.headers, "Accept-Encoding": "identity"}
    plain = await api.get(app.base + "/sessions", params={"limit": 100}, headers=identity)
    assert "content-encoding" not in plain.headers
    packed = await api.get(
        app.base + "/sessions", params={"limit": 100}, headers={**app.headers, "Accept-Encoding": "gzip"}
    )
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) < len(plain.content) / 3
    assert packed.json() == plain.json()  # httpx decodes it
    assert packed.headers["vary"].lower().count("accept-encoding") == 1
    accepting = {**app.headers, "Accept-Encoding": "gzip"}
    small = await api.get(app.base + "/sessions", params={"limit": 1}, headers=accepting)
    assert len(small.content) < 1024 and "content-encoding" not in small.headers


async def test_head_of_a_gzipped_page_names_the_compressed_length(server: Any, api: Any) -> None:
    app = await make_app(server, SESSIONS)
    headers = {**app.headers, "Accept-Encoding": "gzip"}
    async with api.stream("GET", app.base + "/sessions", params={"limit": 100}, headers=headers) as got:
        raw = b"".join([chunk async for chunk in got.aiter_raw()])
    head = await api.head(app.base + "/sessions", params={"limit": 100}, headers=headers)
    assert head.headers["content-encoding"] == "gzip" and head.content == b""
    assert head.headers["content-length"] == str(len(raw))
    assert gzip.decompress(raw).startswith(b'{"data":')


def _cors_app(settings: Settings, origins: str) -> Any:
    return create_app(settings.model_copy(update={"cors_origins": origins}))


@pytest.fixture
async def cors_api(settings: Settings) -> Any:
    app = _cors_app(settings, "https://dash.example.com, http://localhost:5173")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    await app.state.engine.dispose()


PREFLIGHT = {
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "Authorization, Idempotency-Key, Content-Type",
}


async def test_a_preflight_from_a_configured_origin_passes_and_exposes_the_headers(cors_api: Any) -> None:
    app = await make_app(cors_api.app)
    origin = {"Origin": "https://dash.example.com"}
    preflight = await cors_api.options(app.base + "/sessions", headers={**PREFLIGHT, **origin})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://dash.example.com"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {h.strip() for h in allowed.split(",")}
    got = await cors_api.get(app.base + "/sessions", headers={**app.headers, **origin})
    assert got.status_code == 200
    exposed = {h.strip().lower() for h in got.headers["access-control-expose-headers"].split(",")}
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after", "etag"} <= exposed


async def test_another_origin_gets_no_cors_headers(cors_api: Any) -> None:
    app = await make_app(cors_api.app)
    origin = {"Origin": "https://evil.example.org"}
    preflight = await cors_api.options(app.base + "/sessions", headers={**PREFLIGHT, **origin})
    assert "access-control-allow-origin" not in preflight.headers
    got = await cors_api.get(app.base + "/sessions", headers={**app.headers, **origin})
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers


async def test_cors_is_off_by_default(server: Any, api: Any) -> None:
    app = await make_app(server)
    origin = {"Origin": "https://dash.example.com"}
    got = await api.get(app.base + "/sessions", headers={**app.headers, **origin})
    assert not [name for name in got.headers if name.startswith("access-control-")]
    preflight = await api.options(app.base + "/sessions", headers={**PREFLIGHT, **origin})
    assert preflight.status_code == 405


async def test_curl_reads_a_gzipped_page(settings: Settings, tmp_path: Any) -> None:
    """Over a real socket: `curl --compressed` decodes what the server compressed."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    import asyncio
    import socket

    import uvicorn

    app = create_app(settings)
    made = await make_app(app, SESSIONS)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(served.serve())  # on this loop, where the app's pools live
    try:
        while not served.started:
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}{made.base}/sessions?limit=100"
        key = f"Authorization: Bearer {made.key}"
        command = ["curl", "-s", "--compressed", "-D", str(tmp_path / "h"), "-H", key, url]
        run = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
        out, _ = await run.communicate()
        assert run.returncode == 0
        assert "content-encoding: gzip" in (tmp_path / "h").read_text().lower()
        assert out.startswith(b'{"data":[') and len(out) > 1024
    finally:
        served.should_exit = True
        await task
        await app.state.engine.dispose()
