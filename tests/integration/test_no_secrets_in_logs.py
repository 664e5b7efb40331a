"""Security headers and logs (issue 6). Over real HTTP, from `chipp-builder serve` (uvicorn, access log on):
every response says `X-Content-Type-Options: nosniff` and names no `Server`. And no log line, the
server's stdout and stderr over a whole run nor Python logging of in-process requests, holds a raw key,
the operator token or an Authorization header's value, across successes, 401s, 403s, 500s and 503s."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.auth import generate_key
from chipp_builder.server.config import Settings
from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.ingest.importer import import_lines
from chipp_builder.server.resources.apps import queries as apps
from tests.factories import make_app, message_record, session_record, uid

ADMIN_TOKEN = "operator-secret-" + uuid.uuid4().hex
WRONG_ADMIN_TOKEN = "operator-guess-" + uuid.uuid4().hex
MALFORMED_TOKEN = "not-a-key-" + uuid.uuid4().hex
SESSION = uid(1, 1)
RECORDS = [session_record(SESSION, "2025-06-01T10:00:00Z", title="Billing"),
           message_record("m1", SESSION, "2025-06-01T10:00:01Z")]


@dataclass
class Served:
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    app_id: uuid.UUID
    key: str
    read_key: str
    other_key: str
    revoked_key: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(database_url: str) -> dict[str, Any]:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as db:
            created = await apps.create_app(db, "Logged app")
            other = await apps.create_app(db, "Another app")
            key = await apps.create_key(db, created["id"], "writer", {"sessions": "write"})
            read_key = await apps.create_key(db, created["id"], "reader")
            other_key = await apps.create_key(db, other["id"], "other")
            revoked = await apps.create_key(db, created["id"], "revoked")
            await apps.revoke_key(db, revoked["id"], created["id"])
        report = await import_lines(engine, created["id"], [json.dumps(r) for r in RECORDS])
        assert report.ok, report.errors
    finally:
        await engine.dispose()
    return {"app_id": created["id"], "key": key["rawKey"], "read_key": read_key["rawKey"],
            "other_key": other_key["rawKey"], "revoked_key": revoked["rawKey"]}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`chipp-builder serve` (uvicorn with its access log) on an SQLite file; stdout and stderr to one log."""
    folder = tmp_path_factory.mktemp("logs")
    database_url = f"sqlite:///{folder}/logs.db"
    upgrade(database_url)
    seeded = asyncio.run(_seed(database_url))
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHIPP_")}
    env.update(CHIPP_DATABASE_URL=database_url, CHIPP_ADMIN_TOKEN=ADMIN_TOKEN, CHIPP_RATE_LIMIT="100000")
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from chipp_builder.cli.main import main; main()", "serve",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                httpx.get(f"{base_url}/ready-probe", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the server did not start within 30 s:\n{log_path.read_text()}")
                time.sleep(0.1)
        yield Served(base_url, log_path, process, **seeded)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_security_headers_over_http(served: Served) -> None:
    base = f"{served.base_url}/api/v1/apps/{served.app_id}"
    with httpx.Client(timeout=10.0) as client:
        responses = [
            client.get(f"{base}/sessions", headers=bearer(served.key)),  # 200
            client.get(f"{base}/sessions", params={"limit": "0"}, headers=bearer(served.key)),  # 400
            client.get(f"{base}/sessions"),  # 401
            client.get(f"{base}/sessions", headers=bearer(served.other_key)),  # 403
            client.get(f"{base}/sessions/{uuid.uuid4()}", headers=bearer(served.key)),  # 404
            client.get(f"{served.base_url}/no-such-route"),  # 404 before auth
            client.request("PUT", f"{base}/sessions", headers=bearer(served.key)),  # 405
            client.post(f"{base}/conversations/log", content=b"x" * (1024 * 1024 + 1),
                        headers={**bearer(served.key), "Content-Type": "application/json"}),  # 413
            client.post(f"{base}/conversations/log", headers=bearer(served.key),
                        json={"messages": [{"role": "user", "content": "hi"}]}),  # 201
            client.get(f"{served.base_url}/openapi.json"),  # 200, not an API route
        ]
    assert [r.status_code for r in responses] == [200, 400, 401, 403, 404, 404, 405, 413, 201, 200]
    for response in responses:
        assert response.headers.get("x-content-type-options") == "nosniff", (response.url, response.headers)
        assert "server" not in response.headers, (response.url, response.headers)


