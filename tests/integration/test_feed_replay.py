"""The event feed's defining rule, as a property (SPEC section 11): after any sequence of writes (new sessions,
appends, ratings, consumer updates, tag changes, session deletes, erasures), a client that listed everything
at a stored cursor and then replays GET /events from it, fetching each changed object (a 404: deleted), holds
exactly every Part-one list as the server now answers it. Driven by a hypothesis state machine, on every
backend; a cursor is stored after each step, and every one of them is replayed at the end."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.ingest.importer import import_lines
from tests.factories import TestApp, make_app

WRITE = {"sessions": "write", "feedback": "write", "consumers": "write"}
EMAILS = ["ann@example.com", "bob@example.com", "cy@example.com", None]
Snapshot = dict[str, dict[str, Any]]


class Remote:
    """The app's Part-one lists through HTTP, and the fetch of one object as the sync recipe does."""

    def __init__(self, api: httpx.AsyncClient, app: TestApp) -> None:
        self.api, self.app = api, app

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.api.get(self.app.base + path, params=params, headers=self.app.headers)

    async def walk(self, path: str, key: str = "cursor") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            body = (await self.get(path, **params)).json()
            items.extend(body["data"])
            pagination = body["pagination"]
            if not pagination["has_more"]:
                return items
            if "next_cursor" in pagination:
                params["cursor"] = pagination["next_cursor"]
            else:
                params["offset"] = pagination["offset"] + pagination["limit"]

    async def messages_of(self, session_id: str) -> list[dict[str, Any]]:
        response = await self.get(f"/sessions/{session_id}/messages", limit=100, include="tool_details")
        return list(response.json()["data"]) if response.status_code == 200 else []

    async def snapshot(self) -> Snapshot:
        sessions = await self.walk("/sessions")
        messages = {m["id"]: m for s in sessions for m in await self.messages_of(s["id"])}
        return {
            "session": {s["id"]: s for s in sessions},
            "message": messages,
            "consumer": {c["id"]: c for c in await self.walk("/consumers")},
            "feedback": {f["id"]: f for f in await self.walk("/feedback")},
            "tag": {t["id"]: t for t in (await self.get("/tags")).json()["data"]},
            "memory": {m["id"]: m for m in await self.walk("/memories")},
        }

    async def latest(self) -> str:
        return str((await self.get("/events/latest")).json()["data"]["cursor"])

    async def fetch(self, kind: str, object_id: str, session_id: str | None) -> dict[str, Any] | None:
        """The object as the server holds it now, or None when it is gone."""
        if kind == "session":
            response = await self.get(f"/sessions/{object_id}")
            return response.json()["data"] if response.status_code == 200 else None
        if kind == "consumer":
            response = await self.get(f"/consumers/{object_id}")
            return response.json()["data"] if response.status_code == 200 else None
        if kind == "message":
            found = [m for m in await self.messages_of(str(session_id)) if m["id"] == object_id]
            return found[0] if found else None
        if kind == "tag":
            found = [t for t in (await self.get("/tags")).json()["data"] if t["id"] == object_id]
            return found[0] if found else None
        path = {"feedback": "/feedback", "memory": "/memories"}[kind]
        found = [item for item in await self.walk(path) if item["id"] == object_id]
        return found[0] if found else None

    async def replay(self, base: Snapshot, cursor: str) -> Snapshot:
        """The sync recipe: from a listing taken at `cursor`, apply every event after it."""
        held = {kind: dict(objects) for kind, objects in base.items()}
        while True:
            page = (await self.get("/events", after=cursor, limit=37)).json()
            for event in page["data"]:
                kind = event["type"].partition(".")[0]
                now = await self.fetch(kind, event["object_id"], event["session_id"])
                if now is None:
                    held[kind].pop(event["object_id"], None)
                else:
                    held[kind][event["object_id"]] = now
            cursor = page["pagination"]["next_cursor"]
            if not page["pagination"]["has_more"]:
                return held


