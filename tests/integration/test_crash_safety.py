"""Crash safety: a real server process killed with SIGKILL in the middle of a stream of conversations/log
requests loses no acknowledged message and leaves no request half-written, on every backend."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.db.tables import message, session
from chipp_builder.server.resources.apps import queries as apps

MESSAGES_PER_REQUEST = 3
WORKERS = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`python -m uvicorn chipp_builder.server.app:create_app --factory` on this database."""
    env = {**os.environ, "CHIPP_DATABASE_URL": database_url, "CHIPP_RATE_LIMIT": "1000000"}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "chipp_builder.server.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_until_serving(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {log.read_text()}")
            try:
                await client.get("/openapi.json")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"the server did not start: {log.read_text()}")


async def make_key(database_url: str) -> tuple[str, str]:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as db:
            created = await apps.create_app(db, "crash test")
            key = await apps.create_key(db, created["id"], "crash", {"sessions": "write"})
    finally:
        await engine.dispose()
    return str(created["id"]), str(key["rawKey"])


async def test_sigkill_mid_stream_keeps_acknowledged_writes_whole(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    app_id, raw_key = await make_key(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    headers = {"Authorization": f"Bearer {raw_key}"}
    acknowledged: list[str] = []
    attempted: list[str] = []
    stop = asyncio.Event()

    async def stream(worker: int, client: httpx.AsyncClient) -> None:
        session_id: str | None = None
        n = 0
        while not stop.is_set():
            request_id = f"w{worker}-r{n}"
            n += 1
            body: dict[str, Any] = {
                "messages": [
                    {
                        "id": f"{request_id}-m{i}",
                        "role": "user" if i % 2 == 0 else "assistant",
                        "content": f"{i}",
                    }
                    for i in range(MESSAGES_PER_REQUEST)
                ]
            }
            if session_id is not None:
                body["session_id"] = session_id
            attempted.append(request_id)
            try:
                response = await client.post(
                    f"/api/v1/apps/{app_id}/conversations/log", json=body, headers=headers
                )
            except httpx.TransportError:
                return  # the server is gone; this request was never acknowledged
            assert response.status_code in (200, 201), response.text
            acknowledged.append(request_id)
            session_id = response.json()["data"]["session_id"]

    process = start_server(database_url, port, log)
    try:
        await wait_until_serving(base, process, log)
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            streams = [asyncio.create_task(stream(w, client)) for w in range(WORKERS)]
            while len(acknowledged) < 150:
                await asyncio.sleep(0.01)
                assert process.poll() is None, log.read_text()
            process.send_signal(signal.SIGKILL)  # mid-stream: every worker has a request in flight
            process.wait(timeout=10)
            stop.set()
            await asyncio.gather(*streams)
        in_flight = set(attempted) - set(acknowledged)
        assert in_flight, "the kill should have caught requests in flight"

        # Restart on the same database: it must come up and serve.
        process = start_server(database_url, port, log)
        await wait_until_serving(base, process, log)
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            again = await client.post(
                f"/api/v1/apps/{app_id}/conversations/log",
                headers=headers,
                json={"messages": [{"role": "user", "content": "after the crash"}]},
            )
            assert again.status_code == 201, again.text
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)

    engine = make_engine(database_url)
    try:
        async with engine.connect() as db:
            ids = (await db.execute(select(message.c.id).where(message.c.id.like("w%")))).scalars().all()
            counts = (
                await db.execute(
                    select(session.c.id, session.c.message_count, func.count(message.c.id))
                    .join(message, message.c.session_id == session.c.id)
                    .group_by(session.c.id, session.c.message_count)
                )
            ).all()
    finally:
        await engine.dispose()

    per_request = Counter(mid.rsplit("-", 1)[0] for mid in ids)
    for request_id in acknowledged:
        assert per_request[request_id] == MESSAGES_PER_REQUEST, f"acknowledged {request_id} lost messages"
    for request_id in in_flight:
        assert per_request[request_id] in (0, MESSAGES_PER_REQUEST), f"{request_id} was half-written"
    assert set(per_request) <= set(attempted)
    for session_id, message_count, rows in counts:
        assert message_count == rows, f"session {session_id} counts {message_count} but has {rows} messages"
