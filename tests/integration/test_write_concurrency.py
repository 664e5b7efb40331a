"""Concurrent writes: appends to one session never fail and never miscount, a new consumer is created
once however many requests race to create it, and ratings race to one per consumer, on every backend."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from chipp_builder.server.db import writelock
from tests.factories import TestApp, assert_error, get, make_app

WRITE = {"sessions": "write", "feedback": "write", "consumers": "write"}


async def log(api: Any, app: TestApp, body: Any) -> Any:
    return await api.post(app.base + "/conversations/log", json=body, headers=app.headers)


async def every_message(api: Any, app: TestApp, session_id: str) -> list[dict[str, Any]]:
    """All of a session's messages, following the cursor."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        body = (await get(api, app, f"/sessions/{session_id}/messages", params)).json()
        found.extend(body["data"])
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            return found


async def test_fifty_concurrent_appends_of_two_messages_add_exactly_one_hundred(
    server: Any, api: Any
) -> None:
    app = await make_app(server, scopes=WRITE)
    created = await log(api, app, {"messages": [{"role": "user", "content": "start", "token_count": 1}]})
    sid = created.json()["data"]["session_id"]

    def append(i: int) -> dict[str, Any]:
        return {
            "session_id": sid,
            "messages": [
                {"role": "user", "content": f"q{i}", "token_count": 1},
                {"role": "assistant", "content": f"a{i}", "model": "m", "token_count": 2},
            ],
        }

    responses = await asyncio.gather(*(log(api, app, append(i)) for i in range(50)))
    assert [r.status_code for r in responses] == [200] * 50, {r.status_code: r.text for r in responses}

    messages = await every_message(api, app, sid)
    assert len(messages) == 101 and len({m["id"] for m in messages}) == 101
    session = (await get(api, app, f"/sessions/{sid}")).json()["data"]
    assert session["message_count"] == 101
    assert session["last_activity_at"] == messages[-1]["created_at"]
    # Sorted as sent: times strictly increase, and each request's pair is adjacent and in its order.
    times = [datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")) for m in messages]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    position = {m["id"]: n for n, m in enumerate(messages)}
    for response in responses:
        first, second = response.json()["data"]["message_ids"]
        assert position[second] == position[first] + 1
    # The analytics see exactly the rows.
    usage = (await get(api, app, "/analytics/usage")).json()["data"]["summary"]
    assert usage["total_messages"] == 101 and usage["total_sessions"] == 1
    tokens = (await get(api, app, "/analytics/token-usage")).json()["data"]
    assert tokens["summary"] == {"total_tokens": 1 + 50 * 3, "message_count": 101}


async def test_concurrent_new_sessions_all_succeed(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    body = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    responses = await asyncio.gather(*(log(api, app, body) for _ in range(30)))
    assert [r.status_code for r in responses] == [201] * 30
    usage = (await get(api, app, "/analytics/usage")).json()["data"]["summary"]
    assert usage == {"total_sessions": 30, "unique_consumers": 0, "total_messages": 60}


async def test_racing_requests_for_a_new_consumer_create_it_once(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    body = {"consumer": {"email": "race@example.com"}, "messages": [{"role": "user", "content": "hi"}]}
    responses = await asyncio.gather(*(log(api, app, body) for _ in range(20)))
    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.json()["data"]["consumer_id"] for r in responses}) == 1
    usage = (await get(api, app, "/analytics/usage")).json()["data"]["summary"]
    assert usage["unique_consumers"] == 1


async def test_racing_auth_and_log_for_one_person_share_one_consumer(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    auth = {"email": "dee@example.com", "external_id": "dee@example.com"}
    log_body = {"consumer": {"email": "dee@example.com"}, "messages": [{"role": "user", "content": "hi"}]}
    calls = [api.post(app.base + "/consumers/auth", json=auth, headers=app.headers) for _ in range(5)]
    calls += [log(api, app, log_body) for _ in range(5)]
    responses = await asyncio.gather(*calls)
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    ids = {r.json()["data"]["consumer"]["id"] for r in responses[:5]}
    ids |= {r.json()["data"]["consumer_id"] for r in responses[5:]}
    assert len(ids) == 1


async def test_racing_ratings_leave_one_per_consumer(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    created = (await log(api, app, {"messages": [{"role": "assistant", "content": "answer"}]})).json()["data"]
    rate = [{"message_id": created["message_ids"][0], "rating": r} for r in (1, -1, 0, 1, -1, 1, 0, -1)]
    responses = await asyncio.gather(
        *(api.post(app.base + "/feedback", json=body, headers=app.headers) for body in rate)
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    listed = (await get(api, app, "/feedback")).json()
    assert listed["pagination"]["total"] == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # only SQLite queues writers in-process
async def test_a_writer_queued_past_the_busy_timeout_is_a_503_not_a_hang(
    server: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_app(server, scopes=WRITE)
    monkeypatch.setattr(writelock, "QUEUE_TIMEOUT_SECONDS", 0.2)
    async with server.state.engine.connect() as db:
        async with writelock.write_transaction(db):  # another writer holds the database
            response = await log(api, app, {"messages": [{"role": "user", "content": "hi"}]})
    assert_error(response, 503, "service_unavailable")
    assert (await log(api, app, {"messages": [{"role": "user", "content": "hi"}]})).status_code == 201
