"""The JSON Lines import (SPEC section 10) against a real database: what it writes, derives and refuses."""

from __future__ import annotations

import json
import random
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chipp_builder.errors import NotFound
from chipp_builder.server.db import counters
from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.fastread import make_reader
from chipp_builder.server.db.tables import (
    consumer,
    feedback,
    knowledge_source,
    memory,
    message,
    message_tag,
    session,
    tag,
)
from chipp_builder.server.ingest import importer, staging
from chipp_builder.server.ingest.importer import ImportReport, import_file, import_lines
from chipp_builder.server.resources.apps.queries import create_app
from chipp_builder.server.writes import derived
from tests.integration.test_rollups import _assert_summaries_exact

DOMAIN_TABLES = (consumer, session, tag, knowledge_source, message, message_tag, feedback, memory)

CONSUMER_ID = "11111111-1111-4111-8111-111111111111"
ANON_ID = "22222222-2222-4222-8222-222222222222"
SESSION_A = "aaaaaaaa-0000-4000-8000-000000000001"
SESSION_B = "aaaaaaaa-0000-4000-8000-000000000002"
TAG_BUG = "bbbbbbbb-0000-4000-8000-000000000001"
TAG_VIP = "bbbbbbbb-0000-4000-8000-000000000002"


def when(text_value: str) -> datetime:
    """An aware UTC datetime from an ISO string, to compare with stored values."""
    return datetime.fromisoformat(text_value.replace("Z", "+00:00")).astimezone(UTC)


def full_records() -> list[dict[str, Any]]:
    """One valid record of every type (several of most), with every reference resolvable inside the file."""
    return [
        {
            "type": "consumer",
            "id": CONSUMER_ID,
            "identifier": "jürgen@example.com",
            "email": "jürgen@example.com",
            "name": "Jürgen Groß",
            "credits": 40,
            "email_verified": True,
            "created_at": "2025-05-01T08:00:00Z",
        },
        {
            "type": "consumer",
            "id": ANON_ID,
            "identifier": "anon_7f3a",
            "is_anonymous": True,
            "created_at": "2025-05-02T08:00:00Z",
            "updated_at": "2025-05-03T08:00:00Z",
        },
        {
            "type": "session",
            "id": SESSION_A,
            "consumer_id": CONSUMER_ID,
            "title": "Grüße aus STRASSE",
            "source": "WIDGET",
            "started_at": "2025-06-01T10:00:00Z",
        },
        {
            "type": "session",
            "id": SESSION_B,
            "consumer_id": ANON_ID,
            "title": None,
            "source": "SLACK",
            "started_at": "2025-06-02T10:00:00Z",
            "ended_at": "2025-06-02T11:00:00Z",
        },
        {
            "type": "message",
            "id": "m1",
            "session_id": SESSION_A,
            "role": "user",
            "content": "Hallo,\n\tWelt",
            "created_at": "2025-06-01T10:00:05Z",
        },
        {
            "type": "message",
            "id": "m2",
            "session_id": SESSION_A,
            "role": "assistant",
            "content": "Hi!",
            "model": "gpt-4.1",
            "token_count": 120,
            "latency_ms": 900,
            "tool_calls": [{"tool_name": "search", "status": "success"}],
            "tool_results": [{"tool_name": "search", "result": {"hits": 3}}],
            "created_at": "2025-06-01T10:00:09.250Z",
        },
        {
            "type": "message",
            "id": "m3",
            "session_id": SESSION_A,
            "role": "user",
            "content": "Danke",
            "created_at": "2025-06-01T10:05:00+02:00",
        },
        {
            "type": "message",
            "id": "m4",
            "session_id": SESSION_B,
            "role": "user",
            "content": "ping",
            "created_at": "2025-06-02T10:10:00Z",
        },
        {
            "type": "tag",
            "id": TAG_BUG,
            "name": "bug",
            "color": "#ef4444",
            "created_at": "2025-05-01T00:00:00Z",
        },
        {
            "type": "tag",
            "id": TAG_VIP,
            "name": "vip",
            "color": "#22C55E",
            "created_at": "2025-05-01T00:00:01Z",
        },
        {"type": "message_tag", "message_id": "m1", "tag_id": TAG_BUG},
        {"type": "message_tag", "message_id": "m2", "tag_id": TAG_BUG},
        {"type": "message_tag", "message_id": "m2", "tag_id": TAG_VIP},
        {
            "type": "feedback",
            "id": "f1",
            "session_id": SESSION_A,
            "message_id": "m2",
            "consumer_id": CONSUMER_ID,
            "rating": -1,
            "created_at": "2025-06-01T10:01:00Z",
        },
        {
            "type": "knowledge_source",
            "id": "ks-1",
            "name": "Handbook.pdf",
            "source_type": "file",
            "status": "completed",
            "chunk_count": 12,
            "file_size_bytes": 204800,
            "created_at": "2025-04-01T00:00:00Z",
        },
        {
            "type": "knowledge_source",
            "id": "ks-2",
            "name": "Docs site",
            "source_type": "sitemap",
            "status": "failed",
            "url": "https://example.com/sitemap.xml",
            "error_message": "timeout",
            "refresh_interval_hours": 24,
            "created_at": "2025-04-02T00:00:00Z",
        },
        {
            "type": "memory",
            "id": "mem-1",
            "consumer_id": CONSUMER_ID,
            "content": "Prefers German",
            "memory_type": "preference",
            "memory_layer": "fact",
            "confidence": 0.9,
            "source_message_id": "m1",
            "session_id": SESSION_A,
            "created_at": "2025-06-01T10:02:00Z",
        },
    ]


