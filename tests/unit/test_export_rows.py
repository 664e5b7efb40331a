"""Export rows without I/O to a server: flattening for CSV and Parquet, import records for `export all`, the
CSV writer's BOM, header and resume, and the Parquet schema."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from chipp_builder.client.models import Message, Session
from chipp_builder.export.rows import COLUMNS, flat_row, import_record, message_records
from chipp_builder.export.writers import CsvSink, JsonlSink, arrow_schema, csv_value, spool_to_parquet

SESSION: dict[str, Any] = {
    "id": "00000001-0000-4000-8000-000000000001", "consumer_id": "00000002-0000-4000-8000-000000000001",
    "consumer": {"email": "ada@example.com", "name": "Ada Lovelace"}, "title": "Billing, \"urgent\"",
    "source": "APP", "mode": "default", "is_bookmarked": True, "is_multiplayer": False, "message_count": 2,
    "started_at": "2025-06-01T10:00:00Z", "ended_at": None, "last_activity_at": "2025-06-01T10:00:02.250000Z",
}
TAGS = [{"id": "00000003-0000-4000-8000-000000000001", "name": "billing", "color": "#ef4444"},
        {"id": "00000003-0000-4000-8000-000000000002", "name": "refund; urgent", "color": "#22c55e"}]
MESSAGE: dict[str, Any] = {
    "id": "m2", "session_id": SESSION["id"], "role": "assistant", "content": "Line one\nLine two, «ü»",
    "model": "gpt-4o", "token_count": 30, "latency_ms": 800, "audio_url": None, "audio_duration_ms": None,
    "tags": TAGS,
    "feedback": {"id": "f1", "rating": -1, "consumer_id": None, "created_at": "2025-06-01T10:01:00Z"},
    "created_at": "2025-06-01T10:00:02Z",
    "tool_calls": [{"tool_name": "lookup_order", "status": "success"}],
    "tool_results": [{"tool_name": "lookup_order", "result": '{"order":42,"items":["a"]}'}],
}


def test_session_row_spreads_the_consumer() -> None:
    row = flat_row("sessions", Session.model_validate(SESSION))
    assert list(row) == [column.name for column in COLUMNS["sessions"]]
    assert row["consumer_email"] == "ada@example.com" and row["consumer_name"] == "Ada Lovelace"
    assert row["is_bookmarked"] is True and row["message_count"] == 2
    assert row["started_at"] == "2025-06-01T10:00:00Z"
    assert row["last_activity_at"] == "2025-06-01T10:00:02.250000Z"
    assert "consumer" not in row


def test_session_without_consumer_has_empty_consumer_columns() -> None:
    row = flat_row("sessions", {**SESSION, "consumer_id": None, "consumer": None})
    assert row["consumer_email"] is None and row["consumer_name"] is None


def test_message_row_joins_tags_and_keeps_tool_calls_as_json() -> None:
    row = flat_row("messages", Message.model_validate(MESSAGE))
    assert row["tags"] == "billing; refund; urgent"
    assert row["tag_ids"] == f"{TAGS[0]['id']}; {TAGS[1]['id']}"
    assert row["feedback_rating"] == -1 and row["feedback_id"] == "f1"
    assert json.loads(row["tool_calls"]) == MESSAGE["tool_calls"]
    assert json.loads(row["tool_results"]) == MESSAGE["tool_results"]
    assert row["session_id"] == SESSION["id"]


def test_an_older_servers_structured_tool_result_is_read_as_its_json_text() -> None:
    older = {**MESSAGE, "tool_results": [{"tool_name": "lookup_order", "result": {"order": 42, "items": ["a"]}}]}
    message = Message.model_validate(older)
    assert message.tool_results is not None and message.tool_results[0].result == '{"order":42,"items":["a"]}'
    assert json.loads(flat_row("messages", message)["tool_results"]) == MESSAGE["tool_results"]


def test_message_without_tags_feedback_or_tools() -> None:
    plain = {**MESSAGE, "tags": [], "feedback": None, "tool_calls": None, "tool_results": None}
    row = flat_row("messages", plain)
    assert row["tags"] is None and row["tag_ids"] is None and row["feedback_rating"] is None
    assert row["tool_calls"] is None and row["tool_results"] is None


def test_every_resource_has_columns_with_known_kinds() -> None:
    for columns in COLUMNS.values():
        names = [column.name for column in columns]
        assert len(names) == len(set(names)) and "id" in names
        assert {column.kind for column in columns} <= {"string", "int", "bool", "float", "timestamp"}


def test_import_records_drop_derived_fields() -> None:
    session = import_record("session", Session.model_validate(SESSION))
    assert session["type"] == "session" and list(session)[0] == "type"
    assert not {"consumer", "message_count", "last_activity_at"} & set(session)
    assert session["consumer_id"] == SESSION["consumer_id"]
    tag = import_record("tag", {"id": "t", "name": "x", "color": "#000000", "usage_count": 3, "created_at": "z"})
    assert "usage_count" not in tag
    feedback = import_record("feedback", {"id": "f", "message_preview": "p", "rating": 1})
    assert "message_preview" not in feedback


def test_knowledge_source_type_travels_as_source_type() -> None:
    record = import_record("knowledge_source", {"id": "k1", "name": "Help", "type": "url", "status": "completed"})
    assert record["type"] == "knowledge_source" and record["source_type"] == "url"


def test_message_records_add_one_message_tag_per_tag() -> None:
    message, *tags = message_records(Message.model_validate(MESSAGE))
    assert message["type"] == "message" and "tags" not in message and "feedback" not in message
    assert message["tool_calls"] == MESSAGE["tool_calls"]
    assert tags == [{"type": "message_tag", "message_id": "m2", "tag_id": tag["id"]} for tag in TAGS]


def test_csv_value() -> None:
    assert csv_value(None) == "" and csv_value(True) == "true" and csv_value(False) == "false"
    assert csv_value(0) == 0 and csv_value("x") == "x"


def test_csv_sink_writes_bom_and_header_once_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    columns = COLUMNS["messages"]
    row = flat_row("messages", MESSAGE)
    sink = CsvSink(path, columns)
    sink.write([row])
    size = sink.flush()
    sink.write([{**row, "id": "dropped"}])
    sink.close()
    assert path.read_bytes().startswith(b"\xef\xbb\xbfid,")

    resumed = CsvSink(path, columns, resume_at=size)  # cuts the row after the checkpoint, no second header
    resumed.write([{**row, "id": "m3"}])
    resumed.close()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ["m2", "m3"]
    assert rows[0]["content"] == MESSAGE["content"]  # newline and non-ASCII intact
    assert rows[0]["audio_url"] == "" and rows[0]["token_count"] == "30"


def test_parquet_schema_and_conversion(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    schema = arrow_schema(COLUMNS["memories"])
    assert schema.field("confidence").type == pa.float64()
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")

    spool = tmp_path / "s.jsonl"
    sink = JsonlSink(spool)
    sink.write([flat_row("sessions", SESSION), flat_row("sessions", {**SESSION, "ended_at": None,
                                                                      "consumer": None})])
    sink.close()
    target = tmp_path / "s.parquet"
    spool_to_parquet(spool, target, COLUMNS["sessions"])
    table = pq.read_table(target)
    assert table.num_rows == 2
    assert table.schema.field("is_bookmarked").type == pa.bool_()
    assert table.schema.field("message_count").type == pa.int64()
    first = table.to_pylist()[0]
    assert first["last_activity_at"].isoformat() == "2025-06-01T10:00:02.250000+00:00"
    assert first["consumer_email"] == "ada@example.com"


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "42"])
def test_a_checkpoint_that_is_not_an_object_is_a_clear_export_error(tmp_path: Path, content: str) -> None:
    from chipp_builder.export import runner

    job = runner.Job("sessions", "csv", {}, "00000000-0000-4000-8000-000000000000", tmp_path / "s.csv")
    runner.checkpoint_path(job.output).write_text(content)
    with pytest.raises(runner.ExportError, match="is not an export checkpoint"):
        runner.load_checkpoint(job)
