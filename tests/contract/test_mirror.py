"""`chipp-builder mirror` (SPEC section 11, docs/sync.md): a source app (demo data, in-process over
httpx.ASGITransport, on every backend) mirrored into an SQLite copy; random changes and deletions on the
source; the copy served and compared with the source list by list, field by field; the requests a run
after k changes makes; the fallbacks (no /events: a full copy that deletes what vanished; an expired cursor:
a full copy); an interrupted run; and the command itself."""

from __future__ import annotations

import asyncio
import random
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from chipp_builder.cli import mirror as mirror_cli
from chipp_builder.cli.main import app as cli_app
from chipp_builder.client import AsyncClient, Client
from chipp_builder.export.mirror import Mirror, Outcome
from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.ingest.demo import generate_demo
from chipp_builder.server.ingest.mirror import CopyDatabase, NotACopy
from chipp_builder.server.resources.apps import queries as apps
from chipp_builder.server.writes.events import prune_events

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

WRITE = {"sessions": "write", "consumers": "write", "feedback": "write"}
SOURCE = "http://source.test"


class Counting(httpx.AsyncBaseTransport):
    """A transport that counts requests, can answer 404 for /events (a server without the feed) and can fail
    after a number of requests (an interrupted run)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[str] = []
        self.no_feed = False
        self.fail_after: int | None = None
        self.failures = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.fail_after is not None and len(self.requests) >= self.fail_after:
            self.failures += 1
            raise httpx.ConnectError("the network went away")
        self.requests.append(f"{request.method} {request.url.path.split('/', 5)[-1]}")
        if self.no_feed and "/events" in request.url.path:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "Not found"}})
        return await self.inner.handle_async_request(request)


class Source:
    """The source app: its server, a write key, and an SDK client whose requests are counted."""

    def __init__(self, server: Any, app_id: uuid.UUID, key: str) -> None:
        self.server, self.app_id, self.key = server, app_id, key
        self.transport = Counting(httpx.ASGITransport(app=server, raise_app_exceptions=False))
        self.client = AsyncClient(SOURCE, key, app_id, transport=self.transport)

    def writer(self) -> AsyncClient:
        return AsyncClient(SOURCE, self.key, self.app_id,
                           transport=httpx.ASGITransport(app=self.server, raise_app_exceptions=False))


@pytest.fixture
async def source(server: Any) -> AsyncIterator[Source]:
    app_id = await generate_demo(server.state.engine, sessions=100, seed=5)
    async with server.state.engine.begin() as db:
        key = await apps.create_key(db, app_id, "mirror source", WRITE)
    one = Source(server, app_id, key["rawKey"])
    yield one
    await one.client.aclose()


@pytest.fixture
async def copy(tmp_path: Path, source: Source) -> AsyncIterator[CopyDatabase]:
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield CopyDatabase(engine, source.app_id)
    await engine.dispose()


async def mirror_once(source: Source, copy: CopyDatabase, page_size: int = 100) -> tuple[Outcome, int]:
    """One run of the mirror; its outcome and the requests it made."""
    before = len(source.transport.requests)
    state = await copy.prepare(SOURCE)
    outcome = await Mirror(source.client, copy, SOURCE, page_size=page_size).run(state)
    return outcome, len(source.transport.requests) - before


async def walk(client: AsyncClient) -> dict[str, Any]:
    """Every Part-one list (and single-object GET) of an app, as the API's JSON."""
    def dump(items: list[Any]) -> list[Any]:
        return [item.model_dump(mode="json") for item in items]

    sessions = [s async for s in client.sessions.list()]
    consumers = [c async for c in client.consumers.list()]
    return {
        "sessions": dump(sessions),
        "session": [(await client.sessions.get(s.id)).model_dump(mode="json") for s in sessions],
        "messages": [dump([m async for m in client.sessions.messages(s.id)]) for s in sessions],
        "messages+tools": [dump([m async for m in client.sessions.messages(s.id, include="tool_details")])
                           for s in sessions],
        "consumers": dump(consumers),
        "consumer": [(await client.consumers.get(c.id)).model_dump(mode="json") for c in consumers],
        "feedback": dump([f async for f in client.feedback.list()]),
        "feedback pages": [(await client.feedback.list(limit=7)).pagination.total],
        "tags": dump([t async for t in client.tags.list()]),
        "knowledge_sources": dump([k async for k in client.knowledge_sources.list()]),
        "memories": dump([m async for m in client.memories.list()]),
        "usage": (await client.analytics.usage(group_by="day")).model_dump(mode="json"),
        "token_usage": (await client.analytics.token_usage(group_by="week")).model_dump(mode="json"),
    }