def shuffled(records: list[dict[str, Any]], seed: int = 7) -> list[str]:
    """The records as JSON Lines in a shuffled order, to show order in the file does not matter."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    random.Random(seed).shuffle(lines)
    return lines


@pytest.fixture(autouse=True, params=["default-chunks", "tiny-chunks"])
def chunk_sizes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: with the real chunk sizes, and with chunks of two or three rows everywhere, so that a
    small file crosses many chunk boundaries (staging batches, lookups, writes, derived counts)."""
    if request.param == "tiny-chunks":
        monkeypatch.setattr(staging, "BATCH", 3)
        monkeypatch.setattr(importer, "_LOOKUP_CHUNK", 2)
        monkeypatch.setattr(importer, "_WRITE_CHUNK", 2)
        monkeypatch.setattr(derived, "_CHUNK", 2)
        monkeypatch.setattr(counters, "_CHUNK", 2)
    return str(request.param)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine over the test's empty, migrated database."""
    eng = make_engine(database_url)
    yield eng
    await eng.dispose()


async def new_app(engine: AsyncEngine, name: str = "Import test") -> uuid.UUID:
    """Create an app and return its id."""
    async with engine.begin() as db:
        return (await create_app(db, name))["id"]


@pytest.fixture
async def app_id(engine: AsyncEngine) -> uuid.UUID:
    """A fresh app to import into."""
    return await new_app(engine)


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    """How many rows each domain table holds."""
    async with engine.connect() as db:
        return {
            t.name: (await db.execute(select(func.count()).select_from(t))).scalar_one()
            for t in DOMAIN_TABLES
        }


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every domain row, in a stable order, for before/after comparisons."""
    result: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as db:
        for t in DOMAIN_TABLES:
            rows = (await db.execute(select(t))).all()
            result[t.name] = sorted((tuple(r) for r in rows), key=repr)
    return result


async def one(engine: AsyncEngine, table: Any, **where: Any) -> Any:
    """The single row of `table` matching the column values."""
    async with engine.connect() as db:
        query = select(table).where(*(table.c[k] == v for k, v in where.items()))
        return (await db.execute(query)).one()


def reasons(report: ImportReport) -> dict[int, str]:
    """The report's errors by line number."""
    return dict(report.errors)


# --- a valid file ------------------------------------------------------------------------------------------


async def test_full_file_in_shuffled_order_writes_every_record(
    engine: AsyncEngine, app_id: uuid.UUID
) -> None:
    report = await import_lines(engine, app_id, shuffled(full_records()))

    assert report.ok, report.errors
    assert report.lines == 17
    assert report.written == {
        "consumer": 2,
        "session": 2,
        "tag": 2,
        "knowledge_source": 2,
        "message": 4,
        "message_tag": 3,
        "feedback": 1,
        "memory": 1,
    }
    assert await row_counts(engine) == {
        "consumer": 2,
        "session": 2,
        "tag": 2,
        "knowledge_source": 2,
        "message": 4,
        "message_tag": 3,
        "feedback": 1,
        "memory": 1,
    }


