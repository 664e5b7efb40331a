"""The SDK's conditional requests (page_cache=): a page asked for again goes out with If-None-Match, a 304 gives
back the kept page and costs no quota, and any write makes the next ask a 200 with the new data."""

from __future__ import annotations

from typing import Any

import httpx

from chipp_builder.client import AsyncClient, PageCache
from tests.contract.test_sdk import RECORDS, S
from tests.factories import TestApp, get, make_app


class Recording(httpx.AsyncBaseTransport):
    """The in-process app's transport, noting each request's If-None-Match and each response's status."""

    def __init__(self, server: Any) -> None:
        self.inner = httpx.ASGITransport(app=server, raise_app_exceptions=False)
        self.seen: list[tuple[str | None, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.seen.append((request.headers.get("If-None-Match"), response.status_code))
        return response


def _client(app: TestApp, transport: Recording, **kwargs: Any) -> AsyncClient:
    return AsyncClient("http://testserver", app.key, app.id, transport=transport, **kwargs)


async def _remaining(server: Any, app: TestApp) -> int:
    transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        return int((await get(api, app, "/tags")).headers["x-ratelimit-remaining"])


async def test_a_page_asked_again_is_a_free_304_answered_from_the_kept_page(server: Any) -> None:
    app = await make_app(server, RECORDS, scopes={"sessions": "write"})
    transport = Recording(server)
    async with _client(app, transport, page_cache=True) as client:
        first = await client.sessions.list(limit=2)
        before = await _remaining(server, app)
        again = await client.sessions.list(limit=2)
        assert [s.id for s in again.data] == [s.id for s in first.data] and again.data
        assert again.pagination == first.pagination
        one = await client.sessions.get(S[1])
        assert (await client.sessions.get(S[1])) == one
        assert client.page_cache is not None and client.page_cache.not_modified == 2
        assert await _remaining(server, app) == before - 2  # the two 200s of sessions.get and the /tags reads
        statuses = [status for _, status in transport.seen]
        assert statuses == [200, 304, 200, 304]
        assert transport.seen[0][0] is None and transport.seen[1][0] is not None

        await client.conversations.log([{"role": "user", "content": "A new question"}], session_id=S[5])
        transport.seen.clear()
        after = await client.sessions.get(S[5])
        fresh = await client.sessions.list(limit=2)
        assert [status for _, status in transport.seen] == [200, 200]
        assert fresh.data[0].id == after.id and after.message_count == fresh.data[0].message_count


async def test_without_a_page_cache_no_request_is_conditional(server: Any) -> None:
    app = await make_app(server, RECORDS)
    transport = Recording(server)
    async with _client(app, transport) as client:
        assert client.page_cache is None
        await client.sessions.list(limit=2)
        await client.sessions.list(limit=2)
    assert transport.seen == [(None, 200), (None, 200)]


async def test_the_page_cache_keeps_to_its_size(server: Any) -> None:
    app = await make_app(server, RECORDS)
    transport = Recording(server)
    cache = PageCache(max_pages=2)
    async with _client(app, transport, page_cache=cache) as client:
        for limit in (1, 2, 3, 1):  # limit=1 was pushed out by 2 and 3: asked again, it is a plain 200
            await client.sessions.list(limit=limit)
        await client.sessions.list(limit=3)
    assert len(cache) == 2
    assert [status for _, status in transport.seen] == [200, 200, 200, 200, 304]