async def served_copy(copy: CopyDatabase) -> tuple[Any, AsyncClient]:
    """`chipp-builder serve` over the copy (create_app on its database), with a key made on the copy."""
    url = copy.engine.url.render_as_string(hide_password=False)
    server = create_app(Settings(database_url=url, rate_limit=1_000_000))
    async with server.state.engine.begin() as db:
        key = await apps.create_key(db, copy.app_id, "reader")
    client = AsyncClient("http://copy.test", key["rawKey"], copy.app_id,
                         transport=httpx.ASGITransport(app=server, raise_app_exceptions=False))
    return server, client


async def assert_same(source: Source, copy: CopyDatabase) -> dict[str, Any]:
    server, client = await served_copy(copy)
    try:
        expected = await walk(source.writer())
        got = await walk(client)
        for name in expected:
            assert got[name] == expected[name], name
        return expected
    finally:
        await client.aclose()
        await server.state.engine.dispose()


async def random_changes(source: Source, seed: int) -> dict[str, int]:
    """Appends, new sessions, ratings, consumers/auth, session deletes and an erasure, drawn by `seed`."""
    draw = random.Random(seed)
    done = dict.fromkeys(("appends", "new sessions", "ratings", "auths", "deletes", "erasures"), 0)
    async with source.writer() as w:
        sessions = [s async for s in w.sessions.list()]
        for one in draw.sample(sessions, 5):
            await w.conversations.log([{"role": "user", "content": f"again {draw.random()}"},
                                       {"role": "assistant", "content": "sure", "model": "gpt-4o",
                                        "token_count": 12}], session_id=one.id)
            done["appends"] += 1
        for n in range(4):
            consumer = {"email": f"new{seed}-{n}@example.com", "name": f"New {n}"} if n % 2 else None
            await w.conversations.log([{"role": "user", "content": f"hello {n}"},
                                       {"role": "assistant", "content": "hi", "model": "claude",
                                        "tool_calls": [{"tool_name": "search", "status": "success"}],
                                        "tool_results": [{"tool_name": "search", "result": {"hits": n}}]}],
                                      consumer=consumer, title=f"New chat {n}", source="WIDGET")
            done["new sessions"] += 1
        for one in draw.sample(sessions, 5):
            messages = [m async for m in w.sessions.messages(one.id)]
            if messages:
                await w.feedback.create(draw.choice(messages).id, draw.choice([-1, 1]))
                done["ratings"] += 1
        consumers = [c async for c in w.consumers.list()]
        await w.consumers.auth(email=f"auth{seed}@example.com", name="Fresh")
        await w.consumers.auth(email=draw.choice([c for c in consumers if c.email]).email, name="Renamed")
        done["auths"] += 2
        doomed = draw.sample([s for s in sessions], 2)
        for one in doomed:
            await w.sessions.delete(one.id)
            done["deletes"] += 1
        survivors = {s.consumer_id for s in sessions if s.id not in {d.id for d in doomed}}
        erased = draw.choice([c for c in consumers if c.id in survivors])
        await w.consumers.erase(erased.id)
        done["erasures"] += 1
    return done


async def feed_size(source: Source, cursor: str) -> int:
    async with source.writer() as w:
        return len([e async for e in w.events.list(cursor, limit=500)])


async def test_a_copy_then_the_changes_since_reproduce_every_list(source: Source, copy: CopyDatabase) -> None:
    first, full_requests = await mirror_once(source, copy)
    assert first.mode == "full" and first.reason == "first run" and first.cursor
    assert first.written > 0 and first.deleted == 0
    await assert_same(source, copy)

    changes = await random_changes(source, seed=1)
    k = await feed_size(source, first.cursor)
    second, requests = await mirror_once(source, copy)
    assert second.mode == "feed" and second.events == k
    await assert_same(source, copy)
    print(f"\nmirror: full copy {full_requests} requests; {changes} -> {k} events -> {requests} requests")
    # Not a re-listing: a fraction of the full copy's requests. Each changed session's messages take one
    # request (Part one lists messages per session only); the new sessions, consumers and ratings come with a
    # page of their lists; the appended-to sessions and the renamed consumer are fetched one by one.
    touched = changes["appends"] + changes["new sessions"] + changes["ratings"]
    assert requests <= 2 + touched * 2 + 6, source.transport.requests[-requests:]
    assert requests * 4 < full_requests

    third, requests = await mirror_once(source, copy)
    assert (third.mode, third.events, requests) == ("feed", 0, 1)  # nothing new: one request