async def test_import_derives_message_counts_and_last_activity(
    engine: AsyncEngine, app_id: uuid.UUID
) -> None:
    await import_lines(engine, app_id, shuffled(full_records()))

    a = await one(engine, session, id=uuid.UUID(SESSION_A))
    b = await one(engine, session, id=uuid.UUID(SESSION_B))
    assert a.message_count == 3
    # The newest message is m2 at 10:00:09.25Z: m3's "10:05:00+02:00" is 08:05Z, before the session started.
    assert a.last_activity_at == when("2025-06-01T10:00:09.250Z")
    assert b.message_count == 1
    assert b.last_activity_at == when("2025-06-02T11:00:00Z")  # ended_at is later than its only message


async def test_import_derives_tag_usage_counts(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    await import_lines(engine, app_id, shuffled(full_records()))

    assert (await one(engine, tag, id=uuid.UUID(TAG_BUG))).usage_count == 2
    assert (await one(engine, tag, id=uuid.UUID(TAG_VIP))).usage_count == 1


async def test_import_fills_folded_search_columns(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    await import_lines(engine, app_id, shuffled(full_records()))

    assert (await one(engine, session, id=uuid.UUID(SESSION_A))).title_folded == "grüsse aus strasse"
    assert (await one(engine, session, id=uuid.UUID(SESSION_B))).title_folded is None
    assert (await one(engine, consumer, id=uuid.UUID(CONSUMER_ID))).search_folded == (
        "jürgen gross\x1fjürgen@example.com\x1fjürgen@example.com"
    )
    assert (await one(engine, consumer, id=uuid.UUID(ANON_ID))).search_folded == "\x1f\x1fanon_7f3a"


async def test_import_maps_fields_and_keeps_timestamps_in_utc(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    await import_lines(engine, app_id, shuffled(full_records()))

    ks = await one(engine, knowledge_source, app_id=app_id, id="ks-2")
    assert (ks.type, ks.status, ks.refresh_interval_hours, ks.chunk_count) == ("sitemap", "failed", 24, 0)
    m2 = await one(engine, message, app_id=app_id, id="m2")
    assert m2.tool_calls == [{"tool_name": "search", "status": "success"}]
    assert m2.tool_results == [{"tool_name": "search", "result": '{"hits":3}'}]  # stored as the API gives it
    assert m2.created_at == when("2025-06-01T10:00:09.250Z")
    m1 = await one(engine, message, app_id=app_id, id="m1")
    assert m1.content == "Hallo,\n\tWelt"
    assert (await one(engine, message, app_id=app_id, id="m3")).created_at == when("2025-06-01T08:05:00Z")
    assert (await one(engine, tag, id=uuid.UUID(TAG_VIP))).color == "#22C55E"


async def test_absent_tool_calls_are_stored_as_sql_null(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    await import_lines(engine, app_id, shuffled(full_records()))

    async with engine.connect() as db:
        nulls = (
            await db.execute(
                text("SELECT count(*) FROM message WHERE tool_calls IS NULL AND tool_results IS NULL")
            )
        ).scalar_one()
    assert nulls == 3


async def test_absent_optional_fields_get_their_defaults(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    records = [
        {"type": "consumer", "id": CONSUMER_ID, "identifier": "x@example.com", "created_at": "2025-06-01"},
        {"type": "session", "id": SESSION_A, "started_at": "2025-06-01T00:00:00Z"},
        {"type": "memory", "id": "mem", "content": "likes tea", "created_at": "2025-06-01T00:00:00Z"},
    ]
    report = await import_lines(engine, app_id, shuffled(records))
    assert report.ok, report.errors

    c = await one(engine, consumer, id=uuid.UUID(CONSUMER_ID))
    assert (c.email, c.name, c.email_verified, c.credits, c.mode, c.is_anonymous) == (
        None,
        None,
        False,
        0,
        "default",
        False,
    )
    assert c.updated_at == c.created_at == when("2025-06-01T00:00:00Z")
    s = await one(engine, session, id=uuid.UUID(SESSION_A))
    assert (s.source, s.mode, s.is_bookmarked, s.consumer_id, s.message_count) == (
        "API",
        "default",
        False,
        None,
        0,
    )
    assert s.last_activity_at == s.started_at
    m = await one(engine, memory, app_id=app_id, id="mem")
    assert (m.memory_type, m.memory_layer, m.confidence, m.consumer_id) == ("fact", "fact", 0.0, None)


async def test_import_file_streams_a_file_and_reports_bytes(
    engine: AsyncEngine, app_id: uuid.UUID, tmp_path: Path
) -> None:
    path = tmp_path / "data.jsonl"
    # A byte order mark and blank lines, as editors and concatenations leave them, are not records.
    path.write_bytes(b"\xef\xbb\xbf" + "\n\n".join(shuffled(full_records())).encode() + b"\n")
    seen: list[int] = []

    report = await import_file(engine, app_id, path, progress=seen.append)

    assert report.ok, report.errors
    assert report.lines == 33
    assert seen[-1] == path.stat().st_size
    assert (await row_counts(engine))["message"] == 4


async def test_invalid_utf8_is_one_bad_line(engine: AsyncEngine, app_id: uuid.UUID, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"type": "tag", "id": "x", "name": "\xff"}\n')

    report = await import_file(engine, app_id, path)

    assert [line for line, _ in report.errors] == [1]
    assert report.errors[0][1] == "not valid JSON: the line is not valid UTF-8 text"


async def test_unknown_app_is_not_found(engine: AsyncEngine) -> None:
    with pytest.raises(NotFound):
        await import_lines(engine, uuid.uuid4(), shuffled(full_records()))


# --- idempotency -------------------------------------------------------------------------------------------


async def test_importing_the_same_file_twice_changes_nothing(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    lines = shuffled(full_records())
    first = await import_lines(engine, app_id, lines)
    before = await snapshot(engine)

    second = await import_lines(engine, app_id, lines)

    assert first.ok and second.ok
    assert await snapshot(engine) == before


FULL_COUNTS = {
    "consumer": 2, "session": 2, "tag": 2, "knowledge_source": 2, "message": 4, "message_tag": 3, "feedback": 1,
    "memory": 1,
}
NONE = dict.fromkeys(FULL_COUNTS, 0)


async def test_the_report_counts_inserted_updated_and_unchanged_rows(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    records = full_records()
    first = await import_lines(engine, app_id, shuffled(records))
    assert (first.inserted, first.updated, first.unchanged) == (FULL_COUNTS, NONE, NONE)

    again = await import_lines(engine, app_id, shuffled(records, seed=8))
    assert (again.inserted, again.updated, again.unchanged) == (NONE, NONE, FULL_COUNTS)
    assert again.written == NONE

    # One message's content and one consumer's name changed, a timestamp written in another offset (the same
    # instant: unchanged), a tag added to a message, a derived field that is ignored anyway (unchanged).
    edited = []
    for record in records:
        if record.get("id") == "m4":
            record = {**record, "content": "ping again"}
        elif record.get("id") == ANON_ID:
            record = {**record, "name": "Now named"}
        elif record.get("id") == "m1":
            record = {**record, "created_at": "2025-06-01T12:00:05+02:00"}
        elif record.get("id") == SESSION_A:
            record = {**record, "message_count": 99}
        edited.append(record)
    edited.append({"type": "message_tag", "message_id": "m4", "tag_id": TAG_VIP})
    third = await import_lines(engine, app_id, shuffled(edited))

    assert third.ok, third.errors
    assert third.inserted == {**NONE, "message_tag": 1}
    assert third.updated == {**NONE, "message": 1, "consumer": 1}
    assert third.unchanged == {**FULL_COUNTS, "message": 3, "consumer": 1}
    assert (await one(engine, message, app_id=app_id, id="m4")).content == "ping again"
    assert (await one(engine, consumer, id=uuid.UUID(ANON_ID))).name == "Now named"
    assert (await one(engine, tag, id=uuid.UUID(TAG_VIP))).usage_count == 2


async def test_unchanged_rows_keep_every_derived_value(
    engine: AsyncEngine, app_id: uuid.UUID, database_url: str
) -> None:
    await import_lines(engine, app_id, shuffled(full_records()))
    before = await snapshot(engine)

    report = await import_lines(engine, app_id, shuffled(full_records(), seed=9))

    assert sum(report.unchanged.values()) == 17 and not any(report.written.values())
    assert await snapshot(engine) == before
    reader = make_reader(engine, database_url, 5.0)  # closed with the engine
    await _assert_summaries_exact(SimpleNamespace(state=SimpleNamespace(engine=engine, reader=reader)), app_id)


async def test_a_record_with_an_existing_id_replaces_the_row(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    await import_lines(engine, app_id, shuffled(full_records()))
    moved = {
        "type": "message",
        "id": "m3",
        "session_id": SESSION_B,
        "role": "assistant",
        "content": "Moved",
        "created_at": "2025-06-02T10:20:00Z",
    }

    report = await import_lines(engine, app_id, [json.dumps(moved)])

    assert report.ok, report.errors
    m3 = await one(engine, message, app_id=app_id, id="m3")
    assert (m3.session_id, m3.role, m3.content) == (uuid.UUID(SESSION_B), "assistant", "Moved")
    # Both the session it left and the one it joined are recounted.
    assert (await one(engine, session, id=uuid.UUID(SESSION_A))).message_count == 2
    b = await one(engine, session, id=uuid.UUID(SESSION_B))
    assert b.message_count == 2
    assert b.last_activity_at == when("2025-06-02T11:00:00Z")


async def test_references_may_point_at_rows_already_in_the_app(
    engine: AsyncEngine, app_id: uuid.UUID
) -> None:
    await import_lines(engine, app_id, shuffled(full_records()))
    later = [
        {
            "type": "message",
            "id": "m9",
            "session_id": SESSION_B,
            "role": "user",
            "content": "again",
            "created_at": "2025-06-03T09:00:00Z",
        },
        {"type": "message_tag", "message_id": "m4", "tag_id": TAG_VIP},
        {
            "type": "feedback",
            "id": "f9",
            "session_id": SESSION_A,
            "message_id": "m1",
            "rating": 1,
            "created_at": "2025-06-03T09:00:00Z",
        },
    ]

    report = await import_lines(engine, app_id, shuffled(later))

    assert report.ok, report.errors
    b = await one(engine, session, id=uuid.UUID(SESSION_B))
    assert (b.message_count, b.last_activity_at) == (2, when("2025-06-03T09:00:00Z"))
    assert (await one(engine, tag, id=uuid.UUID(TAG_VIP))).usage_count == 2


# --- derived fields in the input ---------------------------------------------------------------------------


async def test_derived_fields_in_the_file_are_ignored(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    records = full_records()
    for record in records:
        if record["type"] == "session":
            record.update(
                message_count=999,
                last_activity_at="2030-01-01T00:00:00Z",
                consumer={"email": "fake@example.com", "name": "Fake"},
            )
        if record["type"] == "tag":
            record["usage_count"] = 50
        if record["type"] == "message":
            record.update(tags=[{"id": TAG_VIP, "name": "vip", "color": "#000000"}], feedback={"rating": 1})
        if record["type"] == "feedback":
            record["message_preview"] = "whatever"
        record["some_future_field"] = {"ignored": True}

    report = await import_lines(engine, app_id, shuffled(records))

    assert report.ok, report.errors
    a = await one(engine, session, id=uuid.UUID(SESSION_A))
    assert (a.message_count, a.last_activity_at) == (3, when("2025-06-01T10:00:09.250Z"))
    assert (await one(engine, tag, id=uuid.UUID(TAG_BUG))).usage_count == 2
    assert (await row_counts(engine))["message_tag"] == 3


# --- bad lines ---------------------------------------------------------------------------------------------


async def test_any_bad_line_writes_nothing_and_every_bad_line_is_reported(
    engine: AsyncEngine, app_id: uuid.UUID
) -> None:
    lines = shuffled(full_records())
    lines.insert(1, '{"type": "session", "id": ')  # line 2
    lines.insert(3, '{"type": "conversation", "id": "x"}')  # line 4
    lines.insert(5, json.dumps({"type": "session", "id": str(uuid.uuid4())}))  # line 6
    lines.insert(
        7,
        json.dumps(
            {
                "type": "feedback",
                "id": "f",
                "session_id": SESSION_A,
                "message_id": "m1",
                "rating": 5,
                "created_at": "2025-06-01T00:00:00Z",
            }
        ),
    )  # line 8
    lines.insert(
        9,
        json.dumps(
            {"type": "tag", "id": "t\x00", "name": "x", "color": "#000000", "created_at": "2025-06-01"}
        ),
    )  # line 10

    report = await import_lines(engine, app_id, lines)

    assert not report.ok
    found = reasons(report)
    assert sorted(found) == [2, 4, 6, 8, 10]
    assert found[2].startswith("not valid JSON: the line ends before the JSON value does")
    assert "unknown record type 'conversation'" in found[4]
    assert found[6] == "session: started_at is required"
    assert found[8] == "feedback: rating must be one of -1, 0, 1"
    assert found[10] == "tag: id must be a UUID"
    assert report.written == dict.fromkeys(report.written, 0)
    assert await row_counts(engine) == dict.fromkeys(await row_counts(engine), 0)


async def test_a_bad_reference_alone_also_writes_nothing(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    records = full_records() + [
        {
            "type": "message",
            "id": "orphan",
            "session_id": str(uuid.uuid4()),
            "role": "user",
            "content": "?",
            "created_at": "2025-06-01T00:00:00Z",
        },
    ]

    report = await import_lines(engine, app_id, [json.dumps(r) for r in records])

    assert [line for line, _ in report.errors] == [18]
    assert sum((await row_counts(engine)).values()) == 0


async def test_skip_invalid_writes_the_good_lines_and_reports_the_rest(
    engine: AsyncEngine, app_id: uuid.UUID
) -> None:
    lines = [json.dumps(r) for r in full_records()]
    lines[2] = lines[2].replace(
        '"started_at": "2025-06-01T10:00:00Z"', '"started_at": "yesterday"'
    )  # SESSION_A

    report = await import_lines(engine, app_id, lines, skip_invalid=True)

    found = reasons(report)
    assert found[3] == "session: started_at must be an RFC 3339 timestamp such as 2025-06-01T00:00:00Z"
    # SESSION_A's messages, and what points at them (tags, feedback, a memory), cannot be written either.
    assert sorted(found) == [3, 5, 6, 7, 11, 12, 13, 14, 17]
    assert found[5] == f"message: session_id {SESSION_A} refers to the invalid line 3"
    assert found[11] == "message_tag: message_id m1 refers to the invalid line 5"
    assert report.written == {
        "consumer": 2,
        "session": 1,
        "tag": 2,
        "knowledge_source": 2,
        "message": 1,
        "message_tag": 0,
        "feedback": 0,
        "memory": 0,
    }
    assert await row_counts(engine) == {
        "consumer": 2,
        "session": 1,
        "tag": 2,
        "knowledge_source": 2,
        "message": 1,
        "message_tag": 0,
        "feedback": 0,
        "memory": 0,
    }
    assert (await one(engine, tag, id=uuid.UUID(TAG_BUG))).usage_count == 0


async def test_a_uuid_of_another_app_is_a_bad_line_and_that_app_is_untouched(engine: AsyncEngine) -> None:
    other = await new_app(engine, "Other")
    mine = await new_app(engine, "Mine")
    await import_lines(engine, other, shuffled(full_records()))
    before = await snapshot(engine)
    taken = [
        {"type": "session", "id": SESSION_A, "title": "hijack", "started_at": "2025-06-01T00:00:00Z"},
        {"type": "consumer", "id": CONSUMER_ID, "identifier": "hijack", "created_at": "2025-06-01"},
        {"type": "tag", "id": TAG_BUG, "name": "hijack", "color": "#000000", "created_at": "2025-06-01"},
        {
            "type": "message",
            "id": "m1",
            "session_id": SESSION_B,
            "role": "user",
            "content": "x",
            "created_at": "2025-06-01T00:00:00Z",
        },
    ]

    report = await import_lines(engine, mine, [json.dumps(r) for r in taken], skip_invalid=True)

    found = reasons(report)
    assert found[1] == f"session: id {SESSION_A} is not available: it belongs to another app"
    assert found[2] == f"consumer: id {CONSUMER_ID} is not available: it belongs to another app"
    assert found[3] == f"tag: id {TAG_BUG} is not available: it belongs to another app"
    # A reference to another app's session is simply not found: nothing about the other app leaks.
    assert found[4] == f"message: session_id {SESSION_B} does not exist in the file or the app"
    assert await snapshot(engine) == before


async def test_references_to_missing_ids_are_bad_lines(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    ghost = "cccccccc-0000-4000-8000-000000000009"
    records = full_records() + [
        {"type": "session", "id": str(uuid.uuid4()), "consumer_id": ghost, "started_at": "2025-06-01"},
        {
            "type": "message",
            "id": "mx",
            "session_id": ghost,
            "role": "user",
            "content": "x",
            "created_at": "2025-06-01",
        },
        {"type": "message_tag", "message_id": "m1", "tag_id": ghost},
        {"type": "message_tag", "message_id": "nope", "tag_id": TAG_BUG},
        {
            "type": "feedback",
            "id": "fx",
            "session_id": SESSION_A,
            "message_id": "nope",
            "rating": 0,
            "created_at": "2025-06-01",
        },
        {"type": "memory", "id": "memx", "consumer_id": ghost, "content": "x", "created_at": "2025-06-01"},
        {
            "type": "memory",
            "id": "memy",
            "source_message_id": "nope",
            "content": "x",
            "created_at": "2025-06-01",
        },
    ]

    report = await import_lines(engine, app_id, [json.dumps(r) for r in records])

    assert report.errors == [
        (18, f"session: consumer_id {ghost} does not exist in the file or the app"),
        (19, f"message: session_id {ghost} does not exist in the file or the app"),
        (20, f"message_tag: tag_id {ghost} does not exist in the file or the app"),
        (21, "message_tag: message_id nope does not exist in the file or the app"),
        (22, "feedback: message_id nope does not exist in the file or the app"),
        (23, f"memory: consumer_id {ghost} does not exist in the file or the app"),
        (24, "memory: source_message_id nope does not exist in the file or the app"),
    ]
    assert sum((await row_counts(engine)).values()) == 0


async def test_feedback_whose_message_is_in_another_session_is_a_bad_line(
    engine: AsyncEngine, app_id: uuid.UUID
) -> None:
    records = full_records() + [
        {
            "type": "feedback",
            "id": "fx",
            "session_id": SESSION_B,
            "message_id": "m2",
            "rating": 1,
            "created_at": "2025-06-01T00:00:00Z",
        },
    ]

    report = await import_lines(engine, app_id, [json.dumps(r) for r in records])

    assert report.errors == [(18, f"feedback: message m2 is not in session {SESSION_B}")]


async def test_a_repeated_id_in_one_file_is_a_bad_line(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    lines = [json.dumps(r) for r in full_records()]
    lines.append(lines[4])  # message m1 again

    report = await import_lines(engine, app_id, lines)

    assert report.errors == [(18, "message: duplicate id m1 (first on line 5)")]


async def test_a_duplicate_in_a_later_batch_names_the_first_line(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    lines = [json.dumps(r) for r in full_records()]
    lines.append(lines[4])  # message m1 again, batches after its first line when batches are small
    lines.append(json.dumps({**full_records()[0], "name": "Someone else"}))  # consumer, first on line 1
    lines.append(lines[10])  # message_tag (m1, TAG_BUG)
    lines.append('{"type": "message", "id": "m1", "session_id": "nope"}')  # a bad line reusing the id

    report = await import_lines(engine, app_id, lines, skip_invalid=True)

    assert report.errors == [
        (18, "message: duplicate id m1 (first on line 5)"),
        (19, f"consumer: duplicate id {CONSUMER_ID} (first on line 1)"),
        (20, f"message_tag: duplicate id (m1, {TAG_BUG}) (first on line 11)"),
        (21, "message: session_id must be a UUID"),
    ]
    # The first line of each id is the one written.
    assert (await one(engine, consumer, id=uuid.UUID(CONSUMER_ID))).name == "Jürgen Groß"
    assert report.written["message"] == 4 and report.written["message_tag"] == 3


async def test_references_to_records_later_in_the_file_resolve(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    """Each record before the ones it refers to, so every reference points forward; and a bad session at the
    end makes its messages (earlier lines) bad, naming that later line."""
    order = {kind: n for n, kind in enumerate(reversed(importer.WRITE_ORDER))}
    records = sorted(full_records(), key=lambda r: order[r["type"]])
    lines = [json.dumps(r) for r in records]
    bad_session = str(uuid.uuid4())
    lines.insert(0, json.dumps({"type": "message", "id": "early", "session_id": bad_session, "role": "user",
                                "content": "x", "created_at": "2025-06-01T00:00:00Z"}))
    lines.append(json.dumps({"type": "session", "id": bad_session, "started_at": "never"}))

    report = await import_lines(engine, app_id, lines, skip_invalid=True)

    assert report.errors == [
        (1, f"message: session_id {bad_session} refers to the invalid line 19"),
        (19, "session: started_at must be an RFC 3339 timestamp such as 2025-06-01T00:00:00Z"),
    ]
    assert sum(report.written.values()) == 17
    assert (await one(engine, session, id=uuid.UUID(SESSION_A))).message_count == 3
    assert (await one(engine, tag, id=uuid.UUID(TAG_BUG))).usage_count == 2


async def test_a_bigger_file_keeps_every_derived_value_exact(
    engine: AsyncEngine, app_id: uuid.UUID, database_url: str
) -> None:
    """Many sessions, messages moved between sessions and consumers by a second import: counters, rollups
    and session counts equal what the raw rows say, whatever the chunk sizes."""
    rng = random.Random(11)
    consumers = [str(uuid.uuid4()) for _ in range(6)]
    sessions = [str(uuid.uuid4()) for _ in range(25)]
    base = datetime(2025, 6, 1, tzinfo=UTC)

    def records(shift: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"type": "consumer", "id": c, "identifier": f"c{n}", "created_at": "2025-05-01T00:00:00Z"}
            for n, c in enumerate(consumers)
        ]
        for n, sid in enumerate(sessions):
            started = base + timedelta(days=(n + shift) % 9, hours=rng.randrange(24))
            owner = consumers[(n + shift) % len(consumers)] if n % 4 else None
            out.append({"type": "session", "id": sid, "consumer_id": owner, "started_at": started.isoformat()})
        for m in range(120):
            sid = sessions[(m * 7 + shift) % len(sessions)]
            at = base + timedelta(days=(m + shift) % 9, minutes=m)
            out.append({"type": "message", "id": f"m{m}", "session_id": sid, "role": "user", "content": "x",
                        "model": rng.choice(["a", None]), "token_count": m, "created_at": at.isoformat()})
            if m % 5 == 0:
                out.append({"type": "feedback", "id": f"f{m}", "session_id": sid, "message_id": f"m{m}",
                            "rating": 1, "created_at": at.isoformat()})
        return out

    first = await import_lines(engine, app_id, shuffled(records(0)))
    second = await import_lines(engine, app_id, shuffled(records(3), seed=3))

    assert first.ok and second.ok, (first.errors, second.errors)
    reader = make_reader(engine, database_url, 5.0)  # closed with the engine
    await _assert_summaries_exact(SimpleNamespace(state=SimpleNamespace(engine=engine, reader=reader)), app_id)
    async with engine.connect() as db:
        counted = select(func.count()).where(message.c.session_id == session.c.id).scalar_subquery()
        wrong = (await db.execute(select(func.count()).where(session.c.message_count != counted))).scalar_one()
    assert wrong == 0


async def test_the_staging_folder_is_removed_whatever_happens(
    engine: AsyncEngine, app_id: uuid.UUID, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    used: list[Path] = []
    original = staging.Staging.__init__

    def spy(self: staging.Staging, path: Path) -> None:
        used.append(path)
        original(self, path)

    monkeypatch.setattr(staging.Staging, "__init__", spy)

    assert (await import_lines(engine, app_id, shuffled(full_records()))).ok
    assert not (await import_lines(engine, app_id, ["{"])).ok
    with pytest.raises(NotFound):
        await import_lines(engine, uuid.uuid4(), shuffled(full_records()))

    assert len(used) == 3 and all(path.parent.parent == scratch for path in used)
    assert list(scratch.iterdir()) == []
