"""Shared fixtures: a migrated database on every backend, the ASGI app over it, and an HTTP client.

SQLite always runs. PostgreSQL and Redis cases use CHIPP_TEST_POSTGRES_URL and CHIPP_TEST_REDIS_URL when set;
unset, whatever listens on 127.0.0.1:5432 (as postgres, database test) and 127.0.0.1:6379; with nothing there,
they skip with the reason (in CI, where CI=true, they fail instead). Set a variable to `off` to skip its cases
even when the service is up (`make test-sqlite` sets both).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.db.engine import execute_outside_transaction, make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.db.tables import metadata

IN_CI = os.environ.get("CI") == "true"


OFF = "off"


def _service_url(variable: str, local_url: str, port: int) -> str | None:
    """The URL in `variable` (None when it says off); else the local default when something listens on its
    port; else None."""
    if os.environ.get(variable):
        return None if os.environ[variable] == OFF else os.environ[variable]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return local_url
    except OSError:
        return None


# `make test` on a machine with the services running tests them too; CI sets both variables explicitly.
POSTGRES_URL = _service_url("CHIPP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test", 5432)
REDIS_URL = _service_url("CHIPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", 6379)


def _require_service(name: str, url: str | None) -> str:
    if url:
        return url
    variable = f"CHIPP_TEST_{name.upper()}_URL"
    if os.environ.get(variable) == OFF:
        pytest.skip(f"{name} turned off ({variable}=off)")
    if IN_CI:
        pytest.fail(f"{name} is required in CI: set CHIPP_TEST_{name.upper()}_URL (.ci/run does)")
    pytest.skip(f"{name} not configured: set CHIPP_TEST_{name.upper()}_URL to run these cases")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path



def _admin(url: str, statement: str) -> None:
    """Run one statement outside any transaction, from sync code even while an event loop runs."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, execute_outside_transaction(url, statement)).result()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated once, dropped at the end."""
    base = _require_service("postgres", POSTGRES_URL)
    name = f"chipp_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        _admin(base, f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server is the same verdict
        if IN_CI:
            pytest.fail(f"PostgreSQL at {base} is unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL at {base} is unreachable: {exc}")
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _empty_all_tables(url: str) -> None:
    # DELETE children before parents: on tables this small it is several times faster than TRUNCATE.
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(table.delete())
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend a test runs on."""
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of the test's backend."""
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    await _empty_all_tables(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for a test app: its own database, a limit high enough not to interfere."""
    return Settings(database_url=database_url, rate_limit=100_000)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Any]:
    """The ASGI app over the test database."""
    app = create_app(settings)
    yield app
    await app.state.limiter.counter.close()
    await app.state.engine.dispose()


@pytest.fixture
async def api(server: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that talks to the app in-process."""
    transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
