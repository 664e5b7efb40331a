"""GET /sessions and GET /sessions/{id} (SPEC sections 1 and 2) on seeded data with known answers."""

from __future__ import annotations

import base64
import json

import pytest

from tests.factories import (
    CURSOR_PAGINATION_FIELDS,
    SESSION_FIELDS,
    assert_error,
    consumer_record,
    get,
    ids,
    make_app,
    message_record,
    session_record,
    uid,
    walk_cursor,
)

ALICE = uid(2, 1)
ANON = uid(2, 2)
S = {n: uid(1, n) for n in range(1, 11)}

RECORDS = [
    consumer_record(
        ALICE, "alice@example.com", "2025-05-01T00:00:00Z", email="alice@example.com", name="Alice"
    ),
    consumer_record(ANON, "anon_7f3k", "2025-05-02T00:00:00Z", is_anonymous=True),
    session_record(S[1], "2025-06-01T10:00:00Z", title="Billing question", source="APP", consumer_id=ALICE),
    session_record(
        S[2],
        "2025-06-02T09:00:00.250000Z",
        title="Straße nach Hause",
        source="WIDGET",
        consumer_id=ANON,
        ended_at="2025-06-02T10:00:00Z",
    ),
    session_record(S[3], "2025-06-02T09:00:00.250000Z", title="ÜBER uns", source="WIDGET"),
    session_record(S[4], "2025-06-03T00:00:00Z", title="Get 50% off", source="API", consumer_id=ALICE),
    session_record(S[5], "2025-06-03T00:00:00Z", title="Get 50 off", source="API"),
    session_record(S[6], "2025-06-04T00:00:00Z", title="snake_case", source="SLACK"),
    session_record(S[7], "2025-06-04T00:00:00Z", title="snakeXcase", source="SLACK"),
    session_record(S[8], "2025-06-05T00:00:00Z", title="C:\\path", source="EMAIL"),
    session_record(S[9], "2025-06-05T00:00:00Z", title="C:path", source="EMAIL"),
    session_record(
        S[10],
        "2025-06-06T00:00:00Z",
        title=None,
        source="VOICE",
        mode="voice",
        is_bookmarked=True,
        is_multiplayer=True,
    ),
    message_record("s1-m1", S[1], "2025-06-01T10:00:05Z", content="My invoice is wrong"),
    message_record(
        "s1-m2", S[1], "2025-06-01T10:01:00Z", role="assistant", content="Let me check", model="gpt-4o"
    ),
]

# started_at descending, then id descending for the ties (S3 > S2, S5 > S4, S7 > S6, S9 > S8).
NEWEST_FIRST = [S[10], S[9], S[8], S[7], S[6], S[5], S[4], S[3], S[2], S[1]]


@pytest.fixture
async def app(server):
    return await make_app(server, RECORDS)


async def test_sessions_are_newest_first_with_ties_broken_by_id_descending(api, app):
    assert ids(await get(api, app, "/sessions")) == NEWEST_FIRST


async def test_session_list_envelope_has_data_and_cursor_pagination(api, app):
    body = (await get(api, app, "/sessions")).json()
    assert list(body) == ["data", "pagination"]
    assert list(body["pagination"]) == CURSOR_PAGINATION_FIELDS
    assert body["pagination"] == {"has_more": False, "next_cursor": None, "limit": 25}


async def test_every_session_has_the_spec_fields_in_order(api, app):
    for item in (await get(api, app, "/sessions")).json()["data"]:
        assert list(item) == SESSION_FIELDS


async def test_get_session_returns_the_full_object(api, app):
    response = await get(api, app, f"/sessions/{S[2]}")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["data"]
    assert body["data"] == {
        "id": S[2],
        "consumer_id": ANON,
        "consumer": {"email": None, "name": None},
        "title": "Straße nach Hause",
        "source": "WIDGET",
        "mode": "default",
        "is_bookmarked": False,
        "is_multiplayer": False,
        "message_count": 0,
        "started_at": "2025-06-02T09:00:00.250000Z",
        "ended_at": "2025-06-02T10:00:00Z",
        "last_activity_at": "2025-06-02T10:00:00Z",
    }
    assert list(body["data"]) == SESSION_FIELDS


