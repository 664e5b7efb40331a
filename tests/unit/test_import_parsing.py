"""Validation of single import lines: no database, just what parse_line accepts and the reason it gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from chipp_builder.server.ingest.records import LineError, parse_line

SESSION_ID = "aaaaaaaa-0000-4000-8000-000000000001"


def line(**fields: Any) -> str:
    """A JSON line from keyword fields."""
    return json.dumps(fields)


def message(**overrides: Any) -> str:
    """A valid message line, with some fields replaced (None removes the field)."""
    fields: dict[str, Any] = {
        "type": "message",
        "id": "m1",
        "session_id": SESSION_ID,
        "role": "user",
        "content": "hi",
        "created_at": "2025-06-01T00:00:00Z",
    }
    fields.update(overrides)
    return json.dumps({k: v for k, v in fields.items() if v is not None})


def reason(text: str) -> str:
    """The reason parse_line rejects a line with."""
    with pytest.raises(LineError) as caught:
        parse_line(text)
    return str(caught.value)


def test_a_valid_message_becomes_its_row() -> None:
    record = parse_line(message())
    assert (record.kind, record.key) == ("message", "m1")
    assert record.row["session_id"] == UUID(SESSION_ID)
    assert record.row["created_at"] == datetime(2025, 6, 1, tzinfo=UTC)
    assert record.row["model"] is None


def test_bytes_are_accepted_like_text() -> None:
    assert parse_line(message().encode()).key == "m1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json", "not valid JSON: unexpected 'n' at column 1 (a line must be one JSON object, {...})"),
        ("not json\n", "not valid JSON: unexpected 'n' at column 1 (a line must be one JSON object, {...})"),
        (
            '{"type": "message"\n',
            "not valid JSON: the line ends before the JSON value does (a missing closing quote, bracket or brace?)",
        ),
        ("{'type': 'tag'}", "not valid JSON: unexpected \"'\" at column 2 (JSON strings and keys need double quotes)"),
        ('{"a": NaN}', "not valid JSON: unexpected 'N' at column 7"),
        ('{"a": 1,}\r\n', "not valid JSON: a comma before a closing bracket or brace at column 8"),
        ('{"a": 1} {"b": 2}', "not valid JSON: more text after the JSON value at column 10 (one record a line)"),
        (b'{"a": "\xff"}', "not valid JSON: the line is not valid UTF-8 text"),
    ],
)
def test_malformed_json_is_reported_in_plain_words_with_the_column(text: str | bytes, expected: str) -> None:
    with pytest.raises(LineError) as caught:
        parse_line(text)
    message = str(caught.value)
    assert message == expected
    # orjson's own wording and its "line 2 column 1" (the line end counted as a second line) never show.
    assert "line 2" not in message and "expected 'null'" not in message


@pytest.mark.parametrize("text", ["[1, 2]", '"message"', "42", "null"])
def test_a_line_that_is_not_an_object_is_rejected(text: str) -> None:
    assert reason(text) == "a line must be a JSON object"


def test_unknown_type_is_rejected_and_named() -> None:
    assert reason(line(type="conversation", id="x")).startswith(
        "unknown record type 'conversation': use one of"
    )


def test_missing_type_is_rejected() -> None:
    assert reason(line(id="x")) == "type is required"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (message(content=None), "message: content is required"),
        (message(role=None), "message: role is required"),
        (message(created_at=None), "message: created_at is required"),
        (message(id=None), "message: id is required"),
        (line(type="session", id=SESSION_ID), "session: started_at is required"),
        (line(type="tag", id=SESSION_ID, color="#ffffff", created_at="2025-06-01"), "tag: name is required"),
        (line(type="tag", id=SESSION_ID, name="x", created_at="2025-06-01"), "tag: color is required"),
        (line(type="consumer", id=SESSION_ID, created_at="2025-06-01"), "consumer: identifier is required"),
        (
            line(type="feedback", id="f", session_id=SESSION_ID, message_id="m", created_at="2025-06-01"),
            "feedback: rating is required",
        ),
        (
            line(type="knowledge_source", id="k", name="n", status="completed", created_at="2025-06-01"),
            "knowledge_source: source_type is required",
        ),
        (line(type="memory", id="x", created_at="2025-06-01"), "memory: content is required"),
        (line(type="message_tag", message_id="m1"), "message_tag: tag_id is required"),
    ],
)
def test_missing_required_fields_are_named(text: str, expected: str) -> None:
    assert reason(text) == expected


def test_null_is_the_same_as_absent() -> None:
    text = line(
        type="message",
        id="m1",
        session_id=SESSION_ID,
        role="user",
        content=None,
        created_at="2025-06-01T00:00:00Z",
    )
    assert reason(text) == "message: content is required"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (message(role="bot"), "message: role must be one of user, assistant, system, tool"),
        (message(role="USER"), "message: role must be one of user, assistant, system, tool"),
        (
            line(type="session", id=SESSION_ID, started_at="2025-06-01", source="web"),
            "session: source must be one of APP, API, WHATSAPP, SLACK, EMAIL, VOICE, WIDGET, ACP",
        ),
        (
            line(
                type="knowledge_source",
                id="k",
                name="n",
                source_type="pdf",
                status="completed",
                created_at="2025-06-01",
            ),
            "knowledge_source: source_type must be one of file, url, google_drive, notion, text, qa, "
            "sitemap, youtube, confluence",
        ),
        (
            line(type="memory", id="x", content="c", memory_layer="semantic", created_at="2025-06-01"),
            "memory: memory_layer must be one of episodic, fact",
        ),
    ],
)
def test_values_outside_an_enum_are_rejected(text: str, expected: str) -> None:
    assert reason(text) == expected


@pytest.mark.parametrize("rating", [2, -2, 1.0, True, "1"])
def test_rating_must_be_minus_one_zero_or_one(rating: Any) -> None:
    text = line(
        type="feedback", id="f", session_id=SESSION_ID, message_id="m", rating=rating, created_at="2025-06-01"
    )
    assert reason(text) == "feedback: rating must be one of -1, 0, 1"


@pytest.mark.parametrize("rating", [-1, 0, 1])
def test_each_allowed_rating_is_accepted(rating: int) -> None:
    text = line(
        type="feedback", id="f", session_id=SESSION_ID, message_id="m", rating=rating, created_at="2025-06-01"
    )
    assert parse_line(text).row["rating"] == rating


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\u0085"])
def test_control_characters_are_rejected_in_text(char: str) -> None:
    assert reason(message(content=f"a{char}b")) == "message: content must not contain control characters"
    text = line(type="consumer", id=SESSION_ID, identifier=f"x{char}", created_at="2025-06-01")
    assert reason(text) == "consumer: identifier must not contain control characters"


def test_tab_and_newline_are_allowed_in_message_content_only() -> None:
    assert parse_line(message(content="a\tb\nc")).row["content"] == "a\tb\nc"
    text = line(type="tag", id=SESSION_ID, name="a\nb", color="#000000", created_at="2025-06-01")
    assert reason(text) == "tag: name must not contain control characters"


@pytest.mark.parametrize("bad_id", ["", "x" * 65, "a\x00b", "line\nbreak", "del\x7f", 42])
def test_string_ids_must_be_1_to_64_characters_without_control_characters(bad_id: Any) -> None:
    assert reason(message(id=bad_id)) == (
        "message: id must be a string of 1 to 64 characters without control characters"
    )


def test_an_id_that_conversations_log_accepts_imports_too() -> None:
    # Not printable to str.isprintable() (a zero-width space, a format character), but not a control character.
    assert parse_line(message(id="a\u200bb")).key == "a\u200bb"


def test_a_64_character_string_id_is_accepted() -> None:
    assert parse_line(message(id="é" * 64)).key == "é" * 64


@pytest.mark.parametrize(
    "bad_uuid",
    ["not-a-uuid", "aaaaaaaa000040008000000000000001", "{aaaaaaaa-0000-4000-8000-000000000001}", 7],
)
def test_uuid_fields_must_be_uuids(bad_uuid: Any) -> None:
    assert reason(message(session_id=bad_uuid)) == "message: session_id must be a UUID"


@pytest.mark.parametrize("value", ["2025-13-01T00:00:00Z", "yesterday", "2025-06-01T25:00:00Z", 1717200000])
def test_timestamps_must_be_rfc3339(value: Any) -> None:
    assert reason(message(created_at=value)).startswith("message: created_at must be an RFC 3339 timestamp")


def test_timestamps_are_converted_to_utc() -> None:
    record = parse_line(message(created_at="2025-06-01 02:30:00.1234567+0200"))
    assert record.row["created_at"] == datetime(2025, 6, 1, 0, 30, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("color", ["red", "#fff", "#gggggg", "ef4444", "#ef44441"])
def test_tag_colors_must_be_hex_like_rrggbb(color: str) -> None:
    text = line(type="tag", id=SESSION_ID, name="x", color=color, created_at="2025-06-01")
    assert reason(text) == "tag: color must be a hex color like #ef4444"


@pytest.mark.parametrize(
    ("field", "value"),
    [("token_count", -1), ("token_count", 1.5), ("latency_ms", True), ("token_count", 2**31)],
)
def test_counts_must_be_non_negative_integers(field: str, value: Any) -> None:
    assert reason(message(**{field: value})).startswith(f"message: {field} must be an integer between 0 and")


def test_too_long_names_are_rejected() -> None:
    text = line(type="tag", id=SESSION_ID, name="x" * 201, color="#000000", created_at="2025-06-01")
    assert reason(text) == "tag: name must be 1 to 200 characters"


@pytest.mark.parametrize(
    "calls", ["search", [{"status": "ok"}], [{"tool_name": "search"}], [{"tool_name": 1, "status": "ok"}]]
)
def test_tool_calls_must_have_the_api_shape(calls: Any) -> None:
    assert reason(message(tool_calls=calls)) == (
        'message: tool_calls must be an array of {"tool_name", "status"} objects'
    )


def test_confidence_must_be_between_zero_and_one() -> None:
    text = line(type="memory", id="x", content="c", confidence=1.5, created_at="2025-06-01")
    assert reason(text) == "memory: confidence must be a number between 0 and 1"


def test_knowledge_source_type_comes_from_source_type() -> None:
    text = line(
        type="knowledge_source",
        id="k",
        name="n",
        source_type="youtube",
        status="pending",
        created_at="2025-06-01",
    )
    assert parse_line(text).row["type"] == "youtube"


def test_unknown_and_derived_fields_are_ignored() -> None:
    record = parse_line(
        line(
            type="session",
            id=SESSION_ID,
            started_at="2025-06-01",
            message_count=999,
            consumer={"email": "x"},
            color="blue",
            future={"a": 1},
        )
    )
    assert record.row["message_count"] == 0
    assert "future" not in record.row and "consumer" not in record.row


def test_session_title_is_casefolded_for_search() -> None:
    record = parse_line(line(type="session", id=SESSION_ID, started_at="2025-06-01", title="Straße ÜBER"))
    assert record.row["title_folded"] == "strasse über"
