"""GET /sessions/{id}/messages (SPEC section 2): order, fields, tags, feedback, tool details, filters."""

from __future__ import annotations

import pytest

from tests.factories import (
    MESSAGE_FEEDBACK_FIELDS,
    MESSAGE_FIELDS,
    MESSAGE_TAG_FIELDS,
    MESSAGE_TOOL_FIELDS,
    assert_error,
    consumer_record,
    feedback_record,
    get,
    ids,
    make_app,
    message_record,
    message_tag_record,
    session_record,
    tag_record,
    uid,
    walk_cursor,
)

SESSION = uid(1, 1)
OTHER_SESSION = uid(1, 2)
RATER = uid(2, 1)
OTHER_RATER = uid(2, 2)
URGENT, BILLING, HAPPY = uid(3, 2), uid(3, 1), uid(3, 3)
TOOL_CALLS = [{"tool_name": "search", "status": "success"}, {"tool_name": "lookup", "status": "error"}]
TOOL_RESULTS = [{"tool_name": "search", "result": "3 hits"}]

RECORDS = [
    consumer_record(RATER, "rater@example.com", "2025-05-01T00:00:00Z", email="rater@example.com"),
    consumer_record(OTHER_RATER, "anon_2", "2025-05-01T00:00:00Z"),
    session_record(SESSION, "2025-06-01T00:00:00Z", title="Help"),
    session_record(OTHER_SESSION, "2025-06-01T00:00:00Z", title="Other"),
    # Tag order on a message: created_at, then id (BILLING and HAPPY share created_at; BILLING's id is lower).
    tag_record(HAPPY, "happy", "#22c55e", "2025-05-02T00:00:00Z"),
    tag_record(URGENT, "urgent", "#ef4444", "2025-05-01T00:00:00Z"),
    tag_record(BILLING, "billing", "#3b82f6", "2025-05-02T00:00:00Z"),
    message_record("m1", SESSION, "2025-06-01T00:00:01Z", content="Hello"),
    message_record(
        "m2",
        SESSION,
        "2025-06-01T00:00:02.500000Z",
        role="assistant",
        content="Hi! How can I help?",
        model="gpt-4o",
        token_count=12,
        latency_ms=340,
        tool_calls=TOOL_CALLS,
        tool_results=TOOL_RESULTS,
    ),
    message_record("m3", SESSION, "2025-06-01T00:00:03Z", role="system", content="Be brief."),
    message_record("m4", SESSION, "2025-06-01T00:00:04Z", role="tool", content='{"hits": 3}'),
    message_record(
        "m5",
        SESSION,
        "2025-06-01T00:00:05Z",
        content="Voice note\twith a tab\nand a newline",
        audio_url="https://cdn.example.com/a.mp3",
        audio_duration_ms=1200,
    ),
    # m6 and m7 share a timestamp: id breaks the tie.
    message_record(
        "m7", SESSION, "2025-06-01T00:00:06Z", role="assistant", content="tie b", model="claude-3"
    ),
    message_record(
        "m6", SESSION, "2025-06-01T00:00:06Z", role="assistant", content="tie a", model="claude-3"
    ),
    message_record("o1", OTHER_SESSION, "2025-06-01T00:00:01Z", content="elsewhere"),
    message_tag_record("m2", HAPPY),
    message_tag_record("m2", URGENT),
    message_tag_record("m2", BILLING),
    message_tag_record("m1", BILLING),
    # m2: the newest rating wins. m5: two ratings at the same time, the higher id wins.
    feedback_record("f1", "m2", SESSION, 1, "2025-06-01T00:01:00Z", consumer_id=RATER),
    feedback_record("f2", "m2", SESSION, -1, "2025-06-01T00:02:00Z", consumer_id=OTHER_RATER),
    feedback_record("f0", "m2", SESSION, 0, "2025-06-01T00:00:30Z"),
    feedback_record("fa", "m5", SESSION, 1, "2025-06-01T00:03:00Z"),
    feedback_record("fb", "m5", SESSION, -1, "2025-06-01T00:03:00Z"),
]
CHRONOLOGICAL = ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]


@pytest.fixture
async def app(server):
    return await make_app(server, RECORDS)


def path(session_id: str = SESSION) -> str:
    return f"/sessions/{session_id}/messages"


async def by_id(api, app, params=None) -> dict:
    response = await get(api, app, path(), params)
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()["data"]}


