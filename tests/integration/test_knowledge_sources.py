"""GET /knowledge-sources (SPEC section 6): order, fields, status and type filters, offset pagination."""

from __future__ import annotations

import pytest

from tests.factories import (
    KNOWLEDGE_SOURCE_FIELDS,
    OFFSET_PAGINATION_FIELDS,
    get,
    ids,
    knowledge_source_record,
    make_app,
)

# One source of every type; statuses spread over all five.
RECORDS = [
    knowledge_source_record(
        "ks-url",
        "Docs site",
        "url",
        "completed",
        "2025-05-01T00:00:00Z",
        url="https://example.com/docs",
        chunk_count=42,
        refresh_interval_hours=24,
        last_refreshed_at="2025-05-20T06:00:00.125000Z",
        updated_at="2025-05-20T06:00:01Z",
    ),
    knowledge_source_record(
        "ks-file",
        "Manual.pdf",
        "file",
        "processing",
        "2025-05-02T00:00:00Z",
        file_size_bytes=2048,
    ),
    knowledge_source_record(
        "ks-text",
        "Notes",
        "text",
        "failed",
        "2025-05-03T00:00:00Z",
        error_message="Could not parse",
    ),
    # ks-qa and ks-text share created_at: ks-text's higher id ("ks-t" > "ks-q") comes first.
    knowledge_source_record("ks-qa", "FAQ", "qa", "pending", "2025-05-03T00:00:00Z"),
    knowledge_source_record("ks-sitemap", "Sitemap", "sitemap", "deleting", "2025-05-04T00:00:00Z"),
    knowledge_source_record("ks-drive", "Drive folder", "google_drive", "completed", "2025-05-05T00:00:00Z"),
    knowledge_source_record("ks-notion", "Wiki", "notion", "completed", "2025-05-06T00:00:00Z"),
    knowledge_source_record("ks-youtube", "Talk", "youtube", "pending", "2025-05-07T00:00:00Z"),
    knowledge_source_record("ks-confluence", "Space", "confluence", "failed", "2025-05-08T00:00:00Z"),
]
NEWEST_FIRST = [
    "ks-confluence",
    "ks-youtube",
    "ks-notion",
    "ks-drive",
    "ks-sitemap",
    "ks-text",
    "ks-qa",
    "ks-file",
    "ks-url",
]


@pytest.fixture
async def app(server):
    return await make_app(server, RECORDS)


async def test_knowledge_sources_are_newest_first_with_ties_broken_by_id_descending(api, app):
    assert ids(await get(api, app, "/knowledge-sources")) == NEWEST_FIRST


async def test_knowledge_source_list_envelope_has_offset_pagination(api, app):
    body = (await get(api, app, "/knowledge-sources")).json()
    assert list(body) == ["data", "pagination"]
    assert list(body["pagination"]) == OFFSET_PAGINATION_FIELDS
    assert body["pagination"] == {"has_more": False, "total": 9, "limit": 25, "offset": 0}


async def test_every_knowledge_source_has_the_spec_fields_in_order(api, app):
    for item in (await get(api, app, "/knowledge-sources")).json()["data"]:
        assert list(item) == KNOWLEDGE_SOURCE_FIELDS


async def test_web_source_is_rendered_in_full(api, app):
    found = {k["id"]: k for k in (await get(api, app, "/knowledge-sources")).json()["data"]}
    assert found["ks-url"] == {
        "id": "ks-url",
        "name": "Docs site",
        "type": "url",
        "status": "completed",
        "url": "https://example.com/docs",
        "error_message": None,
        "chunk_count": 42,
        "file_size_bytes": None,
        "refresh_interval_hours": 24,
        "last_refreshed_at": "2025-05-20T06:00:00.125000Z",
        "created_at": "2025-05-01T00:00:00Z",
        "updated_at": "2025-05-20T06:00:01Z",
    }


async def test_file_source_has_a_size_and_no_url(api, app):
    found = {k["id"]: k for k in (await get(api, app, "/knowledge-sources")).json()["data"]}
    assert (found["ks-file"]["file_size_bytes"], found["ks-file"]["url"]) == (2048, None)


async def test_failed_source_has_its_error_message(api, app):
    found = {k["id"]: k for k in (await get(api, app, "/knowledge-sources")).json()["data"]}
    assert found["ks-text"]["error_message"] == "Could not parse"


async def test_defaults_for_absent_fields(api, app):
    found = {k["id"]: k for k in (await get(api, app, "/knowledge-sources")).json()["data"]}
    qa = found["ks-qa"]
    assert (qa["url"], qa["error_message"], qa["chunk_count"], qa["file_size_bytes"]) == (None, None, 0, None)
    assert (qa["refresh_interval_hours"], qa["last_refreshed_at"]) == (None, None)
    assert qa["updated_at"] == qa["created_at"] == "2025-05-03T00:00:00Z"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", ["ks-youtube", "ks-qa"]),
        ("processing", ["ks-file"]),
        ("completed", ["ks-notion", "ks-drive", "ks-url"]),
        ("failed", ["ks-confluence", "ks-text"]),
        ("deleting", ["ks-sitemap"]),
    ],
)
async def test_status_filter_keeps_only_that_status(api, app, status, expected):
    body = (await get(api, app, "/knowledge-sources", {"status": status})).json()
    assert [k["id"] for k in body["data"]] == expected
    assert body["pagination"]["total"] == len(expected)


@pytest.mark.parametrize(
    ("source_type", "expected"),
    [
        ("file", ["ks-file"]),
        ("url", ["ks-url"]),
        ("google_drive", ["ks-drive"]),
        ("notion", ["ks-notion"]),
        ("text", ["ks-text"]),
        ("qa", ["ks-qa"]),
        ("sitemap", ["ks-sitemap"]),
        ("youtube", ["ks-youtube"]),
        ("confluence", ["ks-confluence"]),
    ],
)
async def test_type_filter_keeps_only_that_type(api, app, source_type, expected):
    assert ids(await get(api, app, "/knowledge-sources", {"type": source_type})) == expected


async def test_status_and_type_filters_combine(api, app):
    assert ids(await get(api, app, "/knowledge-sources", {"status": "completed", "type": "notion"})) == [
        "ks-notion"
    ]
    assert ids(await get(api, app, "/knowledge-sources", {"status": "pending", "type": "notion"})) == []


@pytest.mark.parametrize(
    ("limit", "offset", "expected", "has_more"),
    [
        (4, 0, NEWEST_FIRST[:4], True),
        (4, 4, NEWEST_FIRST[4:8], True),
        (4, 8, NEWEST_FIRST[8:], False),
        (9, 0, NEWEST_FIRST, False),
        (1, 9, [], False),
    ],
)
async def test_offset_pages_have_exact_total_and_has_more(api, app, limit, offset, expected, has_more):
    body = (await get(api, app, "/knowledge-sources", {"limit": limit, "offset": offset})).json()
    assert [k["id"] for k in body["data"]] == expected
    assert body["pagination"] == {"has_more": has_more, "total": 9, "limit": limit, "offset": offset}


async def test_filtered_offset_page_total_counts_the_filtered_set(api, app):
    body = (
        await get(api, app, "/knowledge-sources", {"status": "completed", "limit": 2, "offset": 1})
    ).json()
    assert [k["id"] for k in body["data"]] == ["ks-drive", "ks-url"]
    assert body["pagination"] == {"has_more": False, "total": 3, "limit": 2, "offset": 1}
