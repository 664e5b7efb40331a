"""Bad parameters on every endpoint (SPEC section 1): always the 400 envelope naming the parameter, never a
422 or a 500; empty values are absent, unknown parameters ignored, repeated known parameters refused."""

from __future__ import annotations

import base64
import json

import pytest

from tests.factories import (
    assert_error,
    get,
    ids,
    make_app,
    session_record,
    uid,
)

SESSION = uid(1, 1)
UUID = uid(2, 1)

SESSIONS = "/sessions"
MESSAGES = f"/sessions/{SESSION}/messages"
CONSUMERS = "/consumers"
FEEDBACK = "/feedback"
KNOWLEDGE_SOURCES = "/knowledge-sources"
MEMORIES = "/memories"
USAGE = "/analytics/usage"
TOKEN_USAGE = "/analytics/token-usage"

# Every query parameter of every endpoint.
PARAMS: dict[str, list[str]] = {
    SESSIONS: ["limit", "cursor", "source", "consumer_id", "started_after", "started_before", "search"],
    MESSAGES: ["limit", "cursor", "role", "created_after", "created_before", "include"],
    CONSUMERS: ["limit", "offset", "search", "has_email", "created_after", "created_before"],
    FEEDBACK: ["limit", "offset", "rating", "session_id", "created_after", "created_before"],
    KNOWLEDGE_SOURCES: ["limit", "offset", "status", "type"],
    MEMORIES: ["limit", "offset", "consumer_id", "memory_type", "memory_layer"],
    USAGE: ["started_after", "started_before", "group_by"],
    TOKEN_USAGE: ["started_after", "started_before", "group_by"],
}

# A valid value of each parameter (cursors are fetched from the server).
VALID: dict[str, str] = {
    "limit": "10",
    "offset": "0",
    "source": "APP",
    "consumer_id": UUID,
    "session_id": SESSION,
    "started_after": "2025-06-01T00:00:00Z",
    "started_before": "2025-06-02T00:00:00Z",
    "created_after": "2025-06-01T00:00:00Z",
    "created_before": "2025-06-02T00:00:00Z",
    "search": "hello",
    "role": "user",
    "include": "tool_details",
    "has_email": "true",
    "rating": "1",
    "status": "completed",
    "type": "url",
    "memory_type": "fact",
    "memory_layer": "episodic",
    "group_by": "week",
}


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


TIMESTAMP_BAD = [
    "yesterday",
    "2025-13-01",
    "2025-06-31",
    "2025-06-01T25:00:00Z",
    "2025-06-01T00:60:00Z",
    "2025-06-01T00:00:00+25:00",
    "2025-06-01T00:00:00.1234567890Z",
    "2025-06-01T00:00:00ZZ",
    "1717200000",
    "06/01/2025",
    "2025-06-01\x00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "' OR '1'='1",
]
UUID_BAD = ["not-a-uuid", "1234", UUID[:-1], UUID + "0", UUID + "\x00", "' OR 1=1 --", "ü" * 36]
BAD: dict[str, list[str]] = {
    "limit": ["0", "101", "-1", "abc", "1.5", "1e2", "10\x00", "١٠", "99999999999999999999999"],
    "offset": ["-1", "1000001", "abc", "1.5", "0\x00", "99999999999999999999999"],
    "cursor": [
        "abc",
        "!!!!",
        "a\x00",
        "x" * 513,
        _b64({"id": 1}),
        _b64([]),
        _b64({"id": "x", "at": "not a time", "k": "session"}),
        _b64({"id": "x" * 65, "at": "2025-06-01T00:00:00", "k": "session"}),
        _b64({"id": "x", "at": "2025-06-01T00:00:00", "k": "consumer"}),
        _b64({"id": "not-a-uuid", "at": "2025-06-01T00:00:00", "k": "session"}),
    ],
    "source": ["app", "Slack", "SMS", "APP\x00", " APP", "APP,API", "' OR '1'='1", "ÄPP"],
    "role": ["User", "bot", "user\x00", "user,assistant", "ünicode"],
    "include": ["other", "tool_details,other", "TOOL_DETAILS", "tool_details,", "tool_details\x00"],
    "has_email": ["yes", "True", "1", "true\x00", "none"],
    "rating": ["2", "-2", "one", "1.0", "+1", "01", "1\x00"],
    "status": ["done", "Completed", "completed\x00", "ready"],
    "type": ["pdf", "URL", "url\x00", "web"],
    "memory_type": ["opinion", "Fact", "fact\x00", "facts"],
    "memory_layer": ["semantic", "Fact", "fact\x00"],
    "group_by": ["year", "Day", "hour", "day\x00"],
    "search": [
        "x" * 201,
        "ü" * 201,
        "😀" * 201,
        "a\x00b",
        "bell\x07",
        "tab\there",
        "new\nline",
        "unit\x1fsep",
    ],
    "consumer_id": UUID_BAD,
    "session_id": UUID_BAD,
    "started_after": TIMESTAMP_BAD,
    "started_before": TIMESTAMP_BAD,
    "created_after": TIMESTAMP_BAD,
    "created_before": TIMESTAMP_BAD,
}


def expected_message_is_right(name: str, message: str) -> bool:
    if name == "cursor":
        return message == "Invalid cursor"
    if name == "limit":
        return message == "limit must be an integer between 1 and 100"
    if name == "offset":
        return message == "offset must be an integer between 0 and 1000000"
    return message.startswith(f"{name} ")


@pytest.fixture
async def app(server):
    return await make_app(server, [session_record(SESSION, "2025-06-01T00:00:00Z")])


