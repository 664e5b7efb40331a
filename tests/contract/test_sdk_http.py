"""The sync Client over real HTTP against a served process: `uvicorn chipp_builder.server.app:create_app`
on an SQLite file, with an app and key made through the apps queries."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from chipp_builder.client import Client, ConnectionFailed, NotFound, RetryPolicy, Unauthorized
from chipp_builder.client.models import Session
from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.ingest.importer import import_lines
from chipp_builder.server.resources.apps import queries as apps

S1 = "00000001-0000-4000-8000-000000000001"
S2 = "00000001-0000-4000-8000-000000000002"
S3 = "00000001-0000-4000-8000-000000000003"
ALICE = "00000002-0000-4000-8000-000000000001"
TAG = "00000003-0000-4000-8000-000000000001"
RECORDS: list[dict[str, Any]] = [
    {"type": "consumer", "id": ALICE, "identifier": "alice@example.com", "email": "alice@example.com",
     "name": "Alice", "created_at": "2025-05-01T00:00:00Z"},
    {"type": "session", "id": S1, "started_at": "2025-06-01T10:00:00Z", "source": "APP", "title": "Billing",
     "consumer_id": ALICE},
    {"type": "session", "id": S2, "started_at": "2025-06-02T10:00:00Z", "source": "WIDGET",
     "title": "Shipping"},
    {"type": "session", "id": S3, "started_at": "2025-06-03T10:00:00Z", "source": "API", "title": "Returns"},
    {"type": "message", "id": "m1", "session_id": S1, "role": "user", "content": "My invoice",
     "created_at": "2025-06-01T10:00:01Z"},
    {"type": "message", "id": "m2", "session_id": S1, "role": "assistant", "content": "Checking",
     "model": "gpt-4o", "token_count": 30, "created_at": "2025-06-01T10:00:02Z"},
    {"type": "message", "id": "m3", "session_id": S1, "role": "user", "content": "Thanks",
     "created_at": "2025-06-01T10:00:03Z"},
    {"type": "tag", "id": TAG, "name": "billing", "color": "#ef4444", "created_at": "2025-05-01T00:00:00Z"},
    {"type": "message_tag", "message_id": "m2", "tag_id": TAG},
    {"type": "feedback", "id": "f1", "message_id": "m2", "session_id": S1, "rating": 1,
     "created_at": "2025-06-01T10:01:00Z"},
    {"type": "knowledge_source", "id": "k1", "name": "Help", "source_type": "url", "status": "completed",
     "url": "https://example.com", "created_at": "2025-05-01T00:00:00Z"},
    {"type": "memory", "id": "mem1", "consumer_id": ALICE, "content": "Prefers email",
     "memory_type": "preference", "created_at": "2025-06-01T00:00:00Z"},
]


@dataclass
class Served:
    """A running server process and the app it serves."""

    base_url: str
    app_id: uuid.UUID
    key: str

    def client(self, **kwargs: Any) -> Client:
        return Client(self.base_url, self.key, self.app_id, timeout=10.0, **kwargs)


async def _seed(database_url: str) -> tuple[uuid.UUID, str]:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as db:
            created = await apps.create_app(db, "SDK over HTTP")
            key = await apps.create_key(db, created["id"], "sdk test", {"sessions": "write",
                                                                        "feedback": "write",
                                                                        "consumers": "write"})
        report = await import_lines(engine, created["id"], [json.dumps(r) for r in RECORDS])
        assert report.ok, report.errors
    finally:
        await engine.dispose()
    return created["id"], key["rawKey"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder: Path = tmp_path_factory.mktemp("served")
    database_url = f"sqlite:///{folder}/x.db"
    upgrade(database_url)
    app_id, key = asyncio.run(_seed(database_url))
    port = _free_port()
    # Only the settings this test means: a developer's own CHIPP_* variables must not leak in.
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHIPP_")}
    env.update(CHIPP_DATABASE_URL=database_url, CHIPP_RATE_LIMIT="100000")
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "chipp_builder.server.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                httpx.get(f"{base_url}/api/v1/apps/{app_id}/tags", headers={"Authorization": f"Bearer {key}"},
                          timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the server did not start within 30 s:\n{log_path.read_text()}")
                time.sleep(0.1)
        yield Served(base_url, app_id, key)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_reads_every_resource_over_http(served: Served) -> None:
    with served.client() as client:
        sessions = list(client.sessions.list(limit=2))
        assert [str(s.id) for s in sessions] == [S3, S2, S1]
        assert all(isinstance(s, Session) for s in sessions)
        session = client.sessions.get(S1)
        assert session.started_at == datetime(2025, 6, 1, 10, tzinfo=UTC) and session.message_count == 3
        messages = list(client.sessions.messages(S1, limit=1))
        assert [m.id for m in messages] == ["m1", "m2", "m3"]
        assert [t.name for t in messages[1].tags] == ["billing"]
        consumers = client.consumers.list()
        assert consumers.pagination.total == 1 and consumers.data[0].email == "alice@example.com"
        assert client.consumers.get(ALICE).name == "Alice"
        feedback = client.feedback.list(rating=1)
        assert feedback.pagination.total == 1 and [f.id for f in feedback] == ["f1"]
        assert [t.name for t in client.tags.list()] == ["billing"]
        assert [k.id for k in client.knowledge_sources.list(status="completed")] == ["k1"]
        assert [m.id for m in client.memories.list(consumer_id=ALICE)] == ["mem1"]
        usage = client.analytics.usage(group_by="month", started_before="2025-07-01")
        assert usage.summary.total_sessions == 3 and usage.summary.total_messages == 3
        tokens = client.analytics.token_usage(started_after=datetime(2025, 5, 1, tzinfo=UTC))
        assert tokens.summary.total_tokens == 30


def test_pages_walk_over_http(served: Served) -> None:
    with served.client() as client:
        page = client.sessions.list(limit=2)
        assert page.pagination.has_more and page.pagination.next_cursor
        assert [len(p.data) for p in page.pages()] == [2, 1]


def test_errors_over_http_raise_their_classes(served: Served) -> None:
    with served.client() as client:
        with pytest.raises(NotFound) as caught:
            client.sessions.get(uuid.uuid4())
        assert (caught.value.status, caught.value.message) == (404, "Session not found")
    with Client(served.base_url, "chipp_" + "0" * 32, served.app_id) as stranger:
        with pytest.raises(Unauthorized, match="Invalid API key"):
            list(stranger.tags.list())  # a list is fetched when first used


def test_writes_over_http(served: Served) -> None:
    with served.client() as client:
        logged = client.conversations.log(
            [{"role": "user", "content": "Where is my parcel?"},
             {"role": "assistant", "content": "On its way", "model": "gpt-4o", "token_count": 12}],
            consumer={"email": "bob@example.com", "name": "Bob"}, title="Parcel", source="WIDGET",
        )
        assert len(logged.message_ids) == 2 and logged.consumer_id is not None
        session = client.sessions.get(logged.session_id)
        assert (session.title, session.message_count, session.source.value) == ("Parcel", 2, "WIDGET")
        rated = client.feedback.create(logged.message_ids[1], -1, consumer_id=logged.consumer_id)
        assert rated.rating == -1 and rated.message_id == logged.message_ids[1]
        token = client.consumers.auth(external_id="site-user-7", name="Carol")
        assert token.token and token.expires_at > datetime.now(UTC)
        assert token.consumer.identifier == "site-user-7"


def test_conversations_log_with_the_same_idempotency_key_writes_once(served: Served) -> None:
    with served.client() as client:
        key = f"sdk-test-{uuid.uuid4()}"
        messages = [{"role": "user", "content": "once"}]
        first = client.conversations.log(messages, idempotency_key=key)
        again = client.conversations.log(messages, idempotency_key=key)
        assert again == first
        assert client.sessions.get(first.session_id).message_count == 1


def test_an_unreachable_server_raises_connection_failed_after_retries() -> None:
    sleeps: list[float] = []
    client = Client(f"http://127.0.0.1:{_free_port()}", "chipp_" + "0" * 32, uuid.uuid4(),
                    sleep=sleeps.append, retry=RetryPolicy(max_retries=2, random=lambda: 0.0))
    with client, pytest.raises(ConnectionFailed, match="ConnectError"):
        list(client.tags.list())
    assert sleeps == [0.25, 0.5]
