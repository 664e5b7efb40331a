"""The SDK's event feed and deletes (SPEC section 11) against the in-process server over httpx.ASGITransport:
the sync recipe (latest, then follow), a long poll that a write wakes, an expired cursor, and the deletes'
typed results with their events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from chipp_builder.client import AsyncClient, CursorExpired, NotFound
from chipp_builder.client.models import ConsumerErased, Event, SessionDeleted
from chipp_builder.server.writes.events import prune_events
from tests.factories import TestApp, make_app

WRITE = {"sessions": "write", "consumers": "write", "feedback": "write"}


def sdk_for(server: Any, app: TestApp) -> AsyncClient:
    transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
    return AsyncClient("http://testserver", app.key, app.id, transport=transport)


@pytest.fixture
async def app(server: Any) -> TestApp:
    return await make_app(server, scopes=WRITE)


@pytest.fixture
async def sdk(server: Any, app: TestApp) -> Any:
    async with sdk_for(server, app) as client:
        yield client


async def test_list_walks_every_page_and_the_cursor_continues(sdk: AsyncClient) -> None:
    start = await sdk.events.latest()
    logged = [await sdk.conversations.log([{"role": "user", "content": f"hi {n}"}]) for n in range(3)]
    events = sdk.events.list(start, limit=2)
    seen = [e async for e in events]
    assert all(isinstance(e, Event) for e in seen)
    assert [(e.type, e.object_id) for e in seen if e.type == "session.created"] == [
        ("session.created", str(one.session_id)) for one in logged]
    assert len(seen) == 6  # a session and its message, three times
    assert events.cursor == await sdk.events.latest()
    again = sdk.events.list(events.cursor)
    assert [e async for e in again] == [] and again.cursor == events.cursor


async def test_types_filter(sdk: AsyncClient) -> None:
    start = await sdk.events.latest()
    await sdk.conversations.log([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    kinds = [e.type async for e in sdk.events.list(start, types=["message.created"])]
    assert kinds == ["message.created", "message.created"]


async def test_follow_is_woken_by_a_write(server: Any, app: TestApp, sdk: AsyncClient) -> None:
    start = await sdk.events.latest()

    async def first_two() -> list[Event]:
        got: list[Event] = []
        async for one in sdk.events.follow(start, wait=10):
            got.append(one)
            if len(got) == 2:
                return got
        raise AssertionError("unreachable")

    follower = asyncio.create_task(first_two())
    await asyncio.sleep(0.3)
    assert not follower.done()  # held by the long poll: nothing is new yet
    async with sdk_for(server, app) as writer:
        logged = await writer.conversations.log([{"role": "user", "content": "wake up"}])
    got = await asyncio.wait_for(follower, 10)
    assert [(e.type, e.object_id) for e in got] == [
        ("session.created", str(logged.session_id)), ("message.created", logged.message_ids[0])]


async def test_an_expired_cursor_is_cursor_expired(server: Any, sdk: AsyncClient) -> None:
    start = await sdk.events.latest()
    await sdk.conversations.log([{"role": "user", "content": "soon pruned"}])
    await prune_events(server.state.engine, timedelta(seconds=1), now=datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(CursorExpired):
        _ = [e async for e in sdk.events.list(start)]


async def test_delete_and_erase_return_their_counts_and_show_in_the_feed(sdk: AsyncClient) -> None:
    kept = await sdk.conversations.log([{"role": "user", "content": "stays"}], consumer={"email": "b@example.com"})
    gone = await sdk.conversations.log([{"role": "user", "content": "goes"}, {"role": "assistant", "content": "ok"}])
    await sdk.feedback.create(gone.message_ids[1], 1)
    start = await sdk.events.latest()
    deleted = await sdk.sessions.delete(gone.session_id)
    assert isinstance(deleted, SessionDeleted)
    assert (deleted.id, deleted.counts.messages, deleted.counts.feedback) == (gone.session_id, 2, 1)
    with pytest.raises(NotFound):
        await sdk.sessions.get(gone.session_id)
    with pytest.raises(NotFound):
        await sdk.sessions.delete(gone.session_id)
    assert kept.consumer_id is not None
    erased = await sdk.consumers.erase(kept.consumer_id)
    assert isinstance(erased, ConsumerErased)
    assert (erased.consumer_id, erased.counts.sessions, erased.counts.messages) == (kept.consumer_id, 1, 1)
    assert erased.cursor == await sdk.events.latest()
    feed = [(e.type, e.object_id) async for e in sdk.events.list(start)]
    assert ("session.deleted", str(gone.session_id)) in feed
    assert ("consumer.deleted", str(kept.consumer_id)) in feed
    assert [s async for s in sdk.sessions.list()] == []
