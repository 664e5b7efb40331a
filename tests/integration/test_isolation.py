"""Isolation between apps (SPEC section 1): a key never reaches another app's data, whatever the path or the
ids it names, and the answers never tell another app's objects apart from missing ones."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import (
    assert_error,
    consumer_record,
    feedback_record,
    get,
    ids,
    knowledge_source_record,
    make_app,
    memory_record,
    message_record,
    message_tag_record,
    new_id,
    session_record,
    tag_record,
)

MISMATCH = "API key does not match application"


def parallel_records(label: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """One app's data: fresh UUIDs; string ids (messages, feedback, sources, memories) shared by both apps."""
    u = {name: new_id() for name in ("consumer", "session", "tag")}
    records = [
        consumer_record(
            u["consumer"],
            f"{label}-ident",
            "2025-05-01T00:00:00Z",
            email=f"{label}@example.com",
            name=f"{label} Person",
        ),
        session_record(
            u["session"], "2025-06-01T00:00:00Z", title=f"{label} title", consumer_id=u["consumer"]
        ),
        tag_record(u["tag"], f"{label}-tag", "#ef4444", "2025-05-01T00:00:00Z"),
        message_record("m1", u["session"], "2025-06-01T00:00:01Z", content=f"{label} question"),
        message_record(
            "m2",
            u["session"],
            "2025-06-01T00:00:02Z",
            role="assistant",
            content=f"{label} answer",
            model=f"{label}-model",
            token_count=10 if label == "alpha" else 1000,
        ),
        message_tag_record("m2", u["tag"]),
        feedback_record("f1", "m2", u["session"], 1, "2025-06-01T00:01:00Z", consumer_id=u["consumer"]),
        knowledge_source_record("ks1", f"{label} source", "url", "completed", "2025-05-01T00:00:00Z"),
        memory_record("mem1", f"{label} memory", "2025-06-01T00:00:03Z", consumer_id=u["consumer"]),
    ]
    return u, records


@pytest.fixture
async def apps(server) -> tuple[Any, dict[str, str], Any, dict[str, str]]:
    a_ids, a_records = parallel_records("alpha")
    b_ids, b_records = parallel_records("bravo")
    a = await make_app(server, a_records, name="Alpha")
    b = await make_app(server, b_records, name="Bravo")
    return a, a_ids, b, b_ids


def routes(ids_: dict[str, str]) -> list[str]:
    return [
        "/sessions",
        f"/sessions/{ids_['session']}",
        f"/sessions/{ids_['session']}/messages",
        "/consumers",
        f"/consumers/{ids_['consumer']}",
        "/feedback",
        "/tags",
        "/knowledge-sources",
        "/memories",
        "/analytics/usage",
        "/analytics/token-usage",
    ]


def assert_no_trace_of(text: str, other: dict[str, str]) -> None:
    for value in [*other.values(), "bravo"]:
        assert value not in text, value


async def test_a_key_with_another_apps_path_is_403_on_every_route(api, apps):
    a, _, b, b_ids = apps
    answers = {path: (await api.get(b.base + path, headers=a.headers)).json() for path in routes(b_ids)}
    assert answers == dict.fromkeys(answers, {"error": {"code": "forbidden", "message": MISMATCH}})


async def test_every_route_under_its_own_path_shows_none_of_the_other_apps_data(api, apps):
    a, a_ids, _, b_ids = apps
    for path in routes(a_ids):
        response = await get(api, a, path)
        assert response.status_code == 200, path
        assert_no_trace_of(response.text, b_ids)


async def test_another_apps_session_is_not_found(api, apps):
    a, _, _, b_ids = apps
    assert_error(await get(api, a, f"/sessions/{b_ids['session']}"), 404, "not_found", "Session not found")


async def test_another_apps_session_messages_are_not_found(api, apps):
    a, _, _, b_ids = apps
    response = await get(api, a, f"/sessions/{b_ids['session']}/messages")
    assert_error(response, 404, "not_found", "Session not found")


