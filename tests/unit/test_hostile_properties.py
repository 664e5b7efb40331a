"""Hostile input, property-based (issue 6): whatever text or bytes arrive, each parser fails only in its
documented way (never a bare exception that would become a 500), and search escaping makes LIKE
match exactly the strings that contain the text."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chipp_builder.errors import InvalidRequest
from chipp_builder.server.ingest.records import LineError, parse_line
from chipp_builder.server.pagination import decode_cursor, encode_cursor
from chipp_builder.server.params import escape_like, parse_timestamp

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

# Text that looks like the thing parsed, so the properties reach past the first check.
timestamp_like = st.from_regex(
    r"\A[0-9]{1,5}-[0-9]{1,3}-[0-9]{1,3}([Tt ][0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3}(\.[0-9]{0,12})?)?"
    r"([Zz]|[+\- ][0-9]{2}:?[0-9]{2})?)?\s*\Z"
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@SETTINGS
@given(st.text() | timestamp_like)
@example("9999-12-31T23:00:00-02:00")  # past the last UTC instant
@example("0001-01-01T00:30:00+01:00")  # before the first one
@example("2025-02-30")
@example("2025-06-01T24:00:00Z")
@example("2025-06-01T00:00:00.1234567891Z")
@example("２０２５-06-01")  # non-ASCII digits
def test_parse_timestamp_raises_only_value_error(text: str) -> None:
    try:
        value = parse_timestamp(text)
    except ValueError:
        return
    assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


cursor_payloads = st.fixed_dictionaries(
    {}, optional={"id": json_values, "at": json_values | st.text(max_size=30), "k": json_values}
).map(lambda d: _b64(json.dumps(d).encode()))


@SETTINGS
@given(st.text() | st.binary().map(_b64) | st.binary().map(lambda b: b.decode("latin-1")) | cursor_payloads,
       st.sampled_from(["session", "message"]))
@example("eyJpZCI6", "session")
@example("W10", "session")  # []
@example(_b64(b"[" * 100_000), "session")  # nested past the JSON parser's depth
@example(_b64(b'{"id":"x","at":"2025-06-01T00:00:00+00:00","k":"session"}'), "session")  # an offset
@example(_b64(b'{"id":"","at":"2025-06-01T00:00:00","k":"session"}'), "session")
@example(_b64(b'{"id":"x","at":"2025-06-01T00:00:00","k":"session"}') + "====", "session")
@example("\udcff", "session")  # a lone surrogate
def test_decode_cursor_raises_only_invalid_request(cursor: str, kind: str) -> None:
    try:
        row_id, at = decode_cursor(cursor, kind)
    except InvalidRequest as error:
        assert error.status == 400 and str(error.message) == "Invalid cursor"
        return
    assert isinstance(row_id, str) and 1 <= len(row_id) <= 64 and at.tzinfo is not None


@SETTINGS
@given(st.text(min_size=1, max_size=64), st.datetimes(timezones=st.just(UTC)),
       st.sampled_from(["session", "message"]))
def test_cursor_round_trips(row_id: str, at: object, kind: str) -> None:
    assert decode_cursor(encode_cursor(row_id, at, kind), kind) == (row_id, at)  # type: ignore[arg-type]


record_types = st.sampled_from(
    ["consumer", "session", "message", "feedback", "tag", "message_tag", "knowledge_source", "memory", "other"]
)
record_like = st.builds(
    lambda kind, fields: json.dumps({"type": kind, **fields}, default=str),
    record_types,
    st.dictionaries(
        st.sampled_from(["id", "session_id", "message_id", "tag_id", "consumer_id", "role", "content", "rating",
                         "created_at", "started_at", "updated_at", "name", "color", "identifier", "source",
                         "status", "source_type", "memory_type", "memory_layer", "confidence", "token_count",
                         "tool_calls", "tool_results", "email", "title", "url"]),
        json_values,
        max_size=10,
    ),
)


@SETTINGS
@given(st.text() | st.binary() | record_like)
@example("[" * 100_000)
@example('{"type": "message"' + ', "x": [' * 10_000 + "]" * 10_000 + "}")
@example(b"\xff\xfe{}")
@example('{"type": "session", "id": "\\ud800"}')
@example('{"type": 1e400}')
def test_parse_line_raises_only_line_error(line: str | bytes) -> None:
    try:
        parse_line(line)
    except LineError:
        pass


haystack_alphabet = st.sampled_from(list("ab%_\\!^[]*?.'\"") + ["ß", "Ü", "\n"])
texts = st.text(haystack_alphabet, max_size=6)


@SETTINGS
@given(texts, st.lists(texts, min_size=1, max_size=8))
@example("%", ["100%", "100", "%%"])
@example("_", ["a_b", "ab"])
@example("\\", ["a\\b", "ab", "\\%"])
@example("\\%", ["\\%", "%", "\\x"])
def test_escape_like_matches_exactly_the_strings_that_contain_the_text(needle: str, haystacks: list[str]) -> None:
    db = sqlite3.connect(":memory:")
    try:
        # SQLite's LIKE folds ASCII case; the server compares casefolded copies, so compare casefolded here.
        db.execute("PRAGMA case_sensitive_like = ON")
        db.execute("CREATE TABLE t (i INTEGER, v TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(haystacks)))
        pattern = "%" + escape_like(needle) + "%"
        rows = db.execute("SELECT i FROM t WHERE v LIKE ? ESCAPE '\\' ORDER BY i", (pattern,)).fetchall()
    finally:
        db.close()
    assert [i for (i,) in rows] == [i for i, hay in enumerate(haystacks) if needle in hay]