async def test_session_with_a_consumer_embeds_its_email_and_name(api, app):
    data = (await get(api, app, f"/sessions/{S[1]}")).json()["data"]
    assert data["consumer_id"] == ALICE
    assert data["consumer"] == {"email": "alice@example.com", "name": "Alice"}
    assert list(data["consumer"]) == ["email", "name"]


async def test_session_without_a_consumer_has_null_consumer_id_and_consumer(api, app):
    data = (await get(api, app, f"/sessions/{S[3]}")).json()["data"]
    assert data["consumer_id"] is None
    assert data["consumer"] is None


async def test_session_defaults_for_absent_fields(api, app):
    data = (await get(api, app, f"/sessions/{S[3]}")).json()["data"]
    assert (data["mode"], data["is_bookmarked"], data["is_multiplayer"]) == ("default", False, False)
    assert (data["message_count"], data["ended_at"]) == (0, None)
    assert data["last_activity_at"] == data["started_at"] == "2025-06-02T09:00:00.250000Z"


async def test_session_with_a_null_title_and_set_flags(api, app):
    data = (await get(api, app, f"/sessions/{S[10]}")).json()["data"]
    assert data["title"] is None
    assert (data["source"], data["mode"], data["is_bookmarked"], data["is_multiplayer"]) == (
        "VOICE",
        "voice",
        True,
        True,
    )


async def test_message_count_and_last_activity_follow_the_messages(api, app):
    data = (await get(api, app, f"/sessions/{S[1]}")).json()["data"]
    assert data["message_count"] == 2
    assert data["last_activity_at"] == "2025-06-01T10:01:00Z"


async def test_timestamps_without_a_fraction_end_in_z(api, app):
    data = (await get(api, app, f"/sessions/{S[1]}")).json()["data"]
    assert data["started_at"] == "2025-06-01T10:00:00Z"


async def test_timestamps_with_a_fraction_have_six_digits_and_z(api, app):
    data = (await get(api, app, f"/sessions/{S[3]}")).json()["data"]
    assert data["started_at"] == "2025-06-02T09:00:00.250000Z"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("APP", [S[1]]),
        ("API", [S[5], S[4]]),
        ("WHATSAPP", []),
        ("SLACK", [S[7], S[6]]),
        ("EMAIL", [S[9], S[8]]),
        ("VOICE", [S[10]]),
        ("WIDGET", [S[3], S[2]]),
        ("ACP", []),
    ],
)
async def test_source_filter_keeps_only_that_channel(api, app, source, expected):
    assert ids(await get(api, app, "/sessions", {"source": source})) == expected


async def test_consumer_id_filter_keeps_only_that_consumers_sessions(api, app):
    assert ids(await get(api, app, "/sessions", {"consumer_id": ALICE})) == [S[4], S[1]]


async def test_consumer_id_filter_accepts_an_uppercase_uuid(api, app):
    assert ids(await get(api, app, "/sessions", {"consumer_id": ALICE.upper()})) == [S[4], S[1]]


async def test_consumer_id_filter_of_an_unknown_consumer_is_empty(api, app):
    assert ids(await get(api, app, "/sessions", {"consumer_id": uid(2, 99)})) == []


async def test_started_after_is_strictly_greater(api, app):
    assert ids(await get(api, app, "/sessions", {"started_after": "2025-06-05T00:00:00Z"})) == [S[10]]


async def test_started_before_is_strictly_less(api, app):
    assert ids(await get(api, app, "/sessions", {"started_before": "2025-06-02T09:00:00.25Z"})) == [S[1]]


async def test_started_after_and_before_together_bound_both_ends(api, app):
    params = {"started_after": "2025-06-02T09:00:00.250000Z", "started_before": "2025-06-04T00:00:00Z"}
    assert ids(await get(api, app, "/sessions", params)) == [S[5], S[4]]


async def test_an_empty_range_is_an_empty_list(api, app):
    params = {"started_after": "2025-06-04T00:00:00Z", "started_before": "2025-06-04T00:00:00Z"}
    assert ids(await get(api, app, "/sessions", params)) == []


# One instant, 2025-06-02T09:00:00.25Z (when S2 and S3 started), in every accepted form: strictly after it
# leaves S4..S10.
AFTER_S3 = NEWEST_FIRST[:7]


