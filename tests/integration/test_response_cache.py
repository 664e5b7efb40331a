"""The in-process response cache (CHIPP_RESPONSE_CACHE_MB): a repeated page comes from memory without its query,
costs the same quota as any 200, and is never stale: after every kind of write, a server with the cache gives
byte for byte what a server without it gives over the same database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.response_cache import ResponseCache
from tests.factories import TestApp, get, load, make_app, session_record, uid
from tests.integration.test_conditional import PAGES, RECORDS, WRITE, WRITES


@pytest.fixture
async def uncached(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second server over the same database with the cache off: the reference for every body."""
    app_ = create_app(settings.model_copy(update={"response_cache_mb": 0}))
    assert app_.state.response_cache is None
    transport = httpx.ASGITransport(app=app_, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await app_.state.limiter.counter.close()
        await app_.state.engine.dispose()


def _count_reads(server: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    fetched: list[Any] = []
    reader = server.state.reader
    original = reader.fetch

    async def counting(query: Any, **values: Any) -> Any:
        fetched.append(query)
        return await original(query, **values)

    monkeypatch.setattr(reader, "fetch", counting)
    return fetched


async def test_a_repeated_page_is_sent_from_memory_without_its_query(
    server: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    fetched = _count_reads(server, monkeypatch)
    for path in PAGES:
        fetched.clear()
        first = await get(api, app, path)
        assert first.status_code == 200 and len(fetched) > 2, path
        fetched.clear()
        again = await get(api, app, path)
        assert again.status_code == 200
        assert len(fetched) == 2, (path, fetched)  # the key by its hash and the feed head: no page query
        assert again.content == first.content
        for name in ("etag", "cache-control", "vary", "content-type", "content-length"):
            assert again.headers[name] == first.headers[name], (path, name)
    assert server.state.response_cache.hits == len(PAGES)


async def test_a_cached_page_costs_one_request_and_shows_each_keys_own_quota(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    async with server.state.engine.begin() as db:
        from chipp_builder.server.resources.apps import queries as apps

        other = await apps.create_key(db, app.id, "other", WRITE, None)
    first = await get(api, app, "/sessions")
    remaining = int(first.headers["x-ratelimit-remaining"])
    again = await get(api, app, "/sessions")
    assert int(again.headers["x-ratelimit-remaining"]) == remaining - 1
    theirs = await api.get(app.base + "/sessions", headers={"Authorization": f"Bearer {other['rawKey']}"})
    assert theirs.content == first.content  # the same scopes see the same page, from the cache
    assert int(theirs.headers["x-ratelimit-remaining"]) == int(first.headers["x-ratelimit-limit"]) - 1


@pytest.mark.parametrize("write", [*WRITES, "import"])
async def test_after_any_write_the_cache_gives_what_the_database_gives(
    server: Any, api: Any, uncached: httpx.AsyncClient, write: str
) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    for path in PAGES:  # fill the cache with every page
        await get(api, app, path)
        await get(api, app, path)
    if write == "import":
        await load(server, app.id, [session_record(uid(1, 9), "2025-06-09T10:00:00Z")])
    else:
        await WRITES[write](api, app)
    changed = 0
    for path in PAGES:
        cached, fresh = await get(api, app, path), await get(uncached, app, path)
        assert cached.status_code == fresh.status_code, (write, path)
        assert cached.content == fresh.content, (write, path)
        assert cached.headers.get("etag") == fresh.headers.get("etag"), (write, path)
        changed += cached.status_code == 200
    assert changed


async def test_gzip_of_a_cached_page_leaves_the_kept_page_whole(server: Any, api: Any) -> None:
    records = RECORDS + [session_record(uid(5, n), f"2025-06-03T10:00:{n:02d}Z") for n in range(40)]
    app = await make_app(server, records)
    identity = {**app.headers, "Accept-Encoding": "identity"}  # httpx asks for gzip unless told otherwise
    plain = await api.get(app.base + "/sessions", headers=identity)
    assert len(plain.content) > 1024 and "content-encoding" not in plain.headers
    zipped = await api.get(app.base + "/sessions", headers={**app.headers, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == plain.content
    # The kept headers were not rewritten by the compressor:
    again = await api.get(app.base + "/sessions", headers=identity)
    assert "content-encoding" not in again.headers
    assert again.headers["content-length"] == str(len(plain.content)) and again.content == plain.content


async def test_a_zero_size_turns_the_cache_off(settings: Settings) -> None:
    app_ = create_app(settings.model_copy(update={"response_cache_mb": 0}))
    try:
        assert app_.state.response_cache is None
        transport = httpx.ASGITransport(app=app_, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            app: TestApp = await make_app(app_, RECORDS)
            assert (await get(api, app, "/sessions")).content == (await get(api, app, "/sessions")).content
    finally:
        await app_.state.limiter.counter.close()
        await app_.state.engine.dispose()


def _page(body: bytes) -> Any:
    from starlette.responses import Response

    return Response(body, media_type="application/json")


def test_the_cache_keeps_to_its_size_evicting_the_least_recently_used() -> None:
    cache = ResponseCache(1000)
    for n in range(5):
        cache.put(b"e%d" % n, _page(b"x" * 100))
    assert cache.used_bytes == 500 and len(cache) == 5
    assert cache.get(b"e0") is not None  # e0 is now the most recently used
    for n in range(5, 11):
        cache.put(b"e%d" % n, _page(b"y" * 100))
    assert cache.used_bytes <= 1000 and len(cache) == 10
    assert cache.get(b"e1") is None and cache.get(b"e0") is not None
    cache.put(b"big", _page(b"z" * 200))  # more than an eighth of the cache: not kept
    assert cache.get(b"big") is None and cache.used_bytes <= 1000
    kept = cache.get(b"e10")
    assert kept is not None and kept.body == b"y" * 100
    kept.raw_headers.append((b"x-added", b"1"))  # a caller's change does not reach the kept page
    again = cache.get(b"e10")
    assert again is not None and (b"x-added", b"1") not in again.raw_headers
