"""POST /conversations/log (SPEC section 9): create and append, consumers, times, derived columns,
analytics, and every validation and not-found row, on every backend."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import (
    SESSION_FIELDS,
    TestApp,
    assert_error,
    consumer_record,
    get,
    make_app,
    message_record,
    session_record,
    uid,
)

WRITE = {"sessions": "write"}


async def log(api: Any, app: TestApp, body: Any, **headers: str) -> Any:
    """POST a conversations/log body with the app's key."""
    return await api.post(app.base + "/conversations/log", json=body, headers={**app.headers, **headers})


def turns(*contents: str) -> list[dict[str, Any]]:
    """User and assistant turns, alternating."""
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": c} for i, c in enumerate(contents)]


async def all_messages(api: Any, app: TestApp, session_id: str) -> list[dict[str, Any]]:
    """Every message of a session, in the API's order."""
    response = await get(
        api, app, f"/sessions/{session_id}/messages", {"limit": 100, "include": "tool_details"}
    )
    assert response.status_code == 200, response.text
    assert not response.json()["pagination"]["has_more"]
    return list(response.json()["data"])


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- creating and appending ---


async def test_a_request_without_session_id_creates_a_session_and_answers_201(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    response = await log(api, app, {"title": "Refund help", "messages": turns("Hi", "Hello!")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body) == ["data"] and list(body["data"]) == ["session_id", "consumer_id", "message_ids"]
    data = body["data"]
    assert data["consumer_id"] is None and len(data["message_ids"]) == 2
    assert all(uuid.UUID(mid) for mid in data["message_ids"])

    session = (await get(api, app, f"/sessions/{data['session_id']}")).json()["data"]
    assert list(session) == SESSION_FIELDS
    assert session["title"] == "Refund help" and session["source"] == "API" and session["mode"] == "default"
    assert session["message_count"] == 2 and session["consumer"] is None and session["ended_at"] is None
    messages = await all_messages(api, app, data["session_id"])
    assert [m["id"] for m in messages] == data["message_ids"]
    assert [(m["role"], m["content"]) for m in messages] == [("user", "Hi"), ("assistant", "Hello!")]
    assert session["started_at"] == messages[0]["created_at"]
    assert session["last_activity_at"] == messages[-1]["created_at"]


async def test_an_append_answers_200_and_moves_count_and_last_activity(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    created = (await log(api, app, {"messages": turns("one", "two")})).json()["data"]
    response = await log(
        api, app, {"session_id": created["session_id"], "messages": turns("three", "four", "five")}
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["session_id"] == created["session_id"] and len(data["message_ids"]) == 3

    session = (await get(api, app, f"/sessions/{created['session_id']}")).json()["data"]
    messages = await all_messages(api, app, created["session_id"])
    assert session["message_count"] == 5 == len(messages)
    assert [m["content"] for m in messages] == ["one", "two", "three", "four", "five"]
    assert session["last_activity_at"] == messages[-1]["created_at"]


async def test_an_append_keeps_the_sessions_consumer_title_and_source(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    first = await log(
        api,
        app,
        {
            "title": "Original",
            "source": "WIDGET",
            "consumer": {"email": "ann@example.com"},
            "messages": turns("a"),
        },
    )
    created = first.json()["data"]
    response = await log(
        api,
        app,
        {
            "session_id": created["session_id"],
            "title": "Other",
            "source": "SLACK",
            "consumer": {"email": "bob@example.com"},
            "messages": turns("b"),
        },
    )
    assert response.status_code == 200
    assert response.json()["data"]["consumer_id"] == created["consumer_id"]
    session = (await get(api, app, f"/sessions/{created['session_id']}")).json()["data"]
    assert (session["title"], session["source"]) == ("Original", "WIDGET")
    assert session["consumer"] == {"email": "ann@example.com", "name": None}
    # The appended request's consumer was not created either.
    consumers = (await get(api, app, "/consumers")).json()
    assert consumers["pagination"]["total"] == 1


async def test_title_and_source_are_stored_and_the_title_is_searchable_case_insensitively(
    server: Any, api: Any
) -> None:
    app = await make_app(server, scopes=WRITE)
    created = await log(api, app, {"title": "Straße nach Hause", "source": "VOICE", "messages": turns("x")})
    sid = created.json()["data"]["session_id"]
    found = (await get(api, app, "/sessions", {"search": "STRASSE"})).json()["data"]
    assert [s["id"] for s in found] == [sid]
    assert found[0]["source"] == "VOICE"


async def test_every_message_field_is_stored(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    message = {
        "id": "ext-42",
        "role": "assistant",
        "content": "Your total is 42.\n\tThanks",
        "model": "gpt-4o",
        "token_count": 120,
        "latency_ms": 850,
        "created_at": "2025-06-01T10:00:00.5Z",
        "tool_calls": [{"tool_name": "lookup_invoice", "status": "success"}],
        "tool_results": [{"tool_name": "lookup_invoice", "result": {"total": 42, "items": [1, 2]}}],
    }
    response = await log(api, app, {"messages": [message]})
    assert response.status_code == 201, response.text
    assert response.json()["data"]["message_ids"] == ["ext-42"]
    (stored,) = await all_messages(api, app, response.json()["data"]["session_id"])
    assert stored["id"] == "ext-42" and stored["content"] == message["content"]
    assert (stored["model"], stored["token_count"], stored["latency_ms"]) == ("gpt-4o", 120, 850)
    assert stored["created_at"] == "2025-06-01T10:00:00.500000Z"
    assert stored["tool_calls"] == message["tool_calls"]
    # A structured result is given back as its JSON text, as the seed shows `result` (a string).
    assert stored["tool_results"] == [{"tool_name": "lookup_invoice", "result": '{"total":42,"items":[1,2]}'}]
    assert stored["tags"] == [] and stored["feedback"] is None and stored["audio_url"] is None


async def test_a_new_session_starts_at_its_earliest_message(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    body = {
        "messages": [
            {"role": "user", "content": "late", "created_at": "2025-06-01T10:05:00Z"},
            {"role": "assistant", "content": "early", "created_at": "2025-06-01T10:00:00Z"},
        ]
    }
    sid = (await log(api, app, body)).json()["data"]["session_id"]
    session = (await get(api, app, f"/sessions/{sid}")).json()["data"]
    assert session["started_at"] == "2025-06-01T10:00:00Z"
    assert session["last_activity_at"] == "2025-06-01T10:05:00Z"


async def test_empty_optional_strings_count_as_absent(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    body = {
        "session_id": "",
        "title": "",
        "source": "",
        "consumer": {"email": "", "name": "", "identifier": ""},
        "messages": [{"role": "user", "content": "hi", "id": "", "model": "", "created_at": ""}],
    }
    response = await log(api, app, body)
    assert response.status_code == 201, response.text
    session = (await get(api, app, f"/sessions/{response.json()['data']['session_id']}")).json()["data"]
    assert session["title"] is None and session["source"] == "API"


# --- server-assigned times ---


async def test_server_times_strictly_increase_in_request_order(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    before = datetime.now(UTC)
    response = await log(api, app, {"messages": turns(*[f"m{i}" for i in range(100)])})
    after = datetime.now(UTC)
    messages = await all_messages(api, app, response.json()["data"]["session_id"])
    assert [m["content"] for m in messages] == [f"m{i}" for i in range(100)]
    times = [parse(m["created_at"]) for m in messages]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    assert before - timedelta(seconds=1) <= times[0] <= after + timedelta(seconds=1)


async def test_appended_server_times_come_after_the_sessions_newest_message(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    # The newest message is ahead of the server's clock (a client's clock, within the allowed skew).
    ahead = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    first = await log(
        api, app, {"messages": [{"role": "user", "content": "from the future", "created_at": ahead}]}
    )
    sid = first.json()["data"]["session_id"]
    await log(api, app, {"session_id": sid, "messages": turns("next", "and next")})
    messages = await all_messages(api, app, sid)
    assert [m["content"] for m in messages] == ["from the future", "next", "and next"]
    times = [parse(m["created_at"]) for m in messages]
    assert times[0] < times[1] < times[2]


async def test_server_times_follow_an_explicit_time_earlier_in_the_same_request(
    server: Any, api: Any
) -> None:
    app = await make_app(server, scopes=WRITE)
    ahead = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()
    body = {
        "messages": [
            {"role": "user", "content": "a", "created_at": ahead},
            {"role": "assistant", "content": "b"},
        ]
    }
    messages = await all_messages(api, app, (await log(api, app, body)).json()["data"]["session_id"])
    assert [m["content"] for m in messages] == ["a", "b"]


# --- consumers ---


async def test_a_consumer_is_created_from_email_with_the_email_as_identifier(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    body = {"consumer": {"email": "Ann@example.com", "name": "Ann"}, "messages": turns("hi")}
    data = (await log(api, app, body)).json()["data"]
    consumer = (await get(api, app, f"/consumers/{data['consumer_id']}")).json()["data"]
    assert consumer["email"] == "Ann@example.com" and consumer["identifier"] == "Ann@example.com"
    assert consumer["name"] == "Ann" and consumer["is_anonymous"] is False
    session = (await get(api, app, f"/sessions/{data['session_id']}")).json()["data"]
    assert session["consumer"] == {"email": "Ann@example.com", "name": "Ann"}
    # The search copy is kept: the consumer is found by any of its folded fields.
    assert (await get(api, app, "/consumers", {"search": "ann@EXAMPLE"})).json()["pagination"]["total"] == 1


async def test_a_consumer_without_email_or_identifier_is_anonymous(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    data = (await log(api, app, {"consumer": {"name": "Guest"}, "messages": turns("hi")})).json()["data"]
    consumer = (await get(api, app, f"/consumers/{data['consumer_id']}")).json()["data"]
    assert consumer["is_anonymous"] is True and consumer["identifier"].startswith("anon_")
    assert consumer["email"] is None and consumer["name"] == "Guest"


async def test_consumers_are_matched_by_id_then_email_then_identifier(server: Any, api: Any) -> None:
    alice, bob = uid(2, 1), uid(2, 2)
    app = await make_app(
        server,
        [
            consumer_record(alice, "alice@example.com", "2025-05-01T00:00:00Z", email="alice@example.com"),
            consumer_record(bob, "crm-7", "2025-05-01T00:00:00Z"),
        ],
        scopes=WRITE,
    )

    async def consumer_of(person: dict[str, Any]) -> str:
        response = await log(api, app, {"consumer": person, "messages": turns("hi")})
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["consumer_id"])

    assert await consumer_of({"id": bob, "email": "alice@example.com"}) == bob
    assert await consumer_of({"email": "alice@example.com", "identifier": "crm-7"}) == alice
    assert await consumer_of({"email": "new@example.com", "identifier": "crm-7"}) == bob
    assert await consumer_of({"identifier": "crm-7"}) == bob
    created = await consumer_of({"email": "carol@example.com"})
    assert created not in (alice, bob)
    assert await consumer_of({"email": "carol@example.com"}) == created
    assert (await get(api, app, "/consumers")).json()["pagination"]["total"] == 3


async def test_a_matched_consumer_takes_the_details_given(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    first = (await log(api, app, {"consumer": {"identifier": "crm-9"}, "messages": turns("hi")})).json()[
        "data"
    ]
    second = await log(
        api,
        app,
        {
            "consumer": {"identifier": "crm-9", "name": "Zoë", "email": "zoe@example.com"},
            "messages": turns("hi"),
        },
    )
    assert second.json()["data"]["consumer_id"] == first["consumer_id"]
    consumer = (await get(api, app, f"/consumers/{first['consumer_id']}")).json()["data"]
    assert (consumer["name"], consumer["email"], consumer["identifier"]) == (
        "Zoë",
        "zoe@example.com",
        "crm-9",
    )
    assert consumer["updated_at"] >= consumer["created_at"]
    assert (await get(api, app, "/consumers", {"search": "ZOË"})).json()["pagination"]["total"] == 1


async def test_another_apps_consumer_id_is_not_found(server: Any, api: Any) -> None:
    other = await make_app(server, [consumer_record(uid(2, 5), "x@example.com", "2025-05-01T00:00:00Z")])
    app = await make_app(server, scopes=WRITE)
    for consumer_id in (uid(2, 5), str(uuid.uuid4())):
        response = await log(api, app, {"consumer": {"id": consumer_id}, "messages": turns("hi")})
        assert_error(response, 404, "not_found", "Consumer not found")
    assert other.id != app.id
    assert (await get(api, app, "/sessions")).json()["data"] == []


async def test_an_append_naming_another_apps_consumer_is_not_found(server: Any, api: Any) -> None:
    await make_app(server, [consumer_record(uid(2, 6), "y@example.com", "2025-05-01T00:00:00Z")])
    app = await make_app(server, scopes=WRITE)
    sid = (await log(api, app, {"messages": turns("hi")})).json()["data"]["session_id"]
    response = await log(api, app, {"session_id": sid, "consumer": {"id": uid(2, 6)}, "messages": turns("x")})
    assert_error(response, 404, "not_found", "Consumer not found")


async def test_an_append_naming_the_apps_own_consumer_is_accepted(server: Any, api: Any) -> None:
    app = await make_app(server, [consumer_record(uid(2, 7), "z@example.com", "2025-05-01T00:00:00Z")], scopes=WRITE)
    sid = (await log(api, app, {"messages": turns("hi")})).json()["data"]["session_id"]
    response = await log(api, app, {"session_id": sid, "consumer": {"id": uid(2, 7)}, "messages": turns("x")})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["session_id"] == sid


# --- sessions that are not this app's ---


async def test_another_apps_or_an_unknown_session_is_not_found(server: Any, api: Any) -> None:
    other = await make_app(server, [session_record(uid(1, 1), "2025-06-01T00:00:00Z")])
    app = await make_app(server, scopes=WRITE)
    for session_id in (uid(1, 1), str(uuid.uuid4())):
        response = await log(api, app, {"session_id": session_id, "messages": turns("hi")})
        assert_error(response, 404, "not_found", "Session not found")
    other_session = (await get(api, other, f"/sessions/{uid(1, 1)}")).json()["data"]
    assert other_session["message_count"] == 0


# --- validation: all or nothing, naming the field ---


def _messages(*overrides: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "ok", **o} for o in overrides]}


FUTURE = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
BAD_BODIES: list[tuple[str, Any, str]] = [
    (
        "bad role",
        _messages({}, {"role": "robot"}),
        "messages[1].role must be one of user, assistant, system, tool",
    ),
    ("missing role", {"messages": [{"content": "x"}]}, "messages[0].role is required"),
    ("missing content", {"messages": [{"role": "user"}]}, "messages[0].content is required"),
    (
        "content not text",
        _messages({"content": 5}),
        "messages[0].content must be text without control characters other than tab and newline",
    ),
    (
        "NUL in content",
        _messages({}, {}, {"content": "a\x00b"}),
        "messages[2].content must be text without control characters other than tab and newline",
    ),
    (
        "token_count as a string",
        _messages({"token_count": "5"}),
        "messages[0].token_count must be an integer between 0 and 2147483647",
    ),
    (
        "token_count as a boolean",
        _messages({"token_count": True}),
        "messages[0].token_count must be an integer between 0 and 2147483647",
    ),
    (
        "negative latency",
        _messages({}, {"latency_ms": -1}),
        "messages[1].latency_ms must be an integer between 0 and 2147483647",
    ),
    (
        "huge token_count",
        _messages({"token_count": 2**40}),
        "messages[0].token_count must be an integer between 0 and 2147483647",
    ),
    (
        "fractional token_count",
        _messages({"token_count": 1.5}),
        "messages[0].token_count must be an integer between 0 and 2147483647",
    ),
    (
        "future created_at",
        _messages({}, {"created_at": FUTURE}),
        "messages[1].created_at must not be in the future",
    ),
    (
        "created_at not a timestamp",
        _messages({"created_at": "yesterday"}),
        "messages[0].created_at must be an RFC 3339",
    ),
    (
        "created_at as a number",
        _messages({"created_at": 1700000000}),
        "messages[0].created_at must be an RFC 3339",
    ),
    (
        "id too long",
        _messages({"id": "x" * 65}),
        "messages[0].id must be 1 to 64 characters without control characters",
    ),
    (
        "id with a control character",
        _messages({"id": "a\nb"}),
        "messages[0].id must be 1 to 64 characters without control characters",
    ),
    (
        "repeated id",
        _messages({"id": "a"}, {"id": "b"}, {"id": "a"}),
        "messages[2].id repeats messages[0].id",
    ),
    ("unknown message field", _messages({}, {"tags": ["x"]}), "messages[1].tags is not a known field"),
    (
        "tool call without status",
        _messages({"tool_calls": [{"tool_name": "t"}]}),
        "messages[0].tool_calls[0].status is required",
    ),
    (
        "tool_calls not a list",
        _messages({"tool_calls": {"tool_name": "t"}}),
        "messages[0].tool_calls must be a list of objects with tool_name and status",
    ),
    (
        "message not an object",
        {"messages": [{"role": "user", "content": "x"}, "hello"]},
        "messages[1] must be an object",
    ),
    ("no messages", {"title": "x"}, "messages is required"),
    ("empty messages", {"messages": []}, "messages must be a list of 1 to 100 messages"),
    ("101 messages", _messages(*[{}] * 101), "messages must be a list of 1 to 100 messages"),
    ("messages not a list", {"messages": "hi"}, "messages must be a list of 1 to 100 messages"),
    ("session_id not a UUID", {"session_id": "abc", **_messages({})}, "session_id must be a UUID"),
    (
        "unknown source",
        {"source": "FAX", **_messages({})},
        "source must be one of APP, API, WHATSAPP, SLACK, EMAIL, VOICE, WIDGET, ACP",
    ),
    ("lower-case source", {"source": "api", **_messages({})}, "source must be one of"),
    ("title with a control character", {"title": "a\x07", **_messages({})}, "title must be text of"),
    ("consumer not an object", {"consumer": "ann", **_messages({})}, "consumer must be an object"),
    ("consumer id not a UUID", {"consumer": {"id": "7"}, **_messages({})}, "consumer.id must be a UUID"),
    (
        "consumer email not an email",
        {"consumer": {"email": "ann"}, **_messages({})},
        "consumer.email must be an email address of at most 320 characters",
    ),
    (
        "unknown top-level field",
        {"sesion_id": str(uuid.uuid4()), **_messages({})},
        "sesion_id is not a known field",
    ),
    ("array body", [{"role": "user", "content": "x"}], "Request body must be a JSON object"),
    ("null body", None, "Request body must be a JSON object"),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_an_invalid_body_is_a_400_naming_the_field_and_writes_nothing(
    server: Any, api: Any, case: str, body: Any, message: str
) -> None:
    app = await make_app(server, scopes=WRITE)
    sid = (await log(api, app, {"messages": turns("seed")})).json()["data"]["session_id"]
    if isinstance(body, dict) and "session_id" not in body:
        body = {**body, "session_id": sid}  # appending: nothing must reach the existing session either
    response = await log(api, app, body)
    text = assert_error(response, 400, "invalid_request")
    assert text.startswith(message), (case, text)
    sessions = (await get(api, app, "/sessions")).json()["data"]
    assert [s["message_count"] for s in sessions] == [1]
    assert len(await all_messages(api, app, sid)) == 1


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b'{"messages": [}', "text/plain"),
        (b"\xff\xfe", "application/json"),
    ],
    ids=["malformed", "empty", "malformed text/plain", "not UTF-8"],
)
async def test_a_body_that_is_not_json_is_a_400(server: Any, api: Any, raw: bytes, content_type: str) -> None:
    app = await make_app(server, scopes=WRITE)
    response = await api.post(
        app.base + "/conversations/log", content=raw, headers={**app.headers, "Content-Type": content_type}
    )
    message = assert_error(response, 400, "invalid_request")
    assert message in ("Request body is not valid JSON", "Request body must be a JSON object")


async def test_a_message_id_the_app_already_uses_is_a_400_and_writes_nothing(server: Any, api: Any) -> None:
    app = await make_app(
        server,
        [
            session_record(uid(1, 1), "2025-06-01T00:00:00Z"),
            message_record("taken", uid(1, 1), "2025-06-01T00:00:01Z"),
        ],
        scopes=WRITE,
    )
    response = await log(api, app, _messages({"id": "fresh"}, {"id": "taken"}))
    assert_error(
        response, 400, "invalid_request", "messages[1].id is already used by another message of this app"
    )
    assert [s["id"] for s in (await get(api, app, "/sessions")).json()["data"]] == [uid(1, 1)]


async def test_message_ids_are_per_app(server: Any, api: Any) -> None:
    await make_app(
        server,
        [
            session_record(uid(1, 2), "2025-06-01T00:00:00Z"),
            message_record("shared", uid(1, 2), "2025-06-01T00:00:01Z"),
        ],
    )
    app = await make_app(server, scopes=WRITE)
    assert (await log(api, app, _messages({"id": "shared"}))).status_code == 201


async def test_timestamps_within_the_clock_skew_and_in_every_accepted_form_are_taken(
    server: Any, api: Any
) -> None:
    app = await make_app(server, scopes=WRITE)
    soon = (datetime.now(UTC) + timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    body = _messages(
        {"created_at": "2025-06-01"},
        {"created_at": "2025-06-01 02:00:00+02:00"},
        {"created_at": "2025-06-01T00:00:01.123456789z"},
        {"created_at": "2025-06-01T00:00:02"},
        {"created_at": soon},
    )
    response = await log(api, app, body)
    assert response.status_code == 201, response.text
    times = [m["created_at"] for m in await all_messages(api, app, response.json()["data"]["session_id"])]
    assert times[:4] == [
        "2025-06-01T00:00:00Z",
        "2025-06-01T00:00:00Z",
        "2025-06-01T00:00:01.123456Z",
        "2025-06-01T00:00:02Z",
    ]


# --- scopes ---


async def test_a_read_only_key_cannot_log(server: Any, api: Any) -> None:
    app = await make_app(server)  # read on everything: the default
    response = await log(api, app, {"messages": turns("hi")})
    assert_error(response, 403, "forbidden", "API key lacks write access to sessions")
    assert (await get(api, app, "/sessions")).json()["data"] == []


async def test_another_apps_key_is_forbidden_before_the_body_is_looked_at(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    other = await make_app(server, scopes=WRITE)
    response = await api.post(other.base + "/conversations/log", content=b"{bad", headers=app.headers)
    assert_error(response, 403, "forbidden", "API key does not match application")


async def test_a_request_without_a_key_is_unauthorized(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    response = await api.post(app.base + "/conversations/log", json={"messages": turns("hi")})
    assert_error(response, 401, "unauthorized", "Missing or invalid Authorization header")


# --- analytics move with the write ---


async def test_analytics_reflect_logged_messages_at_once(server: Any, api: Any) -> None:
    app = await make_app(server, scopes={"sessions": "write"})
    consumer = {"email": "ann@example.com"}
    body = {
        "consumer": consumer,
        "messages": [
            {"role": "user", "content": "q", "token_count": 10},
            {"role": "assistant", "content": "a", "model": "gpt-4o", "token_count": 90},
        ],
    }
    sid = (await log(api, app, body)).json()["data"]["session_id"]
    await log(
        api,
        app,
        {
            "session_id": sid,
            "messages": [
                {"role": "assistant", "content": "b", "model": "gpt-4o", "token_count": 5},
            ],
        },
    )
    usage = (await get(api, app, "/analytics/usage")).json()["data"]
    assert usage["summary"] == {"total_sessions": 1, "unique_consumers": 1, "total_messages": 3}
    assert sum(point["message_count"] for point in usage["timeseries"]) == 3
    tokens = (await get(api, app, "/analytics/token-usage")).json()["data"]
    assert tokens["summary"] == {"total_tokens": 105, "message_count": 3}
    assert tokens["by_model"] == [
        {"model": "gpt-4o", "total_tokens": 95, "message_count": 2},
        {"model": None, "total_tokens": 10, "message_count": 1},
    ]