@pytest.mark.parametrize(
    "form",
    [
        "2025-06-02T09:00:00.25Z",
        "2025-06-02T09:00:00.250000z",
        "2025-06-02t09:00:00.250Z",
        "2025-06-02T11:00:00.25+02:00",
        "2025-06-02T11:00:00.25+0200",
        "2025-06-02T07:00:00.25-02:00",
        "2025-06-02 09:00:00.25Z",
        "2025-06-02T11:00:00.25 02:00",
        "2025-06-02T09:00:00.25",
        "2025-06-02T09:00:00.250000000Z",
        "2025-06-02T09:00:00.250000400Z",
    ],
)
async def test_started_after_accepts_every_documented_timestamp_form(api, app, form):
    assert ids(await get(api, app, "/sessions", {"started_after": form})) == AFTER_S3


async def test_an_unencoded_plus_in_the_offset_is_read_as_plus(api, app):
    response = await api.get(
        f"{app.base}/sessions?started_after=2025-06-02T11:00:00.25+02:00", headers=app.headers
    )
    assert ids(response) == AFTER_S3


async def test_started_after_accepts_one_to_nine_fraction_digits(api, app):
    # .2 is before .25 (S2 and S3 are in); from two digits on (.25, .250, ...) they are out.
    found = {}
    for digits in range(1, 10):
        fraction = "250000000"[:digits]
        found[digits] = ids(
            await get(api, app, "/sessions", {"started_after": f"2025-06-02T09:00:00.{fraction}Z"})
        )
    assert found == {1: NEWEST_FIRST[:9], **dict.fromkeys(range(2, 10), AFTER_S3)}


async def test_started_after_accepts_a_bare_date_as_midnight_utc(api, app):
    assert ids(await get(api, app, "/sessions", {"started_after": "2025-06-03"})) == NEWEST_FIRST[:5]


async def test_started_before_accepts_a_bare_date_as_midnight_utc(api, app):
    assert ids(await get(api, app, "/sessions", {"started_before": "2025-06-03"})) == [S[3], S[2], S[1]]


async def test_search_is_a_case_insensitive_substring_of_the_title(api, app):
    assert ids(await get(api, app, "/sessions", {"search": "BILLING"})) == [S[1]]
    assert ids(await get(api, app, "/sessions", {"search": "get 50"})) == [S[5], S[4]]


async def test_search_ss_finds_eszett(api, app):
    assert ids(await get(api, app, "/sessions", {"search": "strasse"})) == [S[2]]


async def test_search_eszett_finds_eszett(api, app):
    assert ids(await get(api, app, "/sessions", {"search": "STRAßE"})) == [S[2]]


async def test_search_lowercase_umlaut_finds_capital_umlaut(api, app):
    assert ids(await get(api, app, "/sessions", {"search": "über"})) == [S[3]]


async def test_search_treats_percent_as_a_literal(api, app):
    assert ids(await get(api, app, "/sessions", {"search": "50%"})) == [S[4]]


async def test_search_treats_underscore_as_a_literal(api, app):
    assert ids(await get(api, app, "/sessions", {"search": "e_c"})) == [S[6]]


async def test_search_treats_backslash_as_a_literal(api, app):
    assert ids(await get(api, app, "/sessions", {"search": "C:\\"})) == [S[8]]
    assert ids(await get(api, app, "/sessions", {"search": "\\p"})) == [S[8]]


async def test_search_without_a_match_is_empty(api, app):
    assert ids(await get(api, app, "/sessions", {"search": "nothing like this"})) == []


async def test_search_of_200_characters_is_accepted(api, app):
    assert ids(await get(api, app, "/sessions", {"search": "ü" * 200})) == []


async def test_filters_combine(api, app):
    params = {"source": "API", "consumer_id": ALICE, "search": "50%"}
    assert ids(await get(api, app, "/sessions", params)) == [S[4]]


async def test_get_session_of_an_unknown_id_is_404(api, app):
    assert_error(await get(api, app, f"/sessions/{uid(1, 99)}"), 404, "not_found", "Session not found")


async def test_get_session_of_a_non_uuid_id_is_404(api, app):
    assert_error(await get(api, app, "/sessions/not-a-uuid"), 404, "not_found", "Session not found")