async def test_messages_are_chronological_with_ties_broken_by_id(api, app):
    assert ids(await get(api, app, path())) == CHRONOLOGICAL


async def test_messages_of_one_session_only(api, app):
    assert ids(await get(api, app, path(OTHER_SESSION))) == ["o1"]


async def test_every_message_has_the_spec_fields_in_order(api, app):
    for message in (await get(api, app, path())).json()["data"]:
        assert list(message) == MESSAGE_FIELDS


async def test_assistant_message_is_rendered_in_full(api, app):
    m2 = (await by_id(api, app))["m2"]
    assert m2 == {
        "id": "m2",
        "session_id": SESSION,
        "role": "assistant",
        "content": "Hi! How can I help?",
        "model": "gpt-4o",
        "token_count": 12,
        "latency_ms": 340,
        "audio_url": None,
        "audio_duration_ms": None,
        "tags": [
            {"id": URGENT, "name": "urgent", "color": "#ef4444"},
            {"id": BILLING, "name": "billing", "color": "#3b82f6"},
            {"id": HAPPY, "name": "happy", "color": "#22c55e"},
        ],
        "feedback": {
            "id": "f2",
            "rating": -1,
            "consumer_id": OTHER_RATER,
            "created_at": "2025-06-01T00:02:00Z",
        },
        "created_at": "2025-06-01T00:00:02.500000Z",
    }


async def test_user_message_has_null_model_and_nulls_for_absent_values(api, app):
    m1 = (await by_id(api, app))["m1"]
    assert (m1["model"], m1["token_count"], m1["latency_ms"], m1["audio_url"], m1["audio_duration_ms"]) == (
        None,
        None,
        None,
        None,
        None,
    )


async def test_audio_fields_are_returned(api, app):
    m5 = (await by_id(api, app))["m5"]
    assert (m5["audio_url"], m5["audio_duration_ms"]) == ("https://cdn.example.com/a.mp3", 1200)


async def test_content_keeps_tabs_and_newlines(api, app):
    assert (await by_id(api, app))["m5"]["content"] == "Voice note\twith a tab\nand a newline"


async def test_message_tags_are_ordered_by_tag_created_at_then_id(api, app):
    tags = (await by_id(api, app))["m2"]["tags"]
    assert [t["id"] for t in tags] == [URGENT, BILLING, HAPPY]
    assert all(list(t) == MESSAGE_TAG_FIELDS for t in tags)


async def test_message_with_one_tag(api, app):
    assert (await by_id(api, app))["m1"]["tags"] == [{"id": BILLING, "name": "billing", "color": "#3b82f6"}]


async def test_message_without_tags_has_an_empty_list(api, app):
    assert (await by_id(api, app))["m3"]["tags"] == []


async def test_message_feedback_is_the_newest_rating(api, app):
    feedback = (await by_id(api, app))["m2"]["feedback"]
    assert list(feedback) == MESSAGE_FEEDBACK_FIELDS
    assert feedback == {
        "id": "f2",
        "rating": -1,
        "consumer_id": OTHER_RATER,
        "created_at": "2025-06-01T00:02:00Z",
    }


async def test_message_feedback_tie_goes_to_the_higher_id(api, app):
    feedback = (await by_id(api, app))["m5"]["feedback"]
    assert feedback == {"id": "fb", "rating": -1, "consumer_id": None, "created_at": "2025-06-01T00:03:00Z"}


async def test_message_without_feedback_has_null_feedback(api, app):
    assert (await by_id(api, app))["m1"]["feedback"] is None


async def test_without_include_there_are_no_tool_fields(api, app):
    assert "tool_calls" not in (await by_id(api, app))["m2"]


async def test_include_tool_details_adds_tool_calls_and_results_last(api, app):
    messages = await by_id(api, app, {"include": "tool_details"})
    assert all(list(m) == MESSAGE_TOOL_FIELDS for m in messages.values())
    assert messages["m2"]["tool_calls"] == TOOL_CALLS
    assert messages["m2"]["tool_results"] == TOOL_RESULTS


async def test_include_tool_details_is_null_for_a_message_without_tools(api, app):
    m1 = (await by_id(api, app, {"include": "tool_details"}))["m1"]
    assert (m1["tool_calls"], m1["tool_results"]) == (None, None)


