"""Disk full while writing (issue 6): a clean 507 `insufficient_storage` envelope, nothing half-written,
and service back as soon as the fault clears; an import that runs out of room writes nothing either.

No special mount is needed, and the database's driver raises its own real error:
- SQLite: `PRAGMA max_page_count` pinned to the file's current size on every connection, so the first page
  the database would add fails with SQLITE_FULL ("database or disk is full"), as a full disk does;
- PostgreSQL: a trigger raising SQLSTATE 53100 `disk_full` (what "could not extend file ...: No space left on
  device" carries) on every insert into `message`, after the session and consumer rows went in.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from typer.testing import CliRunner

from chipp_builder.cli.main import app as cli
from chipp_builder.server.db.engine import is_disk_full, is_unavailable
from chipp_builder.server.db.tables import metadata
from chipp_builder.server.ingest.importer import import_lines
from tests.factories import (
    TestApp,
    assert_error,
    consumer_record,
    get,
    make_app,
    message_record,
    session_record,
    uid,
)

OUT_OF_STORAGE = {"error": {"code": "insufficient_storage", "message": "The server is out of storage"}}
BIG = "x" * 60_000  # each message needs pages of its own: none fits in a page's free space
SESSION = uid(1, 1)
CONSUMER = uid(2, 1)
RECORDS = [
    consumer_record(CONSUMER, "ada@example.com", "2025-05-01T00:00:00Z", email="ada@example.com"),
    session_record(SESSION, "2025-06-01T10:00:00Z", title="Existing", consumer_id=CONSUMER),
    message_record("m1", SESSION, "2025-06-01T10:00:01Z"),
]
WRITE = {"sessions": "write", "feedback": "write", "consumers": "write"}
# A new session, a new consumer and five messages: every part must be written or none.
LOG = {
    "consumer": {"email": "new@example.com", "name": "New Person"},
    "title": "Written whole or not at all",
    "source": "API",
    "messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{i} {BIG}",
                  "model": None if i % 2 == 0 else "gpt-4o", "token_count": 10 * i} for i in range(5)],
}


def _cap_sqlite_at_its_size(dbapi_connection: Any, _record: Any) -> None:
    # The maximum cannot go below the file's current page count, so 1 means "no page more than now".
    if "sqlite" in type(dbapi_connection).__module__ + type(dbapi_connection).__name__.lower():
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA max_page_count = 1")
        cursor.close()


DISK_FULL = [
    """CREATE OR REPLACE FUNCTION chipp_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = 'disk_full';
    END $$""",
    """CREATE TRIGGER chipp_test_disk_full BEFORE INSERT ON message
        FOR EACH STATEMENT EXECUTE FUNCTION chipp_test_disk_full()""",
]
CLEAR_TRIGGER = "DROP TRIGGER IF EXISTS chipp_test_disk_full ON message"


class DiskFull:
    """Fill and clear the test database's 'disk', on the backend under test."""

    def __init__(self, server: Any) -> None:
        self.engine = server.state.engine
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.capped = False
        self.default_max: int | None = None
        if self.sqlite:
            # On every checkout, so that pooled connections follow too (the pool is never disposed: the
            # app's other resources live as long as the engine).
            event.listen(self.engine.sync_engine, "checkout", self._on_checkout)

    def _on_checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        if self.default_max is None:
            cursor.execute("PRAGMA max_page_count")
            self.default_max = int(cursor.fetchone()[0])
        cursor.execute(f"PRAGMA max_page_count = {1 if self.capped else self.default_max}")
        cursor.close()

    async def fill(self) -> None:
        if self.sqlite:
            self.capped = True
        else:
            async with self.engine.begin() as db:
                for statement in DISK_FULL:
                    await db.execute(text(statement))

    async def clear(self) -> None:
        if self.sqlite:
            self.capped = False
        else:
            async with self.engine.begin() as db:
                await db.execute(text(CLEAR_TRIGGER))

    def close(self) -> None:
        if self.sqlite and event.contains(self.engine.sync_engine, "checkout", self._on_checkout):
            event.remove(self.engine.sync_engine, "checkout", self._on_checkout)


@pytest.fixture
async def disk(server: Any) -> AsyncIterator[DiskFull]:
    fault = DiskFull(server)
    try:
        yield fault
    finally:
        await fault.clear()
        fault.close()


