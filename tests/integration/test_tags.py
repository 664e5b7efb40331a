"""GET /tags (SPEC section 5): every tag at once, ordered, with usage counts, no pagination."""

from __future__ import annotations

import pytest

from tests.factories import (
    TAG_FIELDS,
    get,
    ids,
    make_app,
    message_record,
    message_tag_record,
    session_record,
    tag_record,
    uid,
)

SESSION = uid(1, 1)
T1, T2, T3, T4 = uid(3, 2), uid(3, 1), uid(3, 3), uid(3, 4)

RECORDS = [
    session_record(SESSION, "2025-06-01T00:00:00Z"),
    # T2 and T3 share created_at: T2's lower id comes first.
    tag_record(T3, "happy", "#22c55e", "2025-05-02T00:00:00Z"),
    tag_record(T1, "urgent", "#ef4444", "2025-05-01T00:00:00Z"),
    tag_record(T2, "billing", "#3B82F6", "2025-05-02T00:00:00Z"),
    tag_record(T4, "unused", "#000000", "2025-05-03T00:00:00.750000Z"),
    message_record("m1", SESSION, "2025-06-01T00:00:01Z"),
    message_record("m2", SESSION, "2025-06-01T00:00:02Z"),
    message_record("m3", SESSION, "2025-06-01T00:00:03Z"),
    message_tag_record("m1", T1),
    message_tag_record("m2", T1),
    message_tag_record("m3", T1),
    message_tag_record("m1", T2),
    message_tag_record("m2", T3),
    message_tag_record("m3", T3),
]


@pytest.fixture
async def app(server):
    return await make_app(server, RECORDS)


async def test_tags_are_ordered_by_created_at_then_id(api, app):
    assert ids(await get(api, app, "/tags")) == [T1, T2, T3, T4]


async def test_tag_list_is_unpaginated(api, app):
    body = (await get(api, app, "/tags")).json()
    assert list(body) == ["data"]


async def test_every_tag_has_the_spec_fields_in_order(api, app):
    for item in (await get(api, app, "/tags")).json()["data"]:
        assert list(item) == TAG_FIELDS


async def test_tags_are_rendered_in_full_with_usage_counts(api, app):
    assert (await get(api, app, "/tags")).json()["data"] == [
        {
            "id": T1,
            "name": "urgent",
            "color": "#ef4444",
            "usage_count": 3,
            "created_at": "2025-05-01T00:00:00Z",
        },
        {
            "id": T2,
            "name": "billing",
            "color": "#3B82F6",
            "usage_count": 1,
            "created_at": "2025-05-02T00:00:00Z",
        },
        {
            "id": T3,
            "name": "happy",
            "color": "#22c55e",
            "usage_count": 2,
            "created_at": "2025-05-02T00:00:00Z",
        },
        {
            "id": T4,
            "name": "unused",
            "color": "#000000",
            "usage_count": 0,
            "created_at": "2025-05-03T00:00:00.750000Z",
        },
    ]


async def test_tags_ignore_pagination_parameters(api, app):
    assert ids(await get(api, app, "/tags", {"limit": "1", "offset": "2", "cursor": "x"})) == [T1, T2, T3, T4]


async def test_an_app_without_tags_lists_none(api, server):
    app = await make_app(server)
    assert (await get(api, app, "/tags")).json() == {"data": []}


async def test_usage_count_follows_a_reimport_that_adds_an_application(api, server, app):
    from tests.factories import load

    await load(server, app.id, [message_tag_record("m1", T4)])
    usage = {t["id"]: t["usage_count"] for t in (await get(api, app, "/tags")).json()["data"]}
    assert usage == {T1: 3, T2: 1, T3: 2, T4: 1}