async def test_many_changes_cost_about_k_over_100_requests(source: Source, copy: CopyDatabase) -> None:
    first, _ = await mirror_once(source, copy)
    async with source.writer() as w:
        one = await w.conversations.log([{"role": "user", "content": "start"}], title="Long chat")
        for n in range(6):  # 600 messages appended to one session
            await w.conversations.log([{"role": "user", "content": f"m{n}-{i}"} for i in range(100)],
                                      session_id=one.session_id)
        for n in range(150):
            await w.consumers.auth(email=f"crowd{n}@example.com")
    k = await feed_size(source, str(first.cursor))
    second, requests = await mirror_once(source, copy)
    assert second.events == k and k > 750
    print(f"\nmirror: {k} events -> {requests} requests")
    # events: ceil(k / 500) pages; the session: one page of the newest; its 601 messages: 7 pages; the 150
    # new consumers: two pages of the newest.
    assert requests <= k // 100 + 6
    await assert_same(source, copy)


async def test_without_events_every_run_is_a_full_copy_that_deletes_what_vanished(
    source: Source, copy: CopyDatabase
) -> None:
    source.transport.no_feed = True
    first, _ = await mirror_once(source, copy)
    assert (first.mode, first.cursor) == ("no-feed", None)
    await assert_same(source, copy)
    changes = await random_changes(source, seed=2)
    assert changes["deletes"] == 2
    second, _ = await mirror_once(source, copy)
    assert second.mode == "no-feed" and second.deleted >= changes["deletes"] + changes["erasures"]
    await assert_same(source, copy)


async def test_an_expired_position_starts_a_full_copy(source: Source, copy: CopyDatabase) -> None:
    first, _ = await mirror_once(source, copy)
    await random_changes(source, seed=3)
    # The events since the stored position are past the retention: pruned, so the cursor is answered 410.
    await prune_events(source.server.state.engine, timedelta(seconds=1), now=datetime.now(UTC) + timedelta(days=1))
    second, _ = await mirror_once(source, copy)
    assert second.mode == "full" and second.reason == "the stored position had expired"
    assert second.deleted > 0  # the deleted sessions and the erased person are gone from the copy too
    await assert_same(source, copy)
    third, requests = await mirror_once(source, copy)
    assert (third.mode, third.events, requests) == ("feed", 0, 1)


async def test_an_interrupted_run_loses_nothing_and_continues(source: Source, copy: CopyDatabase) -> None:
    first, _ = await mirror_once(source, copy)
    await random_changes(source, seed=4)
    source.transport.fail_after = len(source.transport.requests) + 4
    with pytest.raises(Exception, match="network"):
        await mirror_once(source, copy)
    assert (await copy.prepare(SOURCE) or {})["cursor"] == first.cursor  # not moved: nothing was lost
    source.transport.fail_after = None
    again, _ = await mirror_once(source, copy)
    assert again.mode == "feed" and again.events > 0
    await assert_same(source, copy)


