"""GET /consumers and GET /consumers/{id} (SPEC section 3): order, fields, filters, offset pagination."""

from __future__ import annotations

import orjson
import pytest

from tests.factories import (
    CONSUMER_FIELDS,
    OFFSET_PAGINATION_FIELDS,
    assert_error,
    consumer_record,
    get,
    ids,
    make_app,
    uid,
)

K = {n: uid(2, n) for n in range(1, 6)}

RECORDS = [
    consumer_record(
        K[1],
        "alice@example.com",
        "2025-05-01T00:00:00Z",
        email="alice@example.com",
        name="Alice Smith",
        picture_url="https://img.example.com/alice.png",
        email_verified=True,
        credits=50,
        subscription_active=True,
        mode="pro",
        updated_at="2025-05-10T12:30:00.250000Z",
    ),
    consumer_record(
        K[2], "juergen@example.de", "2025-05-02T00:00:00Z", email="juergen@example.de", name="Jürgen Groß"
    ),
    consumer_record(K[3], "anon_8f2k", "2025-05-03T00:00:00Z", name="back\\slash", is_anonymous=True),
    # K3 and K4 share created_at: K4's higher id comes first.
    consumer_record(K[4], "anonymous-4", "2025-05-03T00:00:00Z", name="100% real", is_anonymous=True),
    consumer_record(K[5], "user_1", "2025-05-04T00:00:00Z", email="bob@example.com", name="Bob 1000"),
]
NEWEST_FIRST = [K[5], K[4], K[3], K[2], K[1]]


@pytest.fixture
async def app(server):
    return await make_app(server, RECORDS)


async def test_consumers_are_newest_first_with_ties_broken_by_id_descending(api, app):
    assert ids(await get(api, app, "/consumers")) == NEWEST_FIRST


async def test_consumer_list_envelope_has_offset_pagination(api, app):
    body = (await get(api, app, "/consumers")).json()
    assert list(body) == ["data", "pagination"]
    assert list(body["pagination"]) == OFFSET_PAGINATION_FIELDS
    assert body["pagination"] == {"has_more": False, "total": 5, "limit": 25, "offset": 0}


async def test_every_consumer_has_the_spec_fields_in_order(api, app):
    for item in (await get(api, app, "/consumers")).json()["data"]:
        assert list(item) == CONSUMER_FIELDS


async def test_get_consumer_returns_the_bytes_the_list_holds_for_it(api, app):
    """Both routes read through the one reader, so a consumer is rendered the same way on each."""
    listed = (await get(api, app, "/consumers")).json()["data"]
    for item in listed:
        response = await get(api, app, f"/consumers/{item['id']}")
        assert response.content == orjson.dumps({"data": item})


async def test_get_consumer_returns_the_full_object(api, app):
    response = await get(api, app, f"/consumers/{K[1]}")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["data"]
    assert body["data"] == {
        "id": K[1],
        "identifier": "alice@example.com",
        "email": "alice@example.com",
        "name": "Alice Smith",
        "picture_url": "https://img.example.com/alice.png",
        "email_verified": True,
        "credits": 50,
        "subscription_active": True,
        "mode": "pro",
        "is_anonymous": False,
        "created_at": "2025-05-01T00:00:00Z",
        "updated_at": "2025-05-10T12:30:00.250000Z",
    }


async def test_anonymous_consumer_has_defaults_for_absent_fields(api, app):
    data = (await get(api, app, f"/consumers/{K[3]}")).json()["data"]
    assert data == {
        "id": K[3],
        "identifier": "anon_8f2k",
        "email": None,
        "name": "back\\slash",
        "picture_url": None,
        "email_verified": False,
        "credits": 0,
        "subscription_active": False,
        "mode": "default",
        "is_anonymous": True,
        "created_at": "2025-05-03T00:00:00Z",
        "updated_at": "2025-05-03T00:00:00Z",
    }


async def test_get_consumer_of_an_unknown_id_is_404(api, app):
    assert_error(await get(api, app, f"/consumers/{uid(2, 99)}"), 404, "not_found", "Consumer not found")


async def test_get_consumer_of_a_non_uuid_id_is_404(api, app):
    assert_error(await get(api, app, "/consumers/alice@example.com"), 404, "not_found", "Consumer not found")


async def test_get_consumer_of_a_session_id_is_404(api, server):
    from tests.factories import session_record

    app = await make_app(server, [session_record(uid(1, 1), "2025-06-01T00:00:00Z")])
    assert_error(await get(api, app, f"/consumers/{uid(1, 1)}"), 404, "not_found", "Consumer not found")