class FeedMachine(RuleBasedStateMachine):
    """Random writes through every writer; a stored (cursor, listing) after each step."""

    loop: asyncio.AbstractEventLoop
    server: Any
    api: httpx.AsyncClient

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    @initialize()
    def start(self) -> None:
        self.app = self.run(make_app(self.server, scopes=WRITE))
        self.remote = Remote(self.api, self.app)
        self.sessions: list[str] = []
        self.messages: list[tuple[str, str]] = []
        self.consumers: list[str] = []
        self.tags: list[str] = []
        self.stored: list[tuple[str, Snapshot]] = []
        self.remember()

    def remember(self) -> None:
        cursor = self.run(self.remote.latest())
        self.stored.append((cursor, self.run(self.remote.snapshot())))

    def post(self, path: str, body: Any) -> dict[str, Any]:
        response = self.run(self.api.post(self.app.base + path, json=body, headers=self.app.headers))
        assert response.status_code in (200, 201), response.text
        return dict(response.json()["data"])

    @rule(email=st.sampled_from(EMAILS), count=st.integers(1, 3))
    def new_session(self, email: str | None, count: int) -> None:
        body: dict[str, Any] = {"messages": [{"role": "user", "content": f"m{n}"} for n in range(count)]}
        if email:
            body["consumer"] = {"email": email}
        logged = self.post("/conversations/log", body)
        self.sessions.append(logged["session_id"])
        self.messages.extend((logged["session_id"], mid) for mid in logged["message_ids"])
        if logged["consumer_id"]:
            self.consumers.append(logged["consumer_id"])
        self.remember()

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def append(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(self.sessions))
        logged = self.run(self.api.post(self.app.base + "/conversations/log", headers=self.app.headers,
                                        json={"session_id": sid, "messages": [{"role": "assistant", "content": "a"}]}))
        if logged.status_code == 200:
            self.messages.append((sid, logged.json()["data"]["message_ids"][0]))
        self.remember()

    @precondition(lambda self: self.messages)
    @rule(data=st.data(), rating=st.sampled_from([-1, 0, 1]))
    def rate(self, data: st.DataObject, rating: int) -> None:
        _sid, mid = data.draw(st.sampled_from(self.messages))
        self.run(self.api.post(self.app.base + "/feedback", json={"message_id": mid, "rating": rating},
                               headers=self.app.headers))
        self.remember()

    @rule(email=st.sampled_from(EMAILS[:3]), name=st.sampled_from(["Ann", "Bob", "Zed"]))
    def authenticate(self, email: str, name: str) -> None:
        self.consumers.append(self.post("/consumers/auth", {"email": email, "name": name})["consumer"]["id"])
        self.remember()

    @precondition(lambda self: self.messages)
    @rule(data=st.data(), name=st.sampled_from(["billing", "bug"]), color=st.sampled_from(["#ff0000", "#00ff00"]))
    def tag_a_message(self, data: st.DataObject, name: str, color: str) -> None:
        _sid, mid = data.draw(st.sampled_from(self.messages))
        tag_id = self.tags[0] if self.tags and data.draw(st.booleans()) else str(uuid.uuid4())
        if tag_id not in self.tags:
            self.tags.append(tag_id)
        lines = [{"type": "tag", "id": tag_id, "name": name, "color": color, "created_at": "2025-06-01T00:00:00Z"},
                 {"type": "message_tag", "message_id": mid, "tag_id": tag_id}]
        report = self.run(import_lines(self.server.state.engine, self.app.id, [json.dumps(x) for x in lines]))
        assert report.ok or report.errors, report  # a message deleted meanwhile is a bad line: nothing written
        self.remember()

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def delete_session(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(self.sessions))
        self.run(self.api.delete(self.app.base + f"/sessions/{sid}", headers=self.app.headers))
        self.remember()

    @precondition(lambda self: self.consumers)
    @rule(data=st.data())
    def erase(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.consumers))
        self.run(self.api.delete(self.app.base + f"/consumers/{cid}", headers=self.app.headers))
        self.remember()

    def teardown(self) -> None:
        if not hasattr(self, "remote"):
            return
        final = self.run(self.remote.snapshot())
        for n, (cursor, base) in enumerate(self.stored):
            replayed = self.run(self.remote.replay(base, cursor))
            for kind in final:
                assert replayed[kind] == final[kind], (n, kind)


def test_replaying_the_feed_from_any_stored_cursor_gives_every_list(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    server = create_app(Settings(database_url=database_url, rate_limit=10**9))
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://testserver")
    FeedMachine.loop, FeedMachine.server, FeedMachine.api = loop, server, api
    try:
        run_state_machine_as_test(FeedMachine, settings=settings(
            max_examples=12, stateful_step_count=10, deadline=None, derandomize=True,
            suppress_health_check=list(HealthCheck)))
    finally:
        loop.run_until_complete(api.aclose())
        loop.run_until_complete(server.state.engine.dispose())
        loop.close()
