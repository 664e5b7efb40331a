"""Cursor encoding and decoding (SPEC section 1: opaque base64url JSON whose first key is the row's id)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from chipp_builder.errors import InvalidRequest
from chipp_builder.server.db.fastread import ReadQuery
from chipp_builder.server.db.tables import message
from chipp_builder.server.pagination import cursor_page, decode_cursor, encode_cursor, offset_pagination

AT = datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)


def raw(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def payload_of(cursor: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def test_a_cursor_round_trips():
    assert decode_cursor(encode_cursor("m-42", AT, "message"), "message") == ("m-42", AT)


def test_a_cursor_keeps_microseconds_and_returns_utc():
    row_id, at = decode_cursor(
        encode_cursor("x", datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC), "session"), "session"
    )
    assert at == datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC) and at.tzinfo is not None


def test_a_cursor_of_an_offset_time_is_the_same_instant():
    plus_two = datetime(2025, 6, 1, 14, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    assert decode_cursor(encode_cursor("x", plus_two, "session"), "session")[1] == AT


def test_a_cursor_is_base64url_json_whose_first_key_is_id():
    cursor = encode_cursor("00000001-0000-4000-8000-000000000001", AT, "session")
    assert cursor.startswith("eyJpZCI6")
    assert list(payload_of(cursor))[0] == "id"
    assert payload_of(cursor)["id"] == "00000001-0000-4000-8000-000000000001"


def test_a_cursor_has_no_padding_and_only_url_safe_characters():
    for n in range(1, 20):
        cursor = encode_cursor("é?>" * n, AT, "message")
        assert "=" not in cursor and "+" not in cursor and "/" not in cursor


def test_a_padded_cursor_is_accepted():
    cursor = encode_cursor("abc", AT, "message")
    assert decode_cursor(cursor + "=" * (-len(cursor) % 4), "message") == ("abc", AT)


def test_a_cursor_of_another_list_is_invalid():
    with pytest.raises(InvalidRequest, match="^Invalid cursor$"):
        decode_cursor(encode_cursor("x", AT, "session"), "message")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "abc",
        "!!!!",
        "é",
        "a\x00",
        raw([]),
        raw("id"),
        raw({}),
        raw({"id": "x"}),
        raw({"id": "x", "at": "2025-06-01T00:00:00"}),
        raw({"id": 1, "at": "2025-06-01T00:00:00", "k": "session"}),
        raw({"id": "x", "at": 1717200000, "k": "session"}),
        raw({"id": "x", "at": "not a time", "k": "session"}),
        raw({"id": "x", "at": "2025-06-01T00:00:00+00:00", "k": "session"}),
        raw({"id": "", "at": "2025-06-01T00:00:00", "k": "session"}),
        raw({"id": "x" * 65, "at": "2025-06-01T00:00:00", "k": "session"}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),
    ],
)
def test_a_cursor_that_does_not_decode_is_invalid(cursor):
    with pytest.raises(InvalidRequest) as caught:
        decode_cursor(cursor, "session")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        400,
        "invalid_request",
        "Invalid cursor",
    )


_PAGE = ReadQuery(select(message.c.id, message.c.created_at), cursor=("id", "created_at"))


def _driver_rows(dialect: str, times: list[datetime]) -> list[tuple[str, object]]:
    """Rows as each driver gives them: SQLite's stored UTC text, PostgreSQL's aware datetimes."""
    if dialect == "sqlite":
        return [(f"m{n}", at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")) for n, at in enumerate(times)]
    return [(f"m{n}", at) for n, at in enumerate(times)]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_page_with_more_rows_than_the_limit_has_a_cursor_to_its_last_row(dialect):
    times = [AT + timedelta(seconds=n) for n in range(4)]
    rows = _PAGE.for_dialect(dialect).convert(_driver_rows(dialect, times))
    data, pagination = cursor_page(rows, 3, "message")
    assert [r["id"] for r in data] == ["m0", "m1", "m2"]
    assert pagination["has_more"] is True and pagination["limit"] == 3
    assert decode_cursor(pagination["next_cursor"], "message") == ("m2", AT + timedelta(seconds=2))
    # The same token as one made from the row's datetime.
    assert pagination["next_cursor"] == encode_cursor("m2", AT + timedelta(seconds=2), "message")


@pytest.mark.parametrize("stored", ["2025-06-01 12:00:00", "2025-06-01 12:00:00.000000"])
def test_a_sqlite_time_without_a_fraction_makes_the_same_cursor(stored):
    rows = _PAGE.for_dialect("sqlite").convert([("a", stored), ("b", stored)])
    cursor = cursor_page(rows, 1, "message")[1]["next_cursor"]
    assert cursor == encode_cursor("a", datetime(2025, 6, 1, 12, tzinfo=UTC), "message")


def test_a_page_without_more_rows_has_no_cursor():
    rows = _PAGE.for_dialect("sqlite").convert(_driver_rows("sqlite", [AT]))
    assert cursor_page(rows, 3, "message") == (
        [{"id": "m0", "created_at": "2025-06-01T12:00:00.250000Z"}],
        {"has_more": False, "next_cursor": None, "limit": 3},
    )


@pytest.mark.parametrize(
    ("total", "limit", "offset", "returned", "has_more"),
    [
        (5, 2, 0, 2, True),
        (5, 2, 4, 1, False),
        (5, 2, 3, 2, False),
        (0, 25, 0, 0, False),
        (5, 2, 10, 0, False),
    ],
)
def test_offset_pagination_has_more_is_offset_plus_returned_below_total(
    total, limit, offset, returned, has_more
):
    assert offset_pagination(total, limit, offset, returned) == {
        "has_more": has_more,
        "total": total,
        "limit": limit,
        "offset": offset,
    }