def _run_everything(served: Served) -> list[str]:
    """Requests down every path that touches a credential; the secrets they carried or received."""
    base = f"{served.base_url}/api/v1/apps/{served.app_id}"
    unknown_key = generate_key()
    secrets = [served.key, served.read_key, served.other_key, served.revoked_key, unknown_key, ADMIN_TOKEN,
               WRONG_ADMIN_TOKEN, MALFORMED_TOKEN]
    with httpx.Client(timeout=10.0) as client:
        statuses = [
            client.get(f"{base}/sessions", headers=bearer(served.key)).status_code,
            client.get(f"{base}/sessions", headers={"Authorization": f"bearer {served.read_key}"}).status_code,
            client.get(f"{base}/sessions", headers=bearer(unknown_key)).status_code,
            client.get(f"{base}/sessions", headers=bearer(served.revoked_key)).status_code,
            client.get(f"{base}/sessions", headers=bearer(MALFORMED_TOKEN)).status_code,
            client.get(f"{base}/sessions", headers={"Authorization": served.key}).status_code,
            client.get(f"{base}/sessions", headers=bearer(served.other_key)).status_code,
            client.post(f"{base}/conversations/log", headers=bearer(served.read_key),
                        json={"messages": [{"role": "user", "content": "hi"}]}).status_code,
            client.post(f"{base}/conversations/log", headers={**bearer(served.key), "Idempotency-Key": "k1"},
                        json={"messages": [{"role": "user", "content": "hi"}]}).status_code,
            client.get(f"{served.base_url}/api/applications/{served.app_id}/builder-keys",
                       headers=bearer(WRONG_ADMIN_TOKEN)).status_code,
            client.get(f"{served.base_url}/api/applications/{served.app_id}/builder-keys",
                       headers=bearer(ADMIN_TOKEN)).status_code,
        ]
        created = client.post(f"{served.base_url}/api/applications/{served.app_id}/builder-keys",
                              headers=bearer(ADMIN_TOKEN), json={"name": "made over HTTP"})
        statuses.append(created.status_code)
        new_key = created.json()["data"]["rawKey"]
        secrets.append(new_key)
        statuses.append(client.get(f"{base}/tags", headers=bearer(new_key)).status_code)
    assert statuses == [200, 200, 401, 401, 401, 401, 403, 403, 201, 401, 200, 201, 200], statuses
    return secrets


def test_no_secret_in_the_server_logs(served: Served) -> None:
    secrets = _run_everything(served)
    served.process.terminate()
    served.process.wait(timeout=10)
    log = served.log_path.read_text(errors="replace")
    # The log is not empty: the access log names the requests (so the check below means something).
    assert f"GET /api/v1/apps/{served.app_id}/sessions HTTP/1.1" in log, log
    assert '" 401' in log and '" 403' in log and '" 201' in log, log
    for secret in secrets:
        assert secret not in log, f"a secret reached the server log: {secret[:10]}…"
        # Not even the part after the display prefix (the first 10 characters may be shown).
        assert secret[10:] not in log
    assert "Bearer" not in log and "bearer" not in log.lower().replace("bearerauth", ""), log


async def test_no_secret_in_python_logging(
    server: Any, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    app = await make_app(server, RECORDS, scopes={"sessions": "write"})
    other = await make_app(server, name="Other")
    unknown_key = generate_key()
    base = app.base
    statuses = [
        (await api.get(f"{base}/sessions", headers=app.headers)).status_code,
        (await api.get(f"{base}/sessions", headers=bearer(unknown_key))).status_code,
        (await api.get(f"{base}/sessions", headers=bearer(MALFORMED_TOKEN))).status_code,
        (await api.get(f"{base}/sessions", headers=other.headers)).status_code,
        (await api.post(f"{base}/feedback", headers=app.headers, json={"message_id": "m1", "rating": 1})).status_code,
    ]

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in a query")

    from chipp_builder.server.resources.tags import queries as tag_queries

    monkeypatch.setattr(tag_queries, "list_tags", broken)
    statuses.append((await api.get(f"{base}/tags", headers=app.headers)).status_code)
    assert statuses == [200, 401, 401, 403, 403, 500], statuses

    # A database that cannot be reached: a 503, and its URL's password is not logged either.
    db_password = "db-password-" + uuid.uuid4().hex
    unreachable = create_app(Settings(database_url=f"postgresql://chipp:{db_password}@127.0.0.1:9/none",
                                      db_timeout_seconds=2.0))
    transport = httpx.ASGITransport(app=unreachable, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get(f"{base}/sessions", headers=app.headers)
    await unreachable.state.engine.dispose()
    assert response.status_code == 503, response.text

    assert "unhandled error: RuntimeError" in caplog.text  # the 500 was logged, with its traceback
    assert "database unavailable" in caplog.text
    for secret in (app.key, other.key, unknown_key, MALFORMED_TOKEN, db_password):
        assert secret not in caplog.text, f"a secret reached the log: {secret[:10]}…"
    for record in caplog.records:
        assert "Bearer" not in record.getMessage()
