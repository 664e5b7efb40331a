"""The reader (db/fastread.py): the same values as the engine path, a life that follows the engine's,
and database errors answered like the engine path's."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import pytest
from sqlalchemy import Numeric, Text, bindparam, func, literal, select

from chipp_builder.server.db.fastread import Nested, ReadQuery, compile_read
from chipp_builder.server.db.tables import consumer, message, session
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


def test_a_column_type_the_converter_table_does_not_cover_fails_when_the_query_is_built() -> None:
    untyped = func.substr(session.c.title, 1, 3).label("prefix")  # a computed column without type_
    with pytest.raises(TypeError, match="no read conversion for column type NullType"):
        ReadQuery(select(untyped))
    decimal = literal(1.5, Numeric(10, 2)).label("amount")
    with pytest.raises(TypeError, match="no read conversion for column type Numeric"):
        ReadQuery(select(decimal))
    # Given its type, the same column is covered.
    assert ReadQuery(select(func.substr(session.c.title, 1, 3, type_=Text).label("prefix")))


def test_a_shape_must_use_every_column_once() -> None:
    query = select(session.c.id, session.c.title)
    with pytest.raises(ValueError, match="each selected column once"):
        ReadQuery(query, shape={"id": "id"})
    with pytest.raises(ValueError, match="null_when"):
        ReadQuery(query, shape={"id": "id", "x": Nested("nope", title="title")})


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_nested_object_is_built_in_the_row_and_null_with_its_key(dialect: str) -> None:
    query = select(session.c.title, session.c.consumer_id, consumer.c.email.label("consumer_email"))
    shape = {"title": "title", "consumer_id": "consumer_id", "consumer": Nested("consumer_id", email="consumer_email")}
    compiled = ReadQuery(query, shape=shape).for_dialect(dialect)
    cid = "00000001000040008000000000000001" if dialect == "sqlite" else UUID("00000001-0000-4000-8000-000000000001")
    rows = compiled.convert([("a", cid, None), ("b", None, None)])
    assert dumps(rows) == (
        b'[{"title":"a","consumer_id":"00000001-0000-4000-8000-000000000001","consumer":{"email":null}},'
        b'{"title":"b","consumer_id":null,"consumer":null}]'
    )
