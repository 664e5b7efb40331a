"""DELETE /sessions/{id} and DELETE /consumers/{id} (SPEC section 11): what goes, what stays, the events, the
counts, and erasure leaving nothing of the person readable (nor, on SQLite, in the file's bytes)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from chipp_builder.server.db.tables import idempotency_key
from tests.factories import (
    TestApp,
    assert_error,
    consumer_record,
    feedback_record,
    get,
    make_app,
    memory_record,
    message_record,
    message_tag_record,
    session_record,
    tag_record,
    uid,
)

S1, S2, S3 = uid(1, 1), uid(1, 2), uid(1, 3)
ANN, BOB = uid(2, 1), uid(2, 2)
TAG = uid(3, 1)
SECRET_TEXT = "Zyxwvu-ann-secret-words"
RECORDS = [
    consumer_record(ANN, "ann-ident-0451", "2025-05-01T00:00:00Z", email="ann.private@example.com",
                    name="Annabel Quuxington"),
    consumer_record(BOB, "bob@example.com", "2025-05-01T00:00:00Z", email="bob@example.com"),
    tag_record(TAG, "billing", "#ff0000", "2025-05-01T00:00:00Z"),
    session_record(S1, "2025-06-01T10:00:00Z", consumer_id=ANN, title="Ann asks"),
    message_record("a1", S1, "2025-06-01T10:00:01Z", role="user", content=SECRET_TEXT),
    message_record("a2", S1, "2025-06-01T10:00:02Z", role="assistant", content="An answer for Ann"),
    session_record(S2, "2025-06-02T10:00:00Z", consumer_id=BOB),
    message_record("b1", S2, "2025-06-02T10:00:01Z", role="user", content="Bob's question"),
    message_record("b2", S2, "2025-06-02T10:00:02Z", role="assistant", content="Bob's answer"),
    session_record(S3, "2025-06-03T10:00:00Z", consumer_id=BOB),
    message_record("c1", S3, "2025-06-03T10:00:01Z", role="user", content="Bob again"),
    message_tag_record("a1", TAG),
    message_tag_record("b1", TAG),
    feedback_record("f1", "a2", S1, 1, "2025-06-01T11:00:00Z", consumer_id=ANN),
    feedback_record("f2", "b2", S2, -1, "2025-06-02T11:00:00Z", consumer_id=ANN),  # Ann rates Bob's answer
    feedback_record("f3", "b2", S2, 1, "2025-06-02T11:30:00Z", consumer_id=BOB),
    memory_record("mem1", "Ann likes " + SECRET_TEXT, "2025-06-01T12:00:00Z", consumer_id=ANN),
    memory_record("mem2", "Bob likes tea", "2025-06-02T12:00:00Z", consumer_id=BOB),
]
WRITE = {"sessions": "write", "consumers": "write", "feedback": "write"}


async def events_after(api: Any, app: TestApp, cursor: str) -> list[tuple[str, str]]:
    response = await get(api, app, "/events", params={"after": cursor, "limit": 500})
    return [(e["type"], e["object_id"]) for e in response.json()["data"]]


async def latest(api: Any, app: TestApp) -> str:
    return str((await get(api, app, "/events/latest")).json()["data"]["cursor"])


async def test_deleting_a_session_takes_its_messages_links_and_ratings(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    before = await latest(api, app)
    response = await api.delete(app.base + f"/sessions/{S2}", headers=app.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"id": S2, "deleted": True, "counts": {"messages": 2, "feedback": 2}}}
    assert_error(await get(api, app, f"/sessions/{S2}"), 404, "not_found", "Session not found")
    assert [s["id"] for s in (await get(api, app, "/sessions")).json()["data"]] == [S3, S1]
    feedback = (await get(api, app, "/feedback")).json()
    assert [f["id"] for f in feedback["data"]] == ["f1"] and feedback["pagination"]["total"] == 1
    assert (await get(api, app, "/tags")).json()["data"][0]["usage_count"] == 1
    usage = (await get(api, app, "/analytics/usage")).json()["data"]["summary"]
    assert (usage["total_sessions"], usage["total_messages"]) == (2, 3)
    assert sorted(await events_after(api, app, before)) == sorted([
        ("feedback.deleted", "f2"), ("feedback.deleted", "f3"), ("message.deleted", "b1"),
        ("message.deleted", "b2"), ("session.deleted", S2), ("tag.updated", TAG)])
    again = await api.delete(app.base + f"/sessions/{S2}", headers=app.headers)
    assert_error(again, 404, "not_found", "Session not found")
    assert await latest(api, app) == (await get(api, app, "/events", params={"after": before, "limit": 500})
                                      ).json()["pagination"]["next_cursor"]  # the 404 wrote nothing


async def test_deletes_are_scoped_to_the_app_and_need_write(server: Any, api: Any) -> None:
    owner = await make_app(server, RECORDS, scopes=WRITE)
    other = await make_app(server, scopes=WRITE)
    assert_error(await api.delete(other.base + f"/sessions/{S1}", headers=other.headers), 404, "not_found")
    assert_error(await api.delete(other.base + f"/consumers/{ANN}", headers=other.headers), 404, "not_found")
    assert_error(await api.delete(owner.base + f"/sessions/{S1}", headers=other.headers), 403, "forbidden")
    assert_error(await api.delete(owner.base + "/sessions/not-a-uuid", headers=owner.headers), 404, "not_found")
    from chipp_builder.server.resources.apps import queries as apps

    async with server.state.engine.begin() as db:
        read_only = await apps.create_key(db, owner.id, "reads", None, None)
    headers = {"Authorization": f"Bearer {read_only['rawKey']}"}
    assert_error(await api.delete(owner.base + f"/consumers/{ANN}", headers=headers), 403, "forbidden",
                 "API key lacks write access to consumers")
    assert (await get(api, owner, f"/sessions/{S1}")).status_code == 200


async def test_erasure_removes_the_person_everywhere_and_says_what_went(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    before = await latest(api, app)
    response = await api.delete(app.base + f"/consumers/{ANN}", headers=app.headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["consumer_id"] == ANN and data["erased_at"].endswith("Z")
    assert data["counts"] == {"sessions": 1, "messages": 2, "feedback": 2, "memories": 1}
    assert data["cursor"] == await latest(api, app)
    assert_error(await get(api, app, f"/consumers/{ANN}"), 404, "not_found")
    assert_error(await get(api, app, f"/sessions/{S1}"), 404, "not_found")
    assert [f["id"] for f in (await get(api, app, "/feedback")).json()["data"]] == ["f3"]
    assert [m["id"] for m in (await get(api, app, "/memories")).json()["data"]] == ["mem2"]
    b2 = [m for m in (await get(api, app, f"/sessions/{S2}/messages")).json()["data"] if m["id"] == "b2"][0]
    assert b2["feedback"]["id"] == "f3"  # Bob's rating is now the newest one of his answer
    assert (await get(api, app, "/consumers")).json()["pagination"]["total"] == 1
    assert dict(await events_after(api, app, before)).keys() >= {
        "consumer.deleted", "session.deleted", "message.deleted", "feedback.deleted", "memory.deleted",
        "message.updated", "tag.updated"}
    assert ("message.updated", "b2") in await events_after(api, app, before)
    every = str([(await get(api, app, path)).json() for path in (
        "/sessions", "/consumers", "/feedback", "/memories", "/tags", "/events?limit=500",
        f"/sessions/{S2}/messages?include=tool_details")])
    for trace in ("ann.private", "Annabel", "ann-ident-0451", SECRET_TEXT):
        assert trace not in every


async def test_erasure_drops_the_idempotency_records_naming_the_person(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    body = {"consumer": {"email": "zed@example.com"}, "messages": [{"role": "user", "content": "hi"}]}
    headers = {**app.headers, "Idempotency-Key": "first-chat"}
    logged = await api.post(app.base + "/conversations/log", json=body, headers=headers)
    other = await api.post(app.base + "/conversations/log", json={"messages": [{"role": "user", "content": "x"}]},
                           headers={**app.headers, "Idempotency-Key": "someone-else"})
    assert logged.status_code == other.status_code == 201
    response = await api.delete(app.base + f"/consumers/{logged.json()['data']['consumer_id']}", headers=app.headers)
    assert response.status_code == 200, response.text
    async with server.state.engine.connect() as db:
        keys = sorted((await db.execute(select(idempotency_key.c.key))).scalars())
    assert keys == ["someone-else"]
    # The retry is a new request now: it makes a new session, never hands back the erased ids.
    retried = await api.post(app.base + "/conversations/log", json=body, headers=headers)
    assert retried.status_code == 201 and retried.json()["data"]["session_id"] != logged.json()["data"]["session_id"]


async def test_on_sqlite_nothing_of_the_erased_person_remains_in_the_file(
    server: Any, api: Any, backend: str, database_url: str
) -> None:
    if backend != "sqlite":
        async with server.state.engine.connect() as db:  # on PostgreSQL: gone from every table (VACUUM: docs)
            assert (await db.execute(select(func.count()).select_from(idempotency_key))).scalar_one() == 0
        return
    app = await make_app(server, RECORDS, scopes=WRITE)
    path = Path(database_url.removeprefix("sqlite:///"))
    files = [path, Path(f"{path}-wal")]
    assert any(SECRET_TEXT.encode() in f.read_bytes() for f in files if f.exists())  # the scan can see it
    response = await api.delete(app.base + f"/consumers/{ANN}", headers=app.headers)
    assert response.status_code == 200, response.text
    for trace in ("ann.private@example.com", "Annabel Quuxington", "ann-ident-0451", SECRET_TEXT,
                  SECRET_TEXT.casefold(), "annabel quuxington"):
        for f in files:
            if f.exists():
                assert trace.encode() not in f.read_bytes(), (trace, f.name)
    assert uuid.UUID(ANN)  # the id itself may remain in the feed (a consumer.deleted event names it)


async def test_a_memory_naming_a_deleted_session_names_nothing_afterwards(server: Any, api: Any) -> None:
    # Bob's memory was drawn from a message of S2: once S2 is gone it must not point there (an export of the
    # app would not import again), and the memory's change is in the feed.
    records = [*RECORDS, memory_record("mem3", "Bob asked twice", "2025-06-02T12:30:00Z", consumer_id=BOB,
                                       session_id=S2, source_message_id="b1")]
    app = await make_app(server, records, scopes=WRITE)
    before = await latest(api, app)
    assert (await api.delete(app.base + f"/sessions/{S2}", headers=app.headers)).status_code == 200
    memories = {m["id"]: m for m in (await get(api, app, "/memories")).json()["data"]}
    assert (memories["mem3"]["session_id"], memories["mem3"]["source_message_id"]) == (None, None)
    assert memories["mem3"]["content"] == "Bob asked twice"
    assert ("memory.updated", "mem3") in await events_after(api, app, before)


async def test_delete_objects_removes_messages_ratings_and_tags_with_what_shows_them(server: Any, api: Any) -> None:
    from chipp_builder.server.writes.deletes import delete_objects

    app = await make_app(server, RECORDS, scopes=WRITE)
    before = await latest(api, app)
    async with server.state.engine.begin() as db:
        removed = await delete_objects(db, app.id, "message", ["b2", "no-such-message"])
    assert (removed.messages, removed.feedback) == (1, 2)
    session = (await get(api, app, f"/sessions/{S2}")).json()["data"]
    assert session["message_count"] == 1 and session["last_activity_at"] == "2025-06-02T10:00:01Z"
    assert [f["id"] for f in (await get(api, app, "/feedback")).json()["data"]] == ["f1"]
    feed = await events_after(api, app, before)
    assert {("message.deleted", "b2"), ("feedback.deleted", "f2"), ("feedback.deleted", "f3"),
            ("session.updated", S2)} <= set(feed)
    async with server.state.engine.begin() as db:
        await delete_objects(db, app.id, "tag", [TAG])
        await delete_objects(db, app.id, "memory", ["mem2"])
    assert (await get(api, app, "/tags")).json()["data"] == []
    messages = (await get(api, app, f"/sessions/{S1}/messages")).json()["data"]
    assert all(m["tags"] == [] for m in messages)
    memories = (await get(api, app, "/memories")).json()
    assert [m["id"] for m in memories["data"]] == ["mem1"] and memories["pagination"]["total"] == 1
    usage = (await get(api, app, "/analytics/usage")).json()["data"]["summary"]
    assert usage["total_messages"] == 4