async def test_include_tool_details_keeps_the_other_fields(api, app):
    plain = (await by_id(api, app))["m2"]
    detailed = (await by_id(api, app, {"include": "tool_details"}))["m2"]
    assert {k: v for k, v in detailed.items() if k not in ("tool_calls", "tool_results")} == plain


@pytest.mark.parametrize(
    "include", ["other", "tool_details,other", "TOOL_DETAILS", "tool_details,", ",tool_details"]
)
async def test_include_of_anything_but_tool_details_is_400(api, app, include):
    message = assert_error(await get(api, app, path(), {"include": include}), 400, "invalid_request")
    assert "include" in message


@pytest.mark.parametrize(
    ("role", "expected"),
    [("user", ["m1", "m5"]), ("assistant", ["m2", "m6", "m7"]), ("system", ["m3"]), ("tool", ["m4"])],
)
async def test_role_filter_keeps_only_that_role(api, app, role, expected):
    assert ids(await get(api, app, path(), {"role": role})) == expected


async def test_created_after_is_strictly_greater(api, app):
    assert ids(await get(api, app, path(), {"created_after": "2025-06-01T00:00:05Z"})) == ["m6", "m7"]


async def test_created_before_is_strictly_less(api, app):
    assert ids(await get(api, app, path(), {"created_before": "2025-06-01T00:00:02.5Z"})) == ["m1"]


async def test_created_after_and_before_together(api, app):
    params = {"created_after": "2025-06-01T00:00:01Z", "created_before": "2025-06-01T00:00:04Z"}
    assert ids(await get(api, app, path(), params)) == ["m2", "m3"]


async def test_created_after_with_an_offset(api, app):
    assert ids(await get(api, app, path(), {"created_after": "2025-06-01T02:00:05+02:00"})) == ["m6", "m7"]


async def test_messages_of_an_unknown_session_are_404(api, app):
    assert_error(await get(api, app, path(uid(1, 99))), 404, "not_found", "Session not found")


async def test_messages_of_a_non_uuid_session_are_404(api, app):
    assert_error(await get(api, app, path("m1")), 404, "not_found", "Session not found")


async def test_messages_of_a_session_without_messages_are_empty(api, server):
    app = await make_app(server, [session_record(SESSION, "2025-06-01T00:00:00Z")])
    body = (await get(api, app, path())).json()
    assert body == {"data": [], "pagination": {"has_more": False, "next_cursor": None, "limit": 25}}


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 100])
async def test_cursor_walk_visits_every_message_once_in_order(api, app, limit):
    pages = await walk_cursor(api, app, path(), {"limit": limit})
    assert [m["id"] for page in pages for m in page["data"]] == CHRONOLOGICAL
    assert all(len(page["data"]) == limit for page in pages[:-1])


async def test_cursor_walk_keeps_the_role_filter(api, app):
    pages = await walk_cursor(api, app, path(), {"limit": 1, "role": "assistant"})
    assert [m["id"] for page in pages for m in page["data"]] == ["m2", "m6", "m7"]


async def test_cursor_walk_with_tool_details(api, app):
    pages = await walk_cursor(api, app, path(), {"limit": 2, "include": "tool_details"})
    walked = [m for page in pages for m in page["data"]]
    assert [m["id"] for m in walked] == CHRONOLOGICAL
    assert all(list(m) == MESSAGE_TOOL_FIELDS for m in walked)


async def test_a_session_cursor_does_not_fit_the_message_list(api, app):
    cursor = (await get(api, app, "/sessions", {"limit": 1})).json()["pagination"]["next_cursor"]
    assert_error(await get(api, app, path(), {"cursor": cursor}), 400, "invalid_request", "Invalid cursor")


SAME_TIME = "2025-06-01T00:00:00.123456Z"
# Mixed-case and punctuated ids: ascending means by code point ("B" < "_" < "a").
TIED_IDS = ["msg-10", "msg-2", "B", "a", "_x", "msg-1", "Z9", "msg-03"]
TIED_RECORDS = [
    session_record(SESSION, "2025-06-01T00:00:00Z"),
    *[message_record(mid, SESSION, SAME_TIME, content=f"tied {mid}") for mid in TIED_IDS],
]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8])
async def test_cursor_walk_over_equal_timestamps_visits_every_message_once_by_id(api, server, limit):
    app = await make_app(server, TIED_RECORDS)
    pages = await walk_cursor(api, app, path(), {"limit": limit})
    assert [m["id"] for page in pages for m in page["data"]] == sorted(TIED_IDS)
