"""The SDK's event feed and deletes with httpx.MockTransport: events.list follows `after` to the end and keeps
the cursor to store, follow long-polls forever through the retry policy, latest, sessions.delete and
consumers.erase typed, on Client and AsyncClient alike."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from chipp_builder.client import AsyncClient, Client, CursorExpired, NotFound, RateLimited, RetryPolicy
from chipp_builder.client.models import ConsumerErased, Event, SessionDeleted

APP_ID = str(uuid.uuid4())
KEY = "chipp_" + "e" * 32
SESSION_ID = str(uuid.uuid4())
CONSUMER_ID = str(uuid.uuid4())


def event(n: int, kind: str = "message.created") -> dict[str, Any]:
    return {"id": f"evt_{n:04d}", "type": kind, "object_id": f"m{n}",
            "session_id": SESSION_ID if kind.startswith(("message", "feedback")) else None,
            "occurred_at": "2026-01-01T00:00:00Z"}


class Feed:
    """A fake /events: `total` events at positions 1..total, cursors `c<position>`; records every request."""

    def __init__(self, total: int, arrivals: list[int] | None = None) -> None:
        self.total = total
        self.arrivals = list(arrivals or [])  # events that appear, one batch per long poll that finds nothing
        self.requests: list[httpx.Request] = []
        self.fail_first: list[int] = []  # statuses to answer before serving anything

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_first:
            status = self.fail_first.pop(0)
            headers = {"Retry-After": "1"} if status == 429 else {}
            return httpx.Response(status, headers=headers,
                                  json={"error": {"code": "rate_limited" if status == 429 else "internal_error",
                                                  "message": "no"}})
        path = request.url.path.removeprefix(f"/api/v1/apps/{APP_ID}")
        if path == "/events/latest":
            return httpx.Response(200, json={"data": {"cursor": f"c{self.total}"}})
        if path == f"/sessions/{SESSION_ID}" and request.method == "DELETE":
            return httpx.Response(200, json={"data": {"id": SESSION_ID, "deleted": True,
                                                      "counts": {"messages": 3, "feedback": 1}}})
        if path == f"/consumers/{CONSUMER_ID}" and request.method == "DELETE":
            return httpx.Response(200, json={"data": {
                "consumer_id": CONSUMER_ID, "erased_at": "2026-01-01T00:00:00Z",
                "counts": {"sessions": 1, "messages": 3, "feedback": 2, "memories": 1}, "cursor": "c9"}})
        if request.method == "DELETE":
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "Session not found"}})
        assert path == "/events", path
        after = request.url.params.get("after")
        if after == "old":
            return httpx.Response(410, json={"error": {"code": "cursor_expired", "message": "Cursor is older"}})
        position = int(after[1:]) if after else 0
        limit = int(request.url.params.get("limit", "100"))
        if position >= self.total and self.arrivals and request.url.params.get("wait"):
            self.total += self.arrivals.pop(0)
        page = list(range(position + 1, min(self.total, position + limit) + 1))
        has_more = position + limit < self.total
        next_position = page[-1] if page else position
        return httpx.Response(200, json={"data": [event(n) for n in page],
                                         "pagination": {"has_more": has_more, "next_cursor": f"c{next_position}",
                                                        "limit": limit}})


def sync_client(feed: Feed, slept: list[float] | None = None, **kwargs: Any) -> Client:
    return Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(feed),
                  sleep=(slept.append if slept is not None else lambda s: None), **kwargs)


def async_client(feed: Feed) -> AsyncClient:
    async def no_sleep(seconds: float) -> None:
        return None

    return AsyncClient("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(feed), sleep=no_sleep)


def test_list_walks_the_feed_to_its_end_and_keeps_the_cursor() -> None:
    feed = Feed(250)
    events = sync_client(feed).events.list(limit=100)
    seen = list(events)
    assert [e.id for e in seen] == [f"evt_{n:04d}" for n in range(1, 251)]
    assert all(isinstance(e, Event) for e in seen)
    assert events.cursor == "c250"
    assert [r.url.params.get("after") for r in feed.requests] == [None, "c100", "c200"]
    assert all("wait" not in r.url.params for r in feed.requests)


def test_list_from_a_cursor_with_types_and_nothing_new() -> None:
    feed = Feed(5)
    events = sync_client(feed).events.list("c5", types=["session.created", "message.deleted"], limit=500)
    assert list(events) == []
    assert events.cursor == "c5"
    (request,) = feed.requests
    assert request.url.params["types"] == "session.created,message.deleted"
    assert request.url.params["limit"] == "500"


def test_the_cursor_moves_only_past_a_page_handed_out_whole() -> None:
    feed = Feed(250)
    events = sync_client(feed).events.list(limit=100)
    for n, _ in enumerate(events, start=1):
        if n == 150:  # stopping mid-page: a restart from .cursor sees the rest of that page again
            break
    assert events.cursor == "c100"


def test_an_unknown_type_or_a_bad_limit_is_refused_before_any_request() -> None:
    feed = Feed(1)
    client = sync_client(feed)
    with pytest.raises(ValueError, match="session.made"):
        client.events.list(types="session.made")
    with pytest.raises(ValueError, match="limit"):
        client.events.list(limit=501)
    with pytest.raises(ValueError, match="wait"):
        client.events.follow("c0", wait=0)
    assert feed.requests == []


def test_an_expired_cursor_raises_cursor_expired() -> None:
    with pytest.raises(CursorExpired) as caught:
        list(sync_client(Feed(3)).events.list("old"))
    assert caught.value.status == 410


def test_latest_is_the_cursor() -> None:
    assert sync_client(Feed(42)).events.latest() == "c42"


def test_follow_long_polls_forever_and_yields_events_as_they_come() -> None:
    feed = Feed(2, arrivals=[0, 3, 0, 1])
    follower = sync_client(feed).events.follow("c0", wait=20)
    seen = []
    for got in follower:
        seen.append(got.id)
        if len(seen) == 6:
            break
    assert seen == [f"evt_{n:04d}" for n in range(1, 7)]
    assert all(r.url.params["wait"] == "20" for r in feed.requests)
    # c0 -> 2 events; c2 -> nothing (an empty poll); c2 -> 3 events; c5 -> nothing; c5 -> 1 event
    assert [r.url.params["after"] for r in feed.requests] == ["c0", "c2", "c2", "c5", "c5"]
    # The long poll's read timeout is longer than its wait.
    assert all(r.extensions["timeout"]["read"] >= 30 for r in feed.requests)


def test_follow_retries_429_and_5xx_as_the_policy_says() -> None:
    feed = Feed(1)
    feed.fail_first = [429, 503]
    slept: list[float] = []
    client = sync_client(feed, slept, retry=RetryPolicy(random=lambda: 0.0))
    first = next(iter(client.events.follow("c0")))
    assert first.id == "evt_0001"
    assert slept == [1.0, 0.5]  # Retry-After, then backoff_base * 2**1, halved (random 0 gives the least)
    assert len(feed.requests) == 3


def test_follow_raises_once_the_retries_are_used_up() -> None:
    feed = Feed(1)
    feed.fail_first = [429, 429, 429]
    follower = sync_client(feed).events.follow("c0")
    with pytest.raises(RateLimited):
        next(iter(follower))
    assert follower.cursor == "c0"


def test_a_short_client_timeout_is_raised_for_a_long_poll_only() -> None:
    feed = Feed(0, arrivals=[1])
    client = sync_client(feed, timeout=5.0)
    next(iter(client.events.follow("c0", wait=25)))
    list(client.events.list("c1"))
    assert [r.extensions["timeout"]["read"] for r in feed.requests] == [35.0, 5.0]


def test_sessions_delete_and_consumers_erase_are_typed() -> None:
    feed = Feed(0)
    client = sync_client(feed)
    deleted = client.sessions.delete(SESSION_ID)
    assert isinstance(deleted, SessionDeleted)
    assert (str(deleted.id), deleted.deleted, deleted.counts.messages, deleted.counts.feedback) == (
        SESSION_ID, True, 3, 1)
    erased = client.consumers.erase(CONSUMER_ID)
    assert isinstance(erased, ConsumerErased)
    assert erased.counts.memories == 1 and erased.cursor == "c9" and erased.erased_at.tzinfo is not None
    assert [(r.method, r.url.path.rsplit("/", 2)[-2]) for r in feed.requests] == [
        ("DELETE", "sessions"), ("DELETE", "consumers")]
    with pytest.raises(NotFound):
        client.sessions.delete(uuid.uuid4())


def test_a_delete_is_not_retried() -> None:
    feed = Feed(0)
    feed.fail_first = [503]
    with pytest.raises(Exception, match="no"):
        sync_client(feed).sessions.delete(SESSION_ID)
    assert len(feed.requests) == 1


def run(work: Callable[[], Any]) -> Any:
    return asyncio.run(work())


def test_the_async_client_has_the_same_feed() -> None:
    feed = Feed(250, arrivals=[2])

    async def work() -> tuple[list[str], str | None, str, list[str], str, str]:
        async with async_client(feed) as client:
            events = client.events.list(limit=100)
            ids = [e.id async for e in events]
            latest = await client.events.latest()
            follower = client.events.follow(latest, wait=5)
            followed = []
            async for got in follower:
                followed.append(got.id)
                if len(followed) == 2:
                    break
            deleted = await client.sessions.delete(SESSION_ID)
            erased = await client.consumers.erase(CONSUMER_ID)
            return ids, events.cursor, latest, followed, str(deleted.id), str(erased.consumer_id)

    ids, cursor, latest, followed, deleted, erased = run(work)
    assert len(ids) == 250 and cursor == "c250" and latest == "c250"
    assert followed == ["evt_0251", "evt_0252"]
    assert (deleted, erased) == (SESSION_ID, CONSUMER_ID)


def test_async_pages_expose_each_next_cursor() -> None:
    feed = Feed(150)

    async def work() -> list[str]:
        async with async_client(feed) as client:
            return [page.pagination.next_cursor async for page in client.events.list(limit=100).pages()]

    assert run(work) == ["c100", "c150"]
