"""SDK list results with httpx.MockTransport: lazy fetching, cursor and offset chaining, page-by-page
walking, the first page's pagination, and how filters are sent."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from chipp_builder.client import AsyncClient, Client
from chipp_builder.client.models import GroupBy, Source

APP_ID = str(uuid.uuid4())
KEY = "chipp_" + "b" * 32


def session(n: int) -> dict[str, Any]:
    stamp = f"2025-06-{n + 1:02d}T10:00:00Z"
    return {
        "id": str(uuid.UUID(int=n)), "consumer_id": None, "consumer": None, "title": f"s{n}", "source": "API",
        "mode": "default", "is_bookmarked": False, "is_multiplayer": False, "message_count": 0,
        "started_at": stamp, "ended_at": None, "last_activity_at": stamp,
    }


def feedback(n: int) -> dict[str, Any]:
    return {
        "id": f"f{n}", "session_id": str(uuid.UUID(int=1)), "message_id": f"m{n}", "consumer_id": None,
        "rating": 1, "message_preview": None, "created_at": "2025-06-01T00:00:00.250000Z",
    }


class FakeApi:
    """Serves `items` as a cursor list (cursor = next index) or an offset list, and logs queries."""

    def __init__(self, items: list[dict[str, Any]], kind: str) -> None:
        self.items = items
        self.kind = kind
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode(), keep_blank_values=True).items()}
        self.queries.append(query)
        limit = int(query.get("limit", "25"))
        if self.kind == "none":
            return httpx.Response(200, json={"data": self.items})
        if self.kind == "cursor":
            start = int(query.get("cursor", "0"))
            data = self.items[start : start + limit]
            has_more = start + limit < len(self.items)
            pagination = {"has_more": has_more, "next_cursor": str(start + limit) if has_more else None,
                          "limit": limit}
        else:
            start = int(query.get("offset", "0"))
            data = self.items[start : start + limit]
            pagination = {"has_more": start + len(data) < len(self.items), "total": len(self.items),
                          "limit": limit, "offset": start}
        return httpx.Response(200, json={"data": data, "pagination": pagination})


def client_for(api: FakeApi) -> Client:
    return Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(api))


def test_a_list_call_sends_nothing_until_used() -> None:
    api = FakeApi([session(i) for i in range(3)], "cursor")
    page = client_for(api).sessions.list(limit=2)
    assert api.queries == []
    assert "not fetched" in repr(page)


def test_iterating_a_cursor_list_follows_next_cursor_to_the_end() -> None:
    api = FakeApi([session(i) for i in range(5)], "cursor")
    titles = [s.title for s in client_for(api).sessions.list(limit=2)]
    assert titles == ["s0", "s1", "s2", "s3", "s4"]
    assert [q.get("cursor") for q in api.queries] == [None, "2", "4"]
    assert all(q["limit"] == "2" for q in api.queries)


def test_iteration_is_lazy() -> None:
    api = FakeApi([session(i) for i in range(6)], "cursor")
    items = iter(client_for(api).sessions.list(limit=2))
    next(items)
    next(items)
    assert len(api.queries) == 1
    next(items)
    assert len(api.queries) == 2


def test_iterating_an_offset_list_advances_offset_by_what_came_back() -> None:
    api = FakeApi([feedback(i) for i in range(5)], "offset")
    ids = [f.id for f in client_for(api).feedback.list(limit=2, rating=1)]
    assert ids == ["f0", "f1", "f2", "f3", "f4"]
    assert [q.get("offset") for q in api.queries] == [None, "2", "4"]
    assert all(q["rating"] == "1" for q in api.queries)


def test_the_first_pages_pagination_stays_readable() -> None:
    api = FakeApi([feedback(i) for i in range(5)], "offset")
    page = client_for(api).feedback.list(limit=2)
    assert page.pagination.total == 5
    assert [f.id for f in page.data] == ["f0", "f1"]
    assert page.has_more
    assert len(list(page)) == 5
    assert page.pagination.total == 5 and page.pagination.offset == 0
    assert len(api.queries) == 3  # the first page was fetched once, then reused by the iteration


def test_pages_walks_page_by_page() -> None:
    api = FakeApi([session(i) for i in range(5)], "cursor")
    pages = list(client_for(api).sessions.list(limit=2).pages())
    assert [[s.title for s in p.data] for p in pages] == [["s0", "s1"], ["s2", "s3"], ["s4"]]
    assert [p.pagination.has_more for p in pages] == [True, True, False]
    assert pages[-1].next_page() is None


def test_an_empty_list_yields_nothing() -> None:
    api = FakeApi([], "offset")
    assert list(client_for(api).consumers.list()) == []
    assert len(api.queries) == 1


def test_has_more_without_a_way_forward_stops() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [], "pagination": {"has_more": True, "total": 9, "limit": 25,
                                                                     "offset": 0}})

    client = Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler))
    assert list(client.memories.list()) == []


def test_tags_come_in_one_unpaginated_page() -> None:
    tag = {"id": str(uuid.uuid4()), "name": "bug", "color": "#ef4444", "usage_count": 2,
           "created_at": "2025-06-01T00:00:00Z"}
    api = FakeApi([tag], "none")
    page = client_for(api).tags.list()
    assert [t.name for t in page] == ["bug"]
    assert page.pagination is None
    assert len(api.queries) == 1


def test_items_are_typed_models_with_aware_timestamps() -> None:
    api = FakeApi([feedback(0)], "offset")
    item = next(iter(client_for(api).feedback.list()))
    assert item.created_at == datetime(2025, 6, 1, 0, 0, 0, 250000, tzinfo=UTC)
    assert item.created_at.utcoffset() == timedelta(0)
    assert isinstance(item.session_id, uuid.UUID)


def test_filters_are_encoded_as_the_api_reads_them() -> None:
    api = FakeApi([], "cursor")
    consumer = uuid.uuid4()
    list(client_for(api).sessions.list(
        source=Source.WIDGET, consumer_id=consumer, search="50% off",
        started_after=datetime(2025, 6, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
        started_before=datetime(2025, 6, 30, 12, 0, 0, 500000),
    ))
    assert api.queries[0] == {
        "source": "WIDGET", "consumer_id": str(consumer), "search": "50% off",
        "started_after": "2025-06-01T00:00:00Z", "started_before": "2025-06-30T12:00:00.500000Z",
    }


def test_booleans_dates_lists_and_none_are_encoded() -> None:
    api = FakeApi([], "offset")
    client = client_for(api)
    list(client.consumers.list(has_email=False, created_after=date(2025, 6, 1), search=None))
    assert api.queries[-1] == {"has_email": "false", "created_after": "2025-06-01"}
    cursor_api = FakeApi([], "cursor")
    list(client_for(cursor_api).sessions.messages(uuid.UUID(int=1), include=["tool_details"], role="user"))
    assert cursor_api.queries[-1] == {"include": "tool_details", "role": "user"}


def test_an_unknown_filter_is_an_error_not_a_silent_full_list() -> None:
    client = client_for(FakeApi([], "cursor"))
    with pytest.raises(TypeError, match="sourse"):
        client.sessions.list(sourse="APP")  # type: ignore[call-arg]


def test_analytics_filters_are_sent() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"data": {
            "summary": {"total_sessions": 1, "unique_consumers": 1, "total_messages": 2},
            "timeseries": [{"period": "2025-06-02T00:00:00.000Z", "session_count": 1, "message_count": 2}],
        }})

    client = Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler))
    usage = client.analytics.usage(started_after="2025-06-01", group_by=GroupBy.week)
    assert usage.summary.total_messages == 2
    assert seen[0].path == f"/api/v1/apps/{APP_ID}/analytics/usage"
    assert seen[0].params["group_by"] == "week" and seen[0].params["started_after"] == "2025-06-01"


def test_path_ids_are_escaped_to_one_segment() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"data": [], "pagination": {"has_more": False, "next_cursor": None,
                                                                     "limit": 25}})

    client = Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler))
    list(client.sessions.messages("../consumers"))
    assert seen == [f"/api/v1/apps/{APP_ID}/sessions/..%2Fconsumers/messages"]


async def test_async_pages_iterate_and_await() -> None:
    api = FakeApi([feedback(i) for i in range(5)], "offset")
    async with AsyncClient("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(api)) as client:
        page = client.feedback.list(limit=2)
        with pytest.raises(RuntimeError, match="await"):
            _ = page.pagination
        assert [f.id async for f in page] == ["f0", "f1", "f2", "f3", "f4"]
        first = await client.feedback.list(limit=2)
        assert first.pagination.total == 5 and [f.id for f in first.data] == ["f0", "f1"]
        sizes = [len(p.data) async for p in first.pages()]
        assert sizes == [2, 2, 1]
