"""GET /events and GET /events/latest (SPEC section 11): thin events in commit order, cursors that are never
null, types and scopes, long polls, retention, on every backend."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from chipp_builder.server.writes.events import prune_events
from tests.factories import TestApp, assert_error, get, make_app

WRITE = {"sessions": "write", "feedback": "write", "consumers": "write"}
EVENT_FIELDS = ["id", "type", "object_id", "session_id", "occurred_at"]


async def log(api: Any, app: TestApp, **body: Any) -> dict[str, Any]:
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    response = await api.post(app.base + "/conversations/log", json=body, headers=app.headers)
    assert response.status_code in (200, 201), response.text
    return dict(response.json()["data"])


async def feed(api: Any, app: TestApp, **params: Any) -> dict[str, Any]:
    response = await get(api, app, "/events", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def all_events(api: Any, app: TestApp, **params: Any) -> tuple[list[dict[str, Any]], str]:
    """Every event from `after` (or the start), page by page; and the cursor to continue from."""
    events: list[dict[str, Any]] = []
    while True:
        page = await feed(api, app, **params)
        events.extend(page["data"])
        params["after"] = page["pagination"]["next_cursor"]
        if not page["pagination"]["has_more"]:
            return events, params["after"]


async def test_a_logged_conversation_is_a_session_a_consumer_and_its_messages(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    logged = await log(api, app, consumer={"email": "ann@example.com"},
                       messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    events, _ = await all_events(api, app)
    assert [list(e) for e in events] == [EVENT_FIELDS] * 4
    sid = logged["session_id"]
    assert [(e["type"], e["object_id"], e["session_id"]) for e in events] == [
        ("consumer.created", logged["consumer_id"], None),
        ("session.created", sid, None),
        ("message.created", logged["message_ids"][0], sid),
        ("message.created", logged["message_ids"][1], sid),
    ]
    assert len({e["id"] for e in events}) == 4 and all(e["id"].startswith("evt_") for e in events)
    assert all(e["occurred_at"].endswith("Z") for e in events)
    # An append changes the session (message_count) and adds the message; the consumer is unchanged.
    _, cursor = await all_events(api, app)
    more = await log(api, app, session_id=sid, messages=[{"role": "user", "content": "again"}])
    new, cursor = await all_events(api, app, after=cursor)
    assert [(e["type"], e["object_id"]) for e in new] == [("session.updated", sid),
                                                          ("message.created", more["message_ids"][0])]
    assert (await feed(api, app, after=cursor))["data"] == []


async def test_next_cursor_is_never_null_and_walks_the_feed_once(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    empty = await feed(api, app)
    assert empty["data"] == [] and empty["pagination"]["has_more"] is False
    start = empty["pagination"]["next_cursor"]
    assert isinstance(start, str) and start == (await get(api, app, "/events/latest")).json()["data"]["cursor"]
    for n in range(5):
        await log(api, app, messages=[{"role": "user", "content": f"m{n}"}])
    pages, after, seen = 0, start, []
    while True:
        page = await feed(api, app, after=after, limit=3)
        assert page["pagination"]["limit"] == 3 and page["pagination"]["next_cursor"]
        seen.extend(e["id"] for e in page["data"])
        after, pages = page["pagination"]["next_cursor"], pages + 1
        if not page["pagination"]["has_more"]:
            break
    assert len(seen) == 10 and len(set(seen)) == 10 and pages == 4
    assert after == (await get(api, app, "/events/latest")).json()["data"]["cursor"]
    again = await feed(api, app, after=after)
    assert again["data"] == [] and again["pagination"]["next_cursor"] == after


async def test_types_filter_and_scopes_show_only_readable_events(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    await log(api, app, consumer={"email": "bo@example.com"})
    only = await feed(api, app, types="consumer.created,session.deleted")
    assert [e["type"] for e in only["data"]] == ["consumer.created"]
    # Filtered to nothing more: the cursor still moves to the end, so the next poll reads only what is new.
    assert only["pagination"]["next_cursor"] == (await get(api, app, "/events/latest")).json()["data"]["cursor"]
    assert_error(await get(api, app, "/events", params={"types": "session.exploded"}), 400, "invalid_request")
    # A key without sessions: read sees no session or message events.
    from chipp_builder.server.resources.apps import queries as apps

    async with server.state.engine.begin() as db:
        key = await apps.create_key(db, app.id, "consumers only", {"sessions": "none"}, None)
    headers = {"Authorization": f"Bearer {key['rawKey']}"}
    response = await api.get(app.base + "/events", headers=headers)
    assert [e["type"] for e in response.json()["data"]] == ["consumer.created"]
    async with server.state.engine.begin() as db:
        key = await apps.create_key(db, app.id, "nothing", {r: "none" for r in (
            "sessions", "consumers", "feedback", "tags", "knowledge_sources", "memories")}, None)
    response = await api.get(app.base + "/events", headers={"Authorization": f"Bearer {key['rawKey']}"})
    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("params, message", [
    ({"limit": "0"}, "limit must be an integer between 1 and 500"),
    ({"limit": "501"}, "limit must be an integer between 1 and 500"),
    ({"wait": "31"}, "wait must be an integer between 0 and 30"),
    ({"wait": "-1"}, "wait must be an integer between 0 and 30"),
    ({"after": "not-a-cursor"}, "Invalid cursor"),
    ({"after": "eyJwIjoxLCJhIjoiMDAwMDAwMDAwMDAwIiwiayI6ImV2ZW50In0"}, "Invalid cursor"),  # another app's
])
async def test_bad_parameters_are_400s(server: Any, api: Any, params: dict[str, str], message: str) -> None:
    app = await make_app(server, scopes=WRITE)
    assert_error(await get(api, app, "/events", params=params), 400, "invalid_request", message)


async def test_another_apps_cursor_is_a_400(server: Any, api: Any) -> None:
    first, second = await make_app(server, scopes=WRITE), await make_app(server, scopes=WRITE)
    await log(api, first)
    cursor = (await feed(api, first))["pagination"]["next_cursor"]
    assert_error(await get(api, second, "/events", params={"after": cursor}), 400, "invalid_request",
                 "Invalid cursor")
    assert (await feed(api, second))["data"] == []  # and never the other app's events


async def test_a_long_poll_returns_when_a_write_commits(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    cursor = (await get(api, app, "/events/latest")).json()["data"]["cursor"]
    started = time.monotonic()
    waiting = asyncio.create_task(feed(api, app, after=cursor, wait=10))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await log(api, app)
    page = await asyncio.wait_for(waiting, 5)
    assert [e["type"] for e in page["data"]] == ["session.created", "message.created"]
    assert time.monotonic() - started < 5
    # Nothing new: the wait runs out and the cursor is the one given.
    started = time.monotonic()
    idle = await feed(api, app, after=page["pagination"]["next_cursor"], wait=1)
    assert idle["data"] == [] and idle["pagination"]["next_cursor"] == page["pagination"]["next_cursor"]
    assert 0.9 <= time.monotonic() - started < 3


async def test_a_cursor_older_than_the_kept_events_is_a_410(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    start = (await get(api, app, "/events/latest")).json()["data"]["cursor"]
    await log(api, app)
    middle = (await get(api, app, "/events/latest")).json()["data"]["cursor"]
    # Everything is older than a zero retention, but the app's newest event stays: its position is the end.
    assert await prune_events(server.state.engine, timedelta(seconds=0)) == 1
    await log(api, app)
    assert_error(await get(api, app, "/events", params={"after": start}), 410, "cursor_expired",
                 "Cursor is older than the kept events; list again and continue from GET /events/latest")
    kept = await feed(api, app, after=middle)
    assert [e["type"] for e in kept["data"]] == ["session.created", "message.created"]
    # Without `after`: from the oldest kept event.
    assert [e["type"] for e in (await feed(api, app))["data"]] == [
        "message.created", "session.created", "message.created"]
    assert await prune_events(server.state.engine, timedelta(seconds=0)) == 2
    assert (await get(api, app, "/events/latest")).json()["data"]["cursor"] == kept["pagination"]["next_cursor"]
    assert_error(await get(api, app, "/events", params={"after": middle}), 410, "cursor_expired")


async def test_a_reader_never_passes_an_open_transactions_event(server: Any, api: Any) -> None:
    """T1 records an event and stays open; T2 records one and tries to commit; a reader polling meanwhile sees
    neither and its cursor does not move past T1's position; after T1 commits, one poll returns both, T1's
    first. (On PostgreSQL T2 waits on the app's feed row, so it cannot commit a later position first; on
    SQLite it waits for the single writer.)"""
    from chipp_builder.server.db.writelock import begin_immediate
    from chipp_builder.server.writes.events import CREATED, Change, record

    app = await make_app(server, scopes=WRITE)
    start = (await feed(api, app))["pagination"]["next_cursor"]
    engine = server.state.engine
    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        await begin_immediate(first)
        await record(first, app.id, [Change("session", CREATED, "00000000-0000-4000-8000-000000000001")])

        async def later_writer() -> None:
            await second.begin()
            await begin_immediate(second)
            await record(second, app.id, [Change("session", CREATED, "00000000-0000-4000-8000-000000000002")])
            await second.commit()

        t2 = asyncio.create_task(later_writer())
        for _ in range(5):
            await asyncio.sleep(0.1)
            polled = await feed(api, app, after=start)
            assert polled["data"] == [] and polled["pagination"]["next_cursor"] == start
        assert not t2.done()
        await first.commit()
        await asyncio.wait_for(t2, 10)
    both = await feed(api, app, after=start)
    assert [e["object_id"][-1] for e in both["data"]] == ["1", "2"]


async def test_concurrent_writers_leave_no_gap_and_no_repeat(server: Any, api: Any) -> None:
    """Many conversations/log requests at once while a follower walks the feed: it sees every event once, in
    positions without a gap."""
    app = await make_app(server, scopes=WRITE)
    cursor = (await feed(api, app))["pagination"]["next_cursor"]
    seen: list[str] = []
    done = asyncio.Event()

    async def follow() -> None:
        nonlocal cursor
        while True:
            finished = done.is_set()
            page = await feed(api, app, after=cursor, limit=7)
            seen.extend(e["id"] for e in page["data"])
            cursor = page["pagination"]["next_cursor"]
            if finished and not page["pagination"]["has_more"]:
                return
            await asyncio.sleep(0.01)

    follower = asyncio.create_task(follow())
    await asyncio.gather(*(log(api, app, messages=[{"role": "user", "content": f"m{n}"}]) for n in range(30)))
    done.set()
    await asyncio.wait_for(follower, 30)
    assert len(seen) == 60 and len(set(seen)) == 60
    everything, _ = await all_events(api, app)
    assert [e["id"] for e in everything] == seen