async def test_another_apps_consumer_is_not_found(api, apps):
    a, _, _, b_ids = apps
    assert_error(await get(api, a, f"/consumers/{b_ids['consumer']}"), 404, "not_found", "Consumer not found")


async def test_another_apps_session_answers_like_a_missing_one(api, apps):
    a, _, _, b_ids = apps
    theirs = await get(api, a, f"/sessions/{b_ids['session']}")
    missing = await get(api, a, f"/sessions/{new_id()}")
    assert (theirs.status_code, theirs.json()) == (missing.status_code, missing.json())


async def test_a_consumer_id_filter_of_another_apps_consumer_finds_nothing(api, apps):
    a, _, _, b_ids = apps
    assert ids(await get(api, a, "/sessions", {"consumer_id": b_ids["consumer"]})) == []
    assert ids(await get(api, a, "/memories", {"consumer_id": b_ids["consumer"]})) == []


async def test_a_session_id_filter_of_another_apps_session_finds_nothing(api, apps):
    a, _, _, b_ids = apps
    response = await get(api, a, "/feedback", {"session_id": b_ids["session"]})
    assert response.json()["data"] == [] and response.json()["pagination"]["total"] == 0


async def test_a_search_for_another_apps_title_finds_nothing(api, apps):
    a, _, _, _ = apps
    assert ids(await get(api, a, "/sessions", {"search": "bravo"})) == []
    assert ids(await get(api, a, "/consumers", {"search": "bravo"})) == []


async def test_shared_message_ids_show_this_apps_messages_tags_and_feedback(api, apps):
    a, a_ids, _, _ = apps
    messages = (await get(api, a, f"/sessions/{a_ids['session']}/messages")).json()["data"]
    assert [m["content"] for m in messages] == ["alpha question", "alpha answer"]
    assert messages[1]["tags"] == [{"id": a_ids["tag"], "name": "alpha-tag", "color": "#ef4444"}]
    assert messages[1]["feedback"]["consumer_id"] == a_ids["consumer"]


async def test_feedback_preview_comes_from_this_apps_message(api, apps):
    a, a_ids, _, _ = apps
    data = (await get(api, a, "/feedback")).json()["data"]
    assert [(f["id"], f["session_id"], f["message_preview"]) for f in data] == [
        ("f1", a_ids["session"], "alpha answer")
    ]


async def test_tag_usage_counts_only_this_apps_applications(api, apps):
    a, a_ids, _, _ = apps
    tags = (await get(api, a, "/tags")).json()["data"]
    assert [(t["id"], t["usage_count"]) for t in tags] == [(a_ids["tag"], 1)]


async def test_shared_string_ids_list_this_apps_sources_and_memories(api, apps):
    a, _, _, _ = apps
    sources = (await get(api, a, "/knowledge-sources")).json()["data"]
    memories = (await get(api, a, "/memories")).json()["data"]
    assert [(k["id"], k["name"]) for k in sources] == [("ks1", "alpha source")]
    assert [(m["id"], m["content"]) for m in memories] == [("mem1", "alpha memory")]


async def test_analytics_count_only_this_apps_activity(api, apps):
    a, _, _, _ = apps
    usage = (await get(api, a, "/analytics/usage")).json()["data"]["summary"]
    tokens = (await get(api, a, "/analytics/token-usage")).json()["data"]
    assert usage == {"total_sessions": 1, "unique_consumers": 1, "total_messages": 2}
    assert tokens["summary"] == {"total_tokens": 10, "message_count": 2}
    assert [m["model"] for m in tokens["by_model"]] == ["alpha-model", None]


async def test_the_other_app_sees_its_own_data_with_its_own_key(api, apps):
    _, a_ids, b, b_ids = apps
    response = await get(api, b, f"/sessions/{b_ids['session']}/messages")
    assert [m["content"] for m in response.json()["data"]] == ["bravo question", "bravo answer"]
    assert a_ids["session"] not in response.text
