"""GET /memories (SPEC section 7): order, fields, consumer, type and layer filters, offset pagination."""

from __future__ import annotations

import pytest

from tests.factories import (
    MEMORY_FIELDS,
    OFFSET_PAGINATION_FIELDS,
    consumer_record,
    get,
    ids,
    make_app,
    memory_record,
    message_record,
    session_record,
    uid,
)

ALICE, BOB = uid(2, 1), uid(2, 2)
SESSION = uid(1, 1)

RECORDS = [
    consumer_record(ALICE, "alice@example.com", "2025-05-01T00:00:00Z"),
    consumer_record(BOB, "bob@example.com", "2025-05-01T00:00:00Z"),
    session_record(SESSION, "2025-06-01T00:00:00Z", consumer_id=ALICE),
    message_record("src-msg", SESSION, "2025-06-01T00:00:01Z", content="I prefer tea"),
    memory_record(
        "mem-pref",
        "Prefers tea",
        "2025-06-01T00:00:02Z",
        "preference",
        "fact",
        consumer_id=ALICE,
        external_user_id="ext-42",
        confidence=0.875,
        source_message_id="src-msg",
        session_id=SESSION,
        updated_at="2025-06-02T00:00:00.500000Z",
    ),
    memory_record(
        "mem-back", "Lives in Berlin", "2025-06-02T00:00:00Z", "background", "episodic", consumer_id=ALICE
    ),
    memory_record("mem-fact", "Has two cats", "2025-06-03T00:00:00Z", "fact", "fact", consumer_id=BOB),
    memory_record(
        "mem-insight", "Asks at night", "2025-06-04T00:00:00Z", "insight", "episodic", consumer_id=BOB
    ),
    # mem-query and mem-topic share created_at: mem-topic's higher id comes first.
    memory_record("mem-topic", "Gardening", "2025-06-05T00:00:00Z", "topic", "episodic"),
    memory_record("mem-query", "Searched for refunds", "2025-06-05T00:00:00Z", "query", "fact", confidence=1),
]
NEWEST_FIRST = ["mem-topic", "mem-query", "mem-insight", "mem-fact", "mem-back", "mem-pref"]


@pytest.fixture
async def app(server):
    return await make_app(server, RECORDS)


async def test_memories_are_newest_first_with_ties_broken_by_id_descending(api, app):
    assert ids(await get(api, app, "/memories")) == NEWEST_FIRST


async def test_memory_list_envelope_has_offset_pagination(api, app):
    body = (await get(api, app, "/memories")).json()
    assert list(body) == ["data", "pagination"]
    assert list(body["pagination"]) == OFFSET_PAGINATION_FIELDS
    assert body["pagination"] == {"has_more": False, "total": 6, "limit": 25, "offset": 0}


async def test_every_memory_has_the_spec_fields_in_order(api, app):
    for item in (await get(api, app, "/memories")).json()["data"]:
        assert list(item) == MEMORY_FIELDS


async def test_memory_is_rendered_in_full(api, app):
    found = {m["id"]: m for m in (await get(api, app, "/memories")).json()["data"]}
    assert found["mem-pref"] == {
        "id": "mem-pref",
        "consumer_id": ALICE,
        "external_user_id": "ext-42",
        "content": "Prefers tea",
        "memory_type": "preference",
        "memory_layer": "fact",
        "confidence": 0.875,
        "source_message_id": "src-msg",
        "session_id": SESSION,
        "created_at": "2025-06-01T00:00:02Z",
        "updated_at": "2025-06-02T00:00:00.500000Z",
    }


async def test_defaults_for_absent_fields(api, app):
    found = {m["id"]: m for m in (await get(api, app, "/memories")).json()["data"]}
    topic = found["mem-topic"]
    assert (
        topic["consumer_id"],
        topic["external_user_id"],
        topic["source_message_id"],
        topic["session_id"],
    ) == (
        None,
        None,
        None,
        None,
    )
    assert topic["confidence"] == 0
    assert topic["updated_at"] == topic["created_at"]


async def test_confidence_is_a_number_between_0_and_1(api, app):
    found = {m["id"]: m["confidence"] for m in (await get(api, app, "/memories")).json()["data"]}
    assert found["mem-query"] == 1
    assert all(0 <= value <= 1 for value in found.values())


async def test_consumer_id_filter_keeps_only_that_consumers_memories(api, app):
    assert ids(await get(api, app, "/memories", {"consumer_id": BOB})) == ["mem-insight", "mem-fact"]


async def test_consumer_id_filter_of_an_unknown_consumer_is_empty(api, app):
    assert ids(await get(api, app, "/memories", {"consumer_id": uid(2, 99)})) == []


@pytest.mark.parametrize(
    ("memory_type", "expected"),
    [
        ("preference", ["mem-pref"]),
        ("background", ["mem-back"]),
        ("fact", ["mem-fact"]),
        ("insight", ["mem-insight"]),
        ("topic", ["mem-topic"]),
        ("query", ["mem-query"]),
    ],
)
async def test_memory_type_filter_keeps_only_that_type(api, app, memory_type, expected):
    assert ids(await get(api, app, "/memories", {"memory_type": memory_type})) == expected


@pytest.mark.parametrize(
    ("memory_layer", "expected"),
    [("episodic", ["mem-topic", "mem-insight", "mem-back"]), ("fact", ["mem-query", "mem-fact", "mem-pref"])],
)
async def test_memory_layer_filter_keeps_only_that_layer(api, app, memory_layer, expected):
    body = (await get(api, app, "/memories", {"memory_layer": memory_layer})).json()
    assert [m["id"] for m in body["data"]] == expected
    assert body["pagination"]["total"] == 3


async def test_filters_combine(api, app):
    params = {"consumer_id": ALICE, "memory_layer": "episodic"}
    assert ids(await get(api, app, "/memories", params)) == ["mem-back"]
    params = {"consumer_id": ALICE, "memory_type": "fact"}
    assert ids(await get(api, app, "/memories", params)) == []


@pytest.mark.parametrize(
    ("limit", "offset", "expected", "has_more"),
    [
        (4, 0, NEWEST_FIRST[:4], True),
        (4, 4, NEWEST_FIRST[4:], False),
        (3, 3, NEWEST_FIRST[3:], False),
        (1, 6, [], False),
        (6, 0, NEWEST_FIRST, False),
    ],
)
async def test_offset_pages_have_exact_total_and_has_more(api, app, limit, offset, expected, has_more):
    body = (await get(api, app, "/memories", {"limit": limit, "offset": offset})).json()
    assert [m["id"] for m in body["data"]] == expected
    assert body["pagination"] == {"has_more": has_more, "total": 6, "limit": limit, "offset": offset}


async def test_filtered_offset_page_total_counts_the_filtered_set(api, app):
    body = (await get(api, app, "/memories", {"memory_layer": "fact", "limit": 1, "offset": 1})).json()
    assert [m["id"] for m in body["data"]] == ["mem-fact"]
    assert body["pagination"] == {"has_more": True, "total": 3, "limit": 1, "offset": 1}
