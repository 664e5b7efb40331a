"""Idempotency-Key (SPEC section 9): replay, conflict, failures not stored, per-key scope, concurrent
duplicates, expiry and clean-up, on every backend."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from chipp_builder.schemas.common import utc_now
from chipp_builder.server import idempotency
from chipp_builder.server.db.tables import idempotency_key
from chipp_builder.server.resources.apps import queries as apps
from tests.factories import TestApp, assert_error, get, make_app

WRITE = {"sessions": "write", "feedback": "write"}
BODY = {"title": "Order 1234", "messages": [{"role": "user", "content": "Where is my order?"}]}


async def log(api: Any, app: TestApp, body: Any, key: str | None = None, raw: bytes | None = None) -> Any:
    """POST conversations/log, with an Idempotency-Key when given."""
    headers = {**app.headers, **({"Idempotency-Key": key} if key is not None else {})}
    if raw is not None:
        headers["Content-Type"] = "application/json"
        return await api.post(app.base + "/conversations/log", content=raw, headers=headers)
    return await api.post(app.base + "/conversations/log", json=body, headers=headers)


async def session_count(api: Any, app: TestApp) -> int:
    response = await get(api, app, "/sessions", {"limit": 100})
    return len(response.json()["data"])


async def stored_keys(server: Any) -> int:
    async with server.state.engine.connect() as db:
        return int((await db.execute(select(func.count()).select_from(idempotency_key))).scalar_one())


async def test_a_retry_returns_the_first_response_and_writes_nothing(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    first = await log(api, app, BODY, key="order-1234")
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await log(api, app, BODY, key="order-1234")
    assert again.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert await session_count(api, app) == 1


async def test_the_body_is_compared_as_a_json_value_not_as_bytes(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    first = await log(api, app, BODY, key="k")
    reordered = {"messages": [{"content": "Where is my order?", "role": "user"}], "title": "Order 1234"}
    spaced = json.dumps(reordered, indent=4).encode()
    again = await log(api, app, None, key="k", raw=spaced)
    assert again.status_code == 201 and again.content == first.content
    assert await session_count(api, app) == 1


async def test_an_append_replays_its_200(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    sid = (await log(api, app, BODY)).json()["data"]["session_id"]
    append = {"session_id": sid, "messages": [{"role": "assistant", "content": "On its way."}]}
    first = await log(api, app, append, key="append-1")
    again = await log(api, app, append, key="append-1")
    assert first.status_code == again.status_code == 200 and again.content == first.content
    session = (await get(api, app, f"/sessions/{sid}")).json()["data"]
    assert session["message_count"] == 2


async def test_the_same_key_with_another_body_is_a_409(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    await log(api, app, BODY, key="k")
    other = {**BODY, "title": "Order 9999"}
    response = await log(api, app, other, key="k")
    assert_error(
        response, 409, "idempotency_conflict", "Idempotency-Key was already used with a different request"
    )
    assert await session_count(api, app) == 1


async def test_the_same_key_on_another_endpoint_is_a_409(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    created = (await log(api, app, BODY, key="shared")).json()["data"]
    response = await api.post(
        app.base + "/feedback",
        json={"message_id": created["message_ids"][0], "rating": 1},
        headers={**app.headers, "Idempotency-Key": "shared"},
    )
    assert_error(response, 409, "idempotency_conflict")


async def test_a_failed_request_is_not_stored_and_may_be_retried_with_its_key(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    missing = {**BODY, "session_id": "00000000-0000-4000-8000-000000000000"}
    assert_error(await log(api, app, missing, key="retry-me"), 404, "not_found")
    assert_error(await log(api, app, {"messages": []}, key="retry-me"), 400, "invalid_request")
    assert await stored_keys(server) == 0
    assert (await log(api, app, BODY, key="retry-me")).status_code == 201


async def test_keys_are_scoped_to_the_api_key(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    async with server.state.engine.begin() as db:
        second = await apps.create_key(db, app.id, "second", WRITE)
    other_key = TestApp(id=app.id, key=second["rawKey"], key_id=second["id"])
    first = await log(api, app, BODY, key="same")
    other = await log(api, other_key, BODY, key="same")
    assert first.status_code == other.status_code == 201
    assert first.json()["data"]["session_id"] != other.json()["data"]["session_id"]
    assert await session_count(api, app) == 2


@pytest.mark.parametrize(
    "value", ["x" * 256, "caf\u00e9", "tab\there"], ids=["too long", "non-ASCII", "control"]
)
async def test_a_malformed_key_is_a_400(server: Any, api: Any, value: str) -> None:
    app = await make_app(server, scopes=WRITE)
    headers = [(b"authorization", f"Bearer {app.key}".encode()), (b"idempotency-key", value.encode())]
    response = await api.post(app.base + "/conversations/log", json=BODY, headers=headers)
    assert_error(
        response,
        400,
        "invalid_request",
        "Idempotency-Key must be one value of 1 to 255 printable ASCII characters",
    )
    assert await session_count(api, app) == 0


async def test_a_key_of_255_characters_is_accepted(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    key = "k" * 254 + "~"
    first = await log(api, app, BODY, key=key)
    again = await log(api, app, BODY, key=key)
    assert first.status_code == 201 and again.content == first.content


async def test_concurrent_requests_with_the_same_key_write_once(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    responses = await asyncio.gather(*(log(api, app, BODY, key="burst") for _ in range(12)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert await session_count(api, app) == 1
    assert await stored_keys(server) == 1


async def test_concurrent_requests_with_the_same_key_and_different_bodies_write_once(
    server: Any, api: Any
) -> None:
    app = await make_app(server, scopes=WRITE)
    bodies = [{**BODY, "title": f"Order {i}"} for i in range(8)]
    responses = await asyncio.gather(*(log(api, app, b, key="contested") for b in bodies))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7, [r.text for r in responses]
    assert await session_count(api, app) == 1


async def test_feedback_honours_the_key_too(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    created = (await log(api, app, BODY)).json()["data"]
    rate = {"message_id": created["message_ids"][0], "rating": -1}
    headers = {**app.headers, "Idempotency-Key": "rate-1"}
    first = await api.post(app.base + "/feedback", json=rate, headers=headers)
    again = await api.post(app.base + "/feedback", json=rate, headers=headers)
    assert first.status_code == again.status_code == 201 and again.content == first.content


async def test_an_expired_key_counts_as_new(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    first = (await log(api, app, BODY, key="old")).json()["data"]
    async with server.state.engine.begin() as db:
        await db.execute(update(idempotency_key).values(expires_at=utc_now() - timedelta(seconds=1)))
    again = await log(api, app, {**BODY, "title": "changed"}, key="old")
    assert again.status_code == 201 and again.json()["data"]["session_id"] != first["session_id"]
    assert await session_count(api, app) == 2


async def test_keys_last_24_hours(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    before = utc_now()
    await log(api, app, BODY, key="day")
    async with server.state.engine.connect() as db:
        row = (await db.execute(select(idempotency_key.c.created_at, idempotency_key.c.expires_at))).one()
    assert row.expires_at - row.created_at == timedelta(hours=24)
    assert before - timedelta(seconds=1) <= row.created_at <= utc_now()


async def test_expired_keys_are_cleaned_up_by_later_writes(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    long_ago = utc_now() - timedelta(days=3)
    async with server.state.engine.begin() as db:
        await db.execute(
            insert(idempotency_key),
            [
                {
                    "api_key_id": app.key_id,
                    "key": f"stale-{i}",
                    "fingerprint": b"\0" * 32,
                    "status_code": 201,
                    "response_body": b"{}",
                    "created_at": long_ago,
                    "expires_at": long_ago + timedelta(hours=24),
                }
                for i in range(5)
            ],
        )
    server.state.idempotency_purged_at = None  # as if the purge interval had passed
    await log(api, app, BODY, key="fresh")
    async with server.state.engine.connect() as db:
        keys = (await db.execute(select(idempotency_key.c.key))).scalars().all()
    assert keys == ["fresh"]


async def test_purge_expired_removes_only_expired_keys(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    await log(api, app, BODY, key="live")
    now = utc_now()
    async with server.state.engine.begin() as db:
        await db.execute(
            insert(idempotency_key).values(
                api_key_id=app.key_id,
                key="dead",
                fingerprint=b"\0" * 32,
                status_code=201,
                response_body=b"{}",
                created_at=now - timedelta(days=2),
                expires_at=now - timedelta(days=1),
            )
        )
        assert await idempotency.purge_expired(db, now) == 1
        assert (await db.execute(select(idempotency_key.c.key))).scalars().all() == ["live"]