async def test_follow_applies_changes_as_they_come_and_outlasts_an_outage(
    source: Source, copy: CopyDatabase, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = await mirror_once(source, copy)
    job = Mirror(source.client, copy, SOURCE)
    monkeypatch.setattr(mirror_cli, "OUTAGE_WAITS", (0.05,))
    follower = asyncio.create_task(mirror_cli._follow(job, first, 2, [0]))

    async def copied(session_id: str) -> bool:
        for _ in range(200):
            if await copy.existing("session", [session_id]):
                return True
            await asyncio.sleep(0.05)
        return False

    async with source.writer() as w:
        one = await w.conversations.log([{"role": "user", "content": "live"}], title="Followed")
        assert await copied(str(one.session_id))
        source.transport.fail_after = len(source.transport.requests)  # the server goes away for a while:
        for _ in range(200):  # long enough for the SDK's retries to give up (three attempts) and more
            if source.transport.failures >= 4:
                break
            await asyncio.sleep(0.05)
        source.transport.fail_after = None
        two = await w.conversations.log([{"role": "user", "content": "after the outage"}])
        assert await copied(str(two.session_id))
    # The position is stored just after the changes it covers commit: wait for it before stopping the follower
    # (stopped in between, the next run applies those events again, which is harmless).
    latest = await source.client.events.latest()
    for _ in range(200):
        if (await copy.prepare(SOURCE) or {}).get("cursor") == latest:
            break
        await asyncio.sleep(0.05)
    follower.cancel()
    await follower
    shown = capsys.readouterr()
    assert "Following the feed" in shown.out and "Applied 2 events" in shown.out
    assert "following again in 0 s" in shown.err
    assert "Stopped: the copy is current up to the stored position." in shown.out
    await assert_same(source, copy)
    assert (await copy.prepare(SOURCE) or {})["cursor"] == await source.client.events.latest()


async def test_the_copy_refuses_a_database_that_holds_the_app_already(source: Source, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        async with engine.begin() as db:
            await apps.create_app(db, "Someone's own", source.app_id)
        with pytest.raises(NotACopy, match="not as a mirror's copy"):
            await CopyDatabase(engine, source.app_id).prepare(SOURCE)
    finally:
        await engine.dispose()


# --- the command --------------------------------------------------------------------------------------------


def test_the_command_mirrors_and_the_copy_serves_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    upgrade(source_url)

    async def seed() -> tuple[uuid.UUID, str]:
        engine = make_engine(source_url)
        try:
            app_id = await generate_demo(engine, sessions=12, seed=9)
            async with engine.begin() as db:
                return app_id, str((await apps.create_key(db, app_id, "cli", WRITE))["rawKey"])
        finally:
            await engine.dispose()

    app_id, key = asyncio.run(seed())
    made: list[Any] = []

    def client_in_the_commands_loop(config: Any, http: httpx.AsyncClient, sleep: Callable[..., Any]) -> AsyncClient:
        # The source server is made inside the command's event loop, so its engine's connections are too.
        server = create_app(Settings(database_url=source_url, rate_limit=1_000_000))
        made.append(server)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=server, raise_app_exceptions=False),
                                 event_hooks=http.event_hooks)  # the command's request count
        return AsyncClient(config.base_url, config.api_key, config.app_id, http_client=http, sleep=sleep)

    monkeypatch.setattr(mirror_cli, "make_client", client_in_the_commands_loop)
    copy_url = f"sqlite:///{tmp_path / 'copy.db'}"
    args = ["mirror", "--database-url", copy_url, "--base-url", SOURCE, "--key", key, "--app", str(app_id)]
    first = CliRunner().invoke(cli_app, args)
    assert first.exit_code == 0, first.output
    assert f"Mirrored app {app_id}" in first.stdout and "copied everything (first run)" in first.stdout
    assert " 0 requests" not in first.stdout
    with TestClient(create_app(Settings(database_url=source_url, rate_limit=1_000_000))) as src:
        Client(SOURCE, key, app_id, http_client=src).conversations.log([{"role": "user", "content": "one more"}])
    second = CliRunner().invoke(cli_app, args)
    assert second.exit_code == 0, second.output
    assert "applied 2 events: 2 rows written, 0 deleted" in second.stdout  # the session and its message
    assert "requests; position stored." in second.stdout

    keys = CliRunner().invoke(cli_app, ["keys", "create", "--app", str(app_id), "--name", "copy reader",
                                        "--database-url", copy_url])
    assert keys.exit_code == 0, keys.output
    copy_key = next(word for word in keys.stdout.split() if word.startswith("chipp_"))
    with TestClient(create_app(Settings(database_url=source_url, rate_limit=1_000_000))) as src, \
            TestClient(create_app(Settings(database_url=copy_url, rate_limit=1_000_000))) as dst:
        a = Client(SOURCE, key, app_id, http_client=src)
        b = Client("http://copy.test", copy_key, app_id, http_client=dst)
        assert [s.model_dump() for s in b.sessions.list()] == [s.model_dump() for s in a.sessions.list()]
        for s in a.sessions.list():
            assert [m.model_dump() for m in b.sessions.messages(s.id, include="tool_details")] == \
                [m.model_dump() for m in a.sessions.messages(s.id, include="tool_details")]
        assert [c.model_dump() for c in b.consumers.list()] == [c.model_dump() for c in a.consumers.list()]


async def test_a_postgresql_copy(source: Source, backend: str, request: pytest.FixtureRequest) -> None:
    if backend != "sqlite":
        pytest.skip("the source is on SQLite here: the PostgreSQL test database holds the copy")
    from tests.conftest import _empty_all_tables

    url = request.getfixturevalue("postgres_database")
    await _empty_all_tables(url)
    engine = make_engine(url)
    try:
        copy = CopyDatabase(engine, source.app_id)
        first, _ = await mirror_once(source, copy)
        await random_changes(source, seed=6)
        second, _ = await mirror_once(source, copy)
        assert (first.mode, second.mode) == ("full", "feed") and second.events > 0
        await assert_same(source, copy)
    finally:
        await engine.dispose()
        await _empty_all_tables(url)