async def test_get_session_accepts_an_uppercase_uuid(api, app):
    response = await get(api, app, f"/sessions/{S[1].upper()}")
    assert response.json()["data"]["id"] == S[1]


async def test_default_limit_is_25(api, app):
    assert (await get(api, app, "/sessions")).json()["pagination"]["limit"] == 25


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 9, 10, 11, 100])
async def test_cursor_walk_visits_every_session_once_in_order(api, app, limit):
    pages = await walk_cursor(api, app, "/sessions", {"limit": limit})
    assert [s["id"] for page in pages for s in page["data"]] == NEWEST_FIRST
    assert [len(page["data"]) for page in pages[:-1]] == [limit] * (len(pages) - 1)
    assert all(page["pagination"]["limit"] == limit for page in pages)
    assert len(pages) == max(1, -(-len(NEWEST_FIRST) // limit))


async def test_a_page_that_ends_the_list_exactly_has_no_more(api, app):
    body = (await get(api, app, "/sessions", {"limit": 10})).json()
    assert body["pagination"] == {"has_more": False, "next_cursor": None, "limit": 10}


async def test_cursor_walk_keeps_the_filters(api, app):
    pages = await walk_cursor(api, app, "/sessions", {"limit": 1, "source": "WIDGET"})
    assert [s["id"] for page in pages for s in page["data"]] == [S[3], S[2]]


async def test_cursor_walk_with_a_search(api, app):
    pages = await walk_cursor(api, app, "/sessions", {"limit": 1, "search": "snake"})
    assert [s["id"] for page in pages for s in page["data"]] == [S[7], S[6]]


async def test_cursor_is_base64url_json_whose_first_key_is_the_last_rows_id(api, app):
    body = (await get(api, app, "/sessions", {"limit": 3})).json()
    cursor = body["pagination"]["next_cursor"]
    assert "=" not in cursor
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert list(payload)[0] == "id"
    assert payload["id"] == body["data"][-1]["id"] == S[8]


async def test_a_padded_cursor_is_accepted(api, app):
    cursor = (await get(api, app, "/sessions", {"limit": 3})).json()["pagination"]["next_cursor"]
    padded = cursor + "=" * (-len(cursor) % 4)
    assert ids(await get(api, app, "/sessions", {"limit": 3, "cursor": padded})) == NEWEST_FIRST[3:6]


async def test_a_message_cursor_does_not_fit_the_session_list(api, app):
    messages = (await get(api, app, f"/sessions/{S[1]}/messages", {"limit": 1})).json()
    cursor = messages["pagination"]["next_cursor"]
    assert_error(
        await get(api, app, "/sessions", {"cursor": cursor}), 400, "invalid_request", "Invalid cursor"
    )


SAME_TIME = "2025-07-01T12:00:00.500000Z"
TIED = [uid(1, n) for n in (17, 3, 11, 5, 13, 2, 7)]
TIED_RECORDS = [session_record(sid, SAME_TIME, title=f"tied {sid}") for sid in TIED]


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7])
async def test_cursor_walk_over_equal_timestamps_visits_every_session_once_by_id_descending(
    api, server, limit
):
    app = await make_app(server, TIED_RECORDS)
    pages = await walk_cursor(api, app, "/sessions", {"limit": limit})
    walked = [s["id"] for page in pages for s in page["data"]]
    assert walked == sorted(TIED, reverse=True)


async def test_cursor_walk_across_equal_and_distinct_timestamps(api, server):
    earlier = [session_record(uid(1, n), "2025-07-01T11:00:00Z") for n in (30, 31)]
    later = [session_record(uid(1, n), "2025-07-01T13:00:00Z") for n in (40, 41)]
    app = await make_app(server, TIED_RECORDS + earlier + later)
    pages = await walk_cursor(api, app, "/sessions", {"limit": 2})
    walked = [s["id"] for page in pages for s in page["data"]]
    assert walked == [uid(1, 41), uid(1, 40), *sorted(TIED, reverse=True), uid(1, 31), uid(1, 30)]


async def test_an_app_without_sessions_lists_none(api, server):
    app = await make_app(server)
    body = (await get(api, app, "/sessions")).json()
    assert body == {"data": [], "pagination": {"has_more": False, "next_cursor": None, "limit": 25}}
