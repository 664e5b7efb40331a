"""With CHIPP_DATABASE_READ_URL set, GET requests read from the replica, not from the primary.

The "replica" is a second database holding different data, so the answer shows which one was read.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from chipp_builder.schemas.common import utc_now
from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.db.engine import execute_outside_transaction, make_engine
from chipp_builder.server.db.migrate import upgrade_async
from chipp_builder.server.db.tables import api_key, app, session
from chipp_builder.server.resources.apps import queries as apps


@pytest.fixture
async def replica_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A second, empty, migrated database of the test's backend, standing for a streaming replica."""
    if backend == "sqlite":
        path = tmp_path / "replica.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    primary = make_url(request.getfixturevalue("postgres_database"))
    name = f"{primary.database}_replica_{uuid.uuid4().hex[:6]}"
    await execute_outside_transaction(primary.render_as_string(hide_password=False), f'CREATE DATABASE "{name}"')
    url = primary.set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade_async(url)
        yield url
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        await execute_outside_transaction(primary.render_as_string(hide_password=False), drop)


@pytest.fixture
async def replica_engine(replica_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the "replica", standing for replication: the tests write there what it would copy."""
    engine = make_engine(replica_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def replicated(database_url: str, replica_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """A client for an app whose primary and read databases are the two test databases."""
    settings = Settings(database_url=database_url, database_read_url=replica_url, rate_limit=100_000)
    server = create_app(settings)
    transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, server
    await server.state.limiter.counter.close()
    await server.state.engine.dispose()  # closes both readers


async def _app_with_key(server: Any, scopes: dict[str, str] | None = None) -> tuple[uuid.UUID, dict[str, str]]:
    """Create an app and key on the primary."""
    async with server.state.engine.begin() as db:
        created = await apps.create_app(db, "Replicated app")
        key = await apps.create_key(db, created["id"], "test key", scopes)
    return created["id"], {"Authorization": f"Bearer {key['rawKey']}"}


async def _app_with_key_on_both(server: Any, replica: AsyncEngine) -> tuple[uuid.UUID, dict[str, str]]:
    """Create an app and key on the primary and copy them to the replica, as replication would."""
    app_id, headers = await _app_with_key(server)
    async with server.state.engine.connect() as db:
        app_row = (await db.execute(select(app).where(app.c.id == app_id))).mappings().one()
        key_row = (await db.execute(select(api_key).where(api_key.c.app_id == app_id))).mappings().one()
    async with replica.begin() as db:
        await db.execute(app.insert().values(**app_row))
        await db.execute(api_key.insert().values(**key_row))
    return app_id, headers


async def _add_session(engine: Any, app_id: uuid.UUID, title: str) -> None:
    now = utc_now()
    async with engine.begin() as db:
        await db.execute(
            session.insert().values(
                id=uuid.uuid4(), app_id=app_id, title=title, title_folded=title.casefold(), source="API",
                started_at=now, last_activity_at=now,
            )
        )


async def _titles(client: httpx.AsyncClient, app_id: uuid.UUID, headers: dict[str, str]) -> list[str]:
    response = await client.get(f"/api/v1/apps/{app_id}/sessions", headers=headers)
    assert response.status_code == 200, response.text
    return [s["title"] for s in response.json()["data"]]


async def test_reads_use_the_read_database(
    replicated: tuple[httpx.AsyncClient, Any], replica_engine: AsyncEngine
) -> None:
    client, server = replicated
    assert server.state.reader is not server.state.primary_reader
    app_id, headers = await _app_with_key_on_both(server, replica_engine)
    await _add_session(server.state.engine, app_id, "only on the primary")
    await _add_session(replica_engine, app_id, "only on the replica")

    assert await _titles(client, app_id, headers) == ["only on the replica"]


async def test_a_key_not_yet_on_the_replica_is_unknown_to_reads(
    replicated: tuple[httpx.AsyncClient, Any],
) -> None:
    """GETs authenticate against the replica too: a key that has not replicated yet is unknown there."""
    client, server = replicated
    app_id, headers = await _app_with_key(server)

    response = await client.get(f"/api/v1/apps/{app_id}/sessions", headers=headers)

    assert response.status_code == 401


async def test_a_write_looks_its_key_up_on_the_primary(replicated: tuple[httpx.AsyncClient, Any]) -> None:
    """A write authenticates where it writes: a key not yet on the replica is known to it."""
    client, server = replicated
    app_id, headers = await _app_with_key(server, {"consumers": "write"})
    headers = {**headers, "Content-Type": "application/json"}

    response = await client.post(
        f"/api/v1/apps/{app_id}/consumers/auth", content=b'{"external_id": "user-1"}', headers=headers
    )

    assert response.status_code == 201, response.text


async def test_without_a_read_url_reads_use_the_primary(database_url: str) -> None:
    server = create_app(Settings(database_url=database_url, rate_limit=100_000))
    try:
        assert server.state.reader is server.state.primary_reader
        app_id, headers = await _app_with_key(server)
        await _add_session(server.state.engine, app_id, "on the primary")
        transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert await _titles(client, app_id, headers) == ["on the primary"]
    finally:
        await server.state.limiter.counter.close()
        await server.state.engine.dispose()


