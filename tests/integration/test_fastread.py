"""The reader (db/fastread.py): the same values as the engine path, a life that follows the engine's,
and database errors answered like the engine path's."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import bindparam, select

from chipp_builder.server.db.fastread import ReadQuery, compile_read
from chipp_builder.server.db.tables import message, session
from chipp_builder.server.responses import dumps
from tests.factories import get, make_app, message_record, new_id, session_record

SESSION_COLUMNS = (session.c.id, session.c.title, session.c.is_bookmarked, session.c.started_at, session.c.ended_at)


async def _app_with_one_session(server: Any, started: str = "2025-06-01T10:00:00.120000Z") -> tuple[Any, str]:
    sid = new_id()
    app = await make_app(
        server,
        [
            session_record(sid, started, title="Ünïcode ✓"),
            message_record("m1", sid, "2025-06-01T10:00:01Z", content="x"),
        ],
    )
    return app, sid


async def test_rows_have_the_wire_values_the_engine_path_renders(server) -> None:
    app, _ = await _app_with_one_session(server)
    query = select(*SESSION_COLUMNS).where(session.c.app_id == bindparam("app_id"))
    fast = await server.state.reader.fetch(ReadQuery(query), app_id=app.id)
    async with server.state.engine.connect() as db:
        slow = [dict(row) for row in (await db.execute(query, {"app_id": app.id})).mappings()]
    # Rendered, the two are the same bytes: UUIDs as strings, timestamps with Z and only a non-zero fraction.
    assert dumps(fast) == dumps(slow)
    assert orjson.loads(dumps(fast))[0]["started_at"] == "2025-06-01T10:00:00.120000Z"


async def test_python_values_come_back_as_the_engine_gives_them(server) -> None:
    app, sid = await _app_with_one_session(server, started="2025-06-01T10:00:00Z")
    query = select(*SESSION_COLUMNS).where(session.c.app_id == bindparam("app_id"))
    rows = await server.state.reader.fetch(ReadQuery(query, wire=False), app_id=app.id)
    assert str(rows[0]["id"]) == sid
    assert rows[0]["started_at"] == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert rows[0]["is_bookmarked"] is False


async def test_an_expanding_list_is_spliced_in_last(server) -> None:
    app, sid = await _app_with_one_session(server)
    query = select(message.c.id).where(
        message.c.app_id == bindparam("app_id"), message.c.id.in_(bindparam("ids", expanding=True))
    )
    statement = ReadQuery(query)
    assert await server.state.reader.fetch(statement, app_id=app.id, ids=["m1", "nope"]) == [{"id": "m1"}]
    assert await server.state.reader.fetch(statement, app_id=app.id, ids=["nope"]) == []


def test_an_expanding_list_must_be_the_last_parameter() -> None:
    query = select(message.c.id).where(
        message.c.id.in_(bindparam("ids", expanding=True)), message.c.app_id == bindparam("app_id")
    )
    with pytest.raises(ValueError, match="last"):
        compile_read(query, "sqlite")


async def test_the_reader_works_again_after_the_engine_is_disposed(server, api) -> None:
    app, _ = await _app_with_one_session(server)
    assert (await get(api, app, "/sessions")).status_code == 200
    await server.state.engine.dispose()  # drops the reader's connections with the engine's
    response = await get(api, app, "/sessions")
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 1


# sqlite3's own errors; PostgreSQL's unreachable cases are in test_failures.py.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_locked_sqlite_database_is_a_503(server, api, monkeypatch) -> None:
    app, _ = await _app_with_one_session(server)

    def locked(*_args: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(server.state.reader, "_run", locked)
    response = await get(api, app, "/sessions")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
