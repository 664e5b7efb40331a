"""GET /feedback (SPEC section 4): order, fields, message previews, filters, offset pagination."""

from __future__ import annotations

import pytest

from tests.factories import (
    FEEDBACK_FIELDS,
    OFFSET_PAGINATION_FIELDS,
    consumer_record,
    delete_message,
    feedback_record,
    get,
    ids,
    make_app,
    message_record,
    session_record,
    uid,
)

S1, S2 = uid(1, 1), uid(1, 2)
RATER = uid(2, 1)
LONG = "x" * 250
# 199 two-byte characters, one four-byte emoji, then more: the preview is 200 code points, not bytes.
MULTIBYTE = "é" * 199 + "😀" + "tail"
EXACT = "y" * 200

RECORDS = [
    consumer_record(RATER, "rater@example.com", "2025-05-01T00:00:00Z"),
    session_record(S1, "2025-06-01T00:00:00Z"),
    session_record(S2, "2025-06-02T00:00:00Z"),
    message_record("fm1", S1, "2025-06-01T00:00:01Z", role="assistant", content=LONG),
    message_record("fm2", S1, "2025-06-01T00:00:02Z", role="assistant", content=MULTIBYTE),
    message_record("fm3", S2, "2025-06-02T00:00:01Z", role="assistant", content="short answer"),
    message_record("fm4", S2, "2025-06-02T00:00:02Z", role="assistant", content="soon deleted"),
    message_record("fm5", S2, "2025-06-02T00:00:03Z", role="assistant", content=EXACT),
    feedback_record("f1", "fm1", S1, 1, "2025-06-01T10:00:00Z", consumer_id=RATER),
    feedback_record("f2", "fm2", S1, -1, "2025-06-02T10:00:00.500000Z"),
    # f3 and f4 share created_at: f4's higher id comes first.
    feedback_record("f3", "fm3", S2, 0, "2025-06-03T10:00:00Z"),
    feedback_record("f4", "fm3", S2, 1, "2025-06-03T10:00:00Z", consumer_id=RATER),
    feedback_record("f5", "fm4", S2, -1, "2025-06-04T10:00:00Z"),
    feedback_record("f6", "fm5", S2, 1, "2025-06-05T10:00:00Z"),
]
NEWEST_FIRST = ["f6", "f5", "f4", "f3", "f2", "f1"]


@pytest.fixture
async def app(server):
    return await make_app(server, RECORDS)


async def previews(api, app) -> dict[str, str | None]:
    return {f["id"]: f["message_preview"] for f in (await get(api, app, "/feedback")).json()["data"]}


async def test_feedback_is_newest_first_with_ties_broken_by_id_descending(api, app):
    assert ids(await get(api, app, "/feedback")) == NEWEST_FIRST


async def test_feedback_list_envelope_has_offset_pagination(api, app):
    body = (await get(api, app, "/feedback")).json()
    assert list(body) == ["data", "pagination"]
    assert list(body["pagination"]) == OFFSET_PAGINATION_FIELDS
    assert body["pagination"] == {"has_more": False, "total": 6, "limit": 25, "offset": 0}


async def test_every_feedback_has_the_spec_fields_in_order(api, app):
    for item in (await get(api, app, "/feedback")).json()["data"]:
        assert list(item) == FEEDBACK_FIELDS


async def test_feedback_is_rendered_in_full(api, app):
    f4 = next(f for f in (await get(api, app, "/feedback")).json()["data"] if f["id"] == "f4")
    assert f4 == {
        "id": "f4",
        "session_id": S2,
        "message_id": "fm3",
        "consumer_id": RATER,
        "rating": 1,
        "message_preview": "short answer",
        "created_at": "2025-06-03T10:00:00Z",
    }


async def test_feedback_without_a_consumer_has_null_consumer_id(api, app):
    f2 = next(f for f in (await get(api, app, "/feedback")).json()["data"] if f["id"] == "f2")
    assert f2["consumer_id"] is None
    assert f2["created_at"] == "2025-06-02T10:00:00.500000Z"


async def test_message_preview_is_cut_to_200_characters(api, app):
    assert (await previews(api, app))["f1"] == "x" * 200


async def test_message_preview_counts_code_points_not_bytes(api, app):
    assert (await previews(api, app))["f2"] == "é" * 199 + "😀"


async def test_message_preview_of_exactly_200_characters_is_whole(api, app):
    assert (await previews(api, app))["f6"] == EXACT


async def test_message_preview_of_a_short_message_is_the_whole_content(api, app):
    assert (await previews(api, app))["f3"] == "short answer"


async def test_message_preview_is_null_when_the_message_no_longer_exists(api, server, app):
    await delete_message(server, app.id, "fm4")
    found = await previews(api, app)
    assert found["f5"] is None
    assert found["f3"] == "short answer"


@pytest.mark.parametrize(
    ("rating", "expected"), [("-1", ["f5", "f2"]), ("0", ["f3"]), ("1", ["f6", "f4", "f1"])]
)
async def test_rating_filter_keeps_only_that_rating(api, app, rating, expected):
    body = (await get(api, app, "/feedback", {"rating": rating})).json()
    assert [f["id"] for f in body["data"]] == expected
    assert body["pagination"]["total"] == len(expected)


async def test_session_id_filter_keeps_only_that_sessions_feedback(api, app):
    assert ids(await get(api, app, "/feedback", {"session_id": S1})) == ["f2", "f1"]


async def test_session_id_filter_of_an_unknown_session_is_empty(api, app):
    body = (await get(api, app, "/feedback", {"session_id": uid(1, 99)})).json()
    assert body == {"data": [], "pagination": {"has_more": False, "total": 0, "limit": 25, "offset": 0}}


async def test_created_after_is_strictly_greater(api, app):
    assert ids(await get(api, app, "/feedback", {"created_after": "2025-06-03T10:00:00Z"})) == ["f6", "f5"]


async def test_created_before_is_strictly_less(api, app):
    assert ids(await get(api, app, "/feedback", {"created_before": "2025-06-02T10:00:00.5Z"})) == ["f1"]


async def test_filters_combine(api, app):
    params = {"rating": "1", "session_id": S2, "created_before": "2025-06-05T10:00:00Z"}
    assert ids(await get(api, app, "/feedback", params)) == ["f4"]


@pytest.mark.parametrize(
    ("limit", "offset", "expected", "has_more"),
    [
        (2, 0, ["f6", "f5"], True),
        (2, 2, ["f4", "f3"], True),
        (2, 4, ["f2", "f1"], False),
        (4, 3, ["f3", "f2", "f1"], False),
        (5, 0, NEWEST_FIRST[:5], True),
        (1, 6, [], False),
        (1, 1_000_000, [], False),
    ],
)
async def test_offset_pages_have_exact_total_and_has_more(api, app, limit, offset, expected, has_more):
    body = (await get(api, app, "/feedback", {"limit": limit, "offset": offset})).json()
    assert [f["id"] for f in body["data"]] == expected
    assert body["pagination"] == {"has_more": has_more, "total": 6, "limit": limit, "offset": offset}


async def test_filtered_offset_page_total_counts_the_filtered_set(api, app):
    body = (await get(api, app, "/feedback", {"rating": "1", "limit": 1, "offset": 1})).json()
    assert [f["id"] for f in body["data"]] == ["f4"]
    assert body["pagination"] == {"has_more": True, "total": 3, "limit": 1, "offset": 1}