@pytest.mark.parametrize("path", list(PARAMS))
async def test_every_bad_value_of_every_parameter_is_a_400_naming_it(api, app, path):
    wrong = []
    for name in PARAMS[path]:
        for value in BAD[name]:
            response = await get(api, app, path, {name: value})
            try:
                message = assert_error(response, 400, "invalid_request")
            except AssertionError:
                wrong.append((name, value, response.status_code, response.text))
                continue
            if not expected_message_is_right(name, message):
                wrong.append((name, value, response.status_code, message))
    assert wrong == []


@pytest.mark.parametrize("path", list(PARAMS))
async def test_empty_values_are_treated_as_absent(api, app, path):
    plain = await get(api, app, path)
    empty = await api.get(
        app.base + path + "?" + "&".join(f"{n}=" for n in PARAMS[path]), headers=app.headers
    )
    assert plain.status_code == empty.status_code == 200
    assert empty.json() == plain.json()


async def _valid_value(api, app, path: str, name: str) -> str:
    if name != "cursor":
        return VALID[name]
    listing = SESSIONS if path == SESSIONS else MESSAGES
    return (await get(api, app, listing, {"limit": 1})).json()["pagination"]["next_cursor"] or "unused"


@pytest.mark.parametrize("path", list(PARAMS))
async def test_every_repeated_known_parameter_is_a_400_naming_it(api, app, path):
    wrong = []
    for name in PARAMS[path]:
        value = await _valid_value(api, app, path, name)
        response = await get(api, app, path, [(name, value), (name, value)])
        body = response.json()
        message = body.get("error", {}).get("message", "")
        if response.status_code != 400 or not message.startswith(f"{name} must be given at most once"):
            wrong.append((name, response.status_code, body))
    assert wrong == []


@pytest.mark.parametrize("path", list(PARAMS))
async def test_every_parameter_accepts_a_valid_value(api, app, path):
    statuses = {
        name: (await get(api, app, path, {name: VALID[name]})).status_code
        for name in PARAMS[path]
        if name in VALID
    }
    assert statuses == dict.fromkeys(statuses, 200)


@pytest.mark.parametrize("path", [p for p in PARAMS if "limit" in PARAMS[p]])
async def test_limit_bounds_1_and_100_are_accepted(api, app, path):
    limits = [(await get(api, app, path, {"limit": n})).json()["pagination"]["limit"] for n in ("1", "100")]
    assert limits == [1, 100]


@pytest.mark.parametrize("path", [p for p in PARAMS if "offset" in PARAMS[p]])
async def test_offset_bounds_0_and_1000000_are_accepted(api, app, path):
    offsets = [
        (await get(api, app, path, {"offset": n})).json()["pagination"]["offset"] for n in ("0", "1000000")
    ]
    assert offsets == [0, 1_000_000]


@pytest.mark.parametrize("path", list(PARAMS))
async def test_unknown_parameters_are_ignored(api, app, path):
    plain = await get(api, app, path)
    extra = await get(
        api, app, path, {"foo": "bar", "LIMIT": "abc", "Source": "nope", "page": "-1", "\x00": "1"}
    )
    assert extra.status_code == 200
    assert extra.json() == plain.json()


async def test_search_of_200_code_points_is_accepted(api, app):
    for text in ("x" * 200, "ü" * 200, "😀" * 200):
        assert (await get(api, app, SESSIONS, {"search": text})).status_code == 200
        assert (await get(api, app, CONSUMERS, {"search": text})).status_code == 200


async def test_sql_text_in_search_is_only_text(api, server):
    app = await make_app(
        server, [session_record(SESSION, "2025-06-01T00:00:00Z", title="x'; DROP TABLE session; --")]
    )
    assert ids(await get(api, app, SESSIONS, {"search": "'; DROP TABLE session; --"})) == [SESSION]
    assert ids(await get(api, app, SESSIONS, {"search": "' OR '1'='1"})) == []
    assert ids(await get(api, app, SESSIONS)) == [SESSION]


async def test_unicode_search_is_accepted(api, app):
    for text in ("日本語", "Ωμέγα", "‮rtl", "zero\u200bwidth", "🙂"):
        assert (await get(api, app, SESSIONS, {"search": text})).status_code == 200


async def test_invalid_utf8_in_the_query_is_not_a_server_error(api, app):
    for query in ("search=%FF%FE", "source=%C3", "limit=%FF", "consumer_id=%E2%82"):
        response = await api.get(f"{app.base}/sessions?{query}", headers=app.headers)
        assert response.status_code in (200, 400), response.text


@pytest.mark.parametrize("path", ["/sessions/%00", "/sessions/%FF", "/sessions/%2E%2E", "/sessions/' OR 1=1"])
async def test_odd_session_ids_in_the_path_are_404(api, app, path):
    assert_error(await get(api, app, path), 404, "not_found", "Session not found")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/sessions/" + "a" * 65, "Session not found"),
        ("/sessions/" + "a" * 65 + "/messages", "Session not found"),
        ("/consumers/" + "a" * 65, "Consumer not found"),
    ],
)
async def test_a_long_non_uuid_id_in_the_path_is_404(api, app, path, message):
    assert_error(await get(api, app, path), 404, "not_found", message)


async def test_bad_parameters_on_a_missing_session_are_still_400(api, app):
    response = await get(api, app, f"/sessions/{uid(1, 99)}/messages", {"limit": "0"})
    assert_error(response, 400, "invalid_request", "limit must be an integer between 1 and 100")


async def test_the_first_bad_parameter_is_named_when_several_are_bad(api, app):
    message = assert_error(
        await get(api, app, SESSIONS, {"limit": "0", "source": "x"}), 400, "invalid_request"
    )
    assert message.split(" ")[0] in ("limit", "source")