async def snapshot(server: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every domain and summary table (the database is a test's own, and small)."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with server.state.engine.connect() as db:
        for table in metadata.sorted_tables:
            result = await db.execute(select(table))
            rows[table.name] = sorted((tuple(map(repr, row)) for row in result), key=repr)
    return rows


@asynccontextmanager
async def full(disk: DiskFull) -> AsyncIterator[None]:
    await disk.fill()
    try:
        yield
    finally:
        await disk.clear()


async def post_log(api: httpx.AsyncClient, app: TestApp, body: Any, key: str = "retry-after-507") -> httpx.Response:
    return await api.post(f"{app.base}/conversations/log", json=body,
                          headers={**app.headers, "Idempotency-Key": key})


async def test_a_log_on_a_full_disk_is_a_507_writes_nothing_and_succeeds_once_cleared(
    server: Any, api: httpx.AsyncClient, disk: DiskFull
) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    before = await snapshot(server)
    usage_before = (await get(api, app, "/analytics/usage")).json()

    async with full(disk):
        response = await post_log(api, app, LOG)
        assert_error(response, 507, "insufficient_storage")
        assert response.json() == OUT_OF_STORAGE
        assert response.headers["x-content-type-options"] == "nosniff"
        # Reads need no room: the service answers them throughout.
        listed = await get(api, app, "/sessions")
        assert [s["id"] for s in listed.json()["data"]] == [SESSION]
        # Appending to the existing session fails whole too: its message_count and activity stay.
        appended = await post_log(api, app, {"session_id": SESSION, "messages": LOG["messages"]}, "append")
        assert appended.json() == OUT_OF_STORAGE

    assert await snapshot(server) == before  # no session, consumer, message, rollup, counter or idempotency row
    assert (await get(api, app, "/analytics/usage")).json() == usage_before

    # The fault cleared: the same request, with the same Idempotency-Key, is written whole.
    response = await post_log(api, app, LOG)
    assert response.status_code == 201, response.text
    created = response.json()["data"]
    assert len(created["message_ids"]) == 5
    session = (await get(api, app, f"/sessions/{created['session_id']}")).json()["data"]
    assert (session["title"], session["message_count"]) == (LOG["title"], 5)
    summary = (await get(api, app, "/analytics/usage")).json()["data"]["summary"]
    assert summary == {"total_sessions": 2, "unique_consumers": 2, "total_messages": 6}
    # The 507 stored nothing under the Idempotency-Key: this answer is the first one, and it is replayed.
    replay = await post_log(api, app, LOG)
    assert replay.json() == response.json()


async def test_feedback_on_a_full_disk_is_a_507_or_written_whole(
    server: Any, api: httpx.AsyncClient, disk: DiskFull
) -> None:
    """A rating is one small row: the disk may still hold it (SQLite) or not (the trigger is on messages
    only, PostgreSQL); either way the answer is a clean envelope and the counters follow the rows."""
    app = await make_app(server, RECORDS, scopes=WRITE)
    async with full(disk):
        response = await api.post(f"{app.base}/feedback", json={"message_id": "m1", "rating": 1},
                                  headers=app.headers)
    assert response.status_code in (201, 507), response.text
    listed = (await get(api, app, "/feedback")).json()
    assert listed["pagination"]["total"] == len(listed["data"]) == (1 if response.status_code == 201 else 0)


async def test_an_import_on_a_full_disk_fails_and_writes_nothing(server: Any, disk: DiskFull) -> None:
    app = await make_app(server, RECORDS)
    session = uid(1, 2)
    lines = [json.dumps(r) for r in [
        session_record(session, "2025-06-02T10:00:00Z", title="Imported"),
        *[message_record(f"i{n}", session, f"2025-06-02T10:00:{n:02d}Z", content=BIG) for n in range(10)],
    ]]
    before = await snapshot(server)
    async with full(disk):
        with pytest.raises((OperationalError, DBAPIError)) as raised:
            await import_lines(server.state.engine, app.id, lines)
    assert is_disk_full(raised.value)
    assert await snapshot(server) == before

    report = await import_lines(server.state.engine, app.id, lines)
    assert report.ok and report.written["message"] == 10


def big_session_lines(session: str, prefix: str, day: str, title: str) -> list[str]:
    """Import lines of a session and ten messages too big to share a page: every one needs new pages."""
    return [json.dumps(r) for r in [
        session_record(session, f"{day}T10:00:00Z", title=title),
        *[message_record(f"{prefix}{n}", session, f"{day}T10:00:{n:02d}Z", content=BIG) for n in range(10)],
    ]]


@contextmanager
def every_sqlite_connection_capped() -> Iterator[None]:
    """Cap the connections of engines made in this process (the CLI makes its own)."""
    event.listen(Engine, "connect", _cap_sqlite_at_its_size)
    try:
        yield
    finally:
        event.remove(Engine, "connect", _cap_sqlite_at_its_size)


async def test_the_import_command_on_a_full_disk_exits_non_zero_with_one_clear_line(
    server: Any, disk: DiskFull, database_url: str, tmp_path: Path
) -> None:
    app = await make_app(server, RECORDS)
    file = tmp_path / "data.jsonl"
    file.write_text("\n".join(big_session_lines(uid(1, 3), "c", "2025-06-03", "From the CLI")) + "\n")
    before = await snapshot(server)
    argv = ["import", str(file), "--app", str(app.id), "--database-url", database_url]
    if disk.sqlite:
        with every_sqlite_connection_capped():
            result = await asyncio.to_thread(CliRunner().invoke, cli, argv)
    else:
        async with full(disk):
            result = await asyncio.to_thread(CliRunner().invoke, cli, argv)

    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: the database ") and lines[-1].endswith("); nothing was written"), result.stderr
    assert " is out of storage (" in lines[-1], result.stderr
    assert "database or disk is full" in lines[-1] or "No space left on device" in lines[-1], result.stderr
    assert "Traceback" not in result.output
    assert await snapshot(server) == before

    result = await asyncio.to_thread(CliRunner().invoke, cli, argv)
    assert result.exit_code == 0, result.output
    assert "  message: 10 inserted, 0 updated, 0 unchanged" in result.stdout.splitlines()


def test_disk_full_is_told_apart_from_unavailable() -> None:
    """The driver's own errors: SQLITE_FULL and SQLSTATE 53100 are a 507; the rest of class 53 (too many
    connections, out of memory) stays a 503, and an ordinary SQLite error is neither."""
    full_sqlite = sqlite3.connect(":memory:")
    full_sqlite.execute("CREATE TABLE t (x)")
    full_sqlite.execute("PRAGMA max_page_count = 1")
    with pytest.raises(sqlite3.OperationalError) as raised:
        full_sqlite.execute("INSERT INTO t VALUES (randomblob(100000))")
    assert getattr(raised.value, "sqlite_errorcode", 13) == 13
    wrapped = OperationalError("INSERT", {}, raised.value)
    assert is_disk_full(wrapped) and is_disk_full(raised.value)

    disk_full = asyncpg.exceptions.DiskFullError("could not extend file")
    too_many = asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")
    assert is_disk_full(disk_full) and is_unavailable(disk_full)
    assert not is_disk_full(too_many) and is_unavailable(too_many)
    with pytest.raises(sqlite3.OperationalError) as other:
        full_sqlite.execute("SELECT * FROM missing")
    assert not is_disk_full(other.value)


async def test_an_import_whose_scratch_space_fills_up_says_so_and_writes_nothing(
    server: Any, monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    """The import spools the file to a staging database in TMPDIR (ingest/staging.py): when that disk fills, the
    message names the scratch folder, not the target database, and the target is untouched."""
    from chipp_builder.server.ingest import staging

    app = await make_app(server, RECORDS)
    file = tmp_path / "data.jsonl"
    file.write_text("\n".join(big_session_lines(uid(1, 4), "s", "2025-06-04", "Big file")) + "\n")
    real_init = staging.Staging.__init__

    def cramped(self: Any, path: Path) -> None:
        real_init(self, path)
        # The staging file may not grow past its empty schema: SQLITE_FULL, as from a full disk.
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        self.db.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(staging.Staging, "__init__", cramped)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(staging.tempfile, "tempdir", None)  # read TMPDIR again
    before = await snapshot(server)

    argv = ["import", str(file), "--app", str(app.id), "--database-url", database_url]
    result = await asyncio.to_thread(CliRunner().invoke, cli, argv)
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last == "Error: " + staging.SCRATCH_FULL.format(folder=scratch), result.stderr
    assert "Traceback" not in result.output
    assert await snapshot(server) == before
    assert list(scratch.iterdir()) == []  # the staging folder is gone