async def test_search_matches_the_name_case_insensitively(api, app):
    assert ids(await get(api, app, "/consumers", {"search": "ALICE smith"})) == [K[1]]


async def test_search_matches_the_email(api, app):
    assert ids(await get(api, app, "/consumers", {"search": "bob@EXAMPLE"})) == [K[5]]


async def test_search_matches_the_identifier(api, app):
    assert ids(await get(api, app, "/consumers", {"search": "8F2K"})) == [K[3]]


async def test_search_matches_across_all_three_fields(api, app):
    assert ids(await get(api, app, "/consumers", {"search": "example"})) == [K[5], K[2], K[1]]


async def test_search_ss_finds_eszett(api, app):
    assert ids(await get(api, app, "/consumers", {"search": "gross"})) == [K[2]]


async def test_search_lowercase_umlaut_finds_umlaut(api, app):
    assert ids(await get(api, app, "/consumers", {"search": "JÜRGEN"})) == [K[2]]


async def test_search_treats_percent_as_a_literal(api, app):
    assert ids(await get(api, app, "/consumers", {"search": "100%"})) == [K[4]]


async def test_search_treats_underscore_as_a_literal(api, app):
    assert ids(await get(api, app, "/consumers", {"search": "anon_"})) == [K[3]]


async def test_search_treats_backslash_as_a_literal(api, app):
    assert ids(await get(api, app, "/consumers", {"search": "k\\s"})) == [K[3]]


async def test_search_total_counts_the_matches(api, app):
    body = (await get(api, app, "/consumers", {"search": "example", "limit": 1})).json()
    assert body["pagination"] == {"has_more": True, "total": 3, "limit": 1, "offset": 0}


async def test_has_email_true_keeps_consumers_with_an_email(api, app):
    assert ids(await get(api, app, "/consumers", {"has_email": "true"})) == [K[5], K[2], K[1]]


async def test_has_email_false_keeps_consumers_without_an_email(api, app):
    assert ids(await get(api, app, "/consumers", {"has_email": "false"})) == [K[4], K[3]]


async def test_created_after_is_strictly_greater(api, app):
    assert ids(await get(api, app, "/consumers", {"created_after": "2025-05-03T00:00:00Z"})) == [K[5]]


async def test_created_before_is_strictly_less(api, app):
    assert ids(await get(api, app, "/consumers", {"created_before": "2025-05-02T00:00:00Z"})) == [K[1]]


async def test_created_after_accepts_a_bare_date(api, app):
    assert ids(await get(api, app, "/consumers", {"created_after": "2025-05-02"})) == [K[5], K[4], K[3]]


async def test_filters_combine_and_total_counts_the_filtered_set(api, app):
    body = (await get(api, app, "/consumers", {"has_email": "true", "created_after": "2025-05-01"})).json()
    assert [c["id"] for c in body["data"]] == [K[5], K[2]]
    assert body["pagination"]["total"] == 2


@pytest.mark.parametrize(
    ("limit", "offset", "expected", "has_more"),
    [
        (2, 0, [K[5], K[4]], True),
        (2, 2, [K[3], K[2]], True),
        (2, 4, [K[1]], False),
        (2, 3, [K[2], K[1]], False),
        (5, 0, NEWEST_FIRST, False),
        (4, 0, NEWEST_FIRST[:4], True),
        (1, 5, [], False),
        (100, 6, [], False),
        (1, 1_000_000, [], False),
    ],
)
async def test_offset_pages_have_exact_total_and_has_more(api, app, limit, offset, expected, has_more):
    body = (await get(api, app, "/consumers", {"limit": limit, "offset": offset})).json()
    assert [c["id"] for c in body["data"]] == expected
    assert body["pagination"] == {"has_more": has_more, "total": 5, "limit": limit, "offset": offset}


async def test_offset_pages_cover_every_consumer_once(api, app):
    seen = []
    for offset in range(0, 5, 2):
        seen += ids(await get(api, app, "/consumers", {"limit": 2, "offset": offset}))
    assert seen == NEWEST_FIRST


async def test_an_app_without_consumers_lists_none(api, server):
    app = await make_app(server)
    body = (await get(api, app, "/consumers")).json()
    assert body == {"data": [], "pagination": {"has_more": False, "total": 0, "limit": 25, "offset": 0}}
