"""What strict and generated clients rely on: tool results as strings, ratings that name their consumer,
401s with their challenge, no redirects for a trailing slash, and `%2F` that is not a path separator."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from tests.factories import (
    assert_error,
    consumer_record,
    expire_key,
    feedback_record,
    get,
    load,
    make_app,
    message_record,
    session_record,
    uid,
)

OWNED, LONE, ALICE, BOB = uid(1, 1), uid(1, 2), uid(2, 1), uid(2, 2)
RECORDS = [
    consumer_record(ALICE, "alice@example.com", "2025-05-01T00:00:00Z"),
    consumer_record(BOB, "bob@example.com", "2025-05-01T00:00:00Z"),
    session_record(OWNED, "2025-06-01T10:00:00Z", consumer_id=ALICE),
    session_record(LONE, "2025-06-02T10:00:00Z"),  # no consumer
    message_record("m1", OWNED, "2025-06-01T10:00:01Z", role="assistant", content="Answer one"),
    message_record("m2", LONE, "2025-06-02T10:00:01Z", role="assistant", content="Answer two"),
]
WRITE = {"feedback": "write", "sessions": "write"}


# --- 1. tool_results[].result is always a string ------------------------------------------------------------

RESULTS = [{"hits": 3, "city": "Zürich"}, [1, 2], 42, True, None, "plain text", ""]


async def test_every_logged_tool_result_is_given_back_as_a_string(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    tool_results = [{"tool_name": f"t{n}", "result": value} for n, value in enumerate(RESULTS)]
    body = {"messages": [{"role": "assistant", "content": "done", "tool_results": tool_results}]}
    logged = await api.post(app.base + "/conversations/log", json=body, headers=app.headers)
    assert logged.status_code == 201, logged.text

    session_id = logged.json()["data"]["session_id"]
    page = await get(api, app, f"/sessions/{session_id}/messages", {"include": "tool_details"})
    given = page.json()["data"][0]["tool_results"]
    assert [item["result"] for item in given] == [
        '{"hits":3,"city":"Zürich"}', "[1,2]", "42", "true", "null", "plain text", "",
    ]
    assert [json.loads(item["result"]) for item in given[:5]] == RESULTS[:5]  # JSON text of the value


async def test_an_imported_structured_result_is_given_back_as_its_json_text(server: Any, api: Any) -> None:
    tooled = message_record(
        "m9", OWNED, "2025-06-01T10:00:05Z", role="assistant",
        tool_results=[{"tool_name": "lookup_order", "result": {"order_id": "#42", "status": "shipped"}}],
    )
    app = await make_app(server, [*RECORDS, tooled])
    page = await get(api, app, f"/sessions/{OWNED}/messages", {"include": "tool_details"})
    m9 = next(m for m in page.json()["data"] if m["id"] == "m9")
    assert m9["tool_results"] == [{"tool_name": "lookup_order", "result": '{"order_id":"#42","status":"shipped"}'}]


# --- 2. a rating names its consumer ---------------------------------------------------------------------------


async def rate(api: Any, app: Any, body: dict[str, Any]) -> httpx.Response:
    return await api.post(app.base + "/feedback", json=body, headers=app.headers)


async def test_a_rating_without_consumer_id_is_the_sessions_consumers(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    first = await rate(api, app, {"message_id": "m1", "rating": 1})
    assert first.status_code == 201 and first.json()["data"]["consumer_id"] == ALICE
    # The same consumer rating again, now naming herself: it replaces the first.
    again = await rate(api, app, {"message_id": "m1", "rating": -1, "consumer_id": ALICE})
    assert again.status_code == 200 and again.json()["data"]["id"] == first.json()["data"]["id"]
    messages = (await get(api, app, f"/sessions/{OWNED}/messages")).json()["data"]
    assert messages[0]["feedback"]["consumer_id"] == ALICE


async def test_a_named_consumer_is_kept_even_when_the_session_has_another(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    response = await rate(api, app, {"message_id": "m1", "rating": 0, "consumer_id": BOB})
    assert response.status_code == 201 and response.json()["data"]["consumer_id"] == BOB


async def test_in_a_session_without_a_consumer_a_rating_that_names_none_keeps_null(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    response = await rate(api, app, {"message_id": "m2", "rating": 1})
    assert response.status_code == 201 and response.json()["data"]["consumer_id"] is None


async def test_an_imported_rating_without_consumer_id_takes_its_sessions_consumer(server: Any, api: Any) -> None:
    records = [
        *RECORDS,
        feedback_record("f1", "m1", OWNED, 1, "2025-06-01T11:00:00Z"),
        feedback_record("f2", "m2", LONE, -1, "2025-06-02T11:00:00Z"),
    ]
    app = await make_app(server, records)
    # A later file that brings only a rating: the session is the app's stored one.
    stored_session = feedback_record("f3", "m1", OWNED, 0, "2025-06-01T12:00:00Z")
    await load(server, app.id, [stored_session])
    raters = {f["id"]: f["consumer_id"] for f in (await get(api, app, "/feedback")).json()["data"]}
    assert raters == {"f1": ALICE, "f2": None, "f3": ALICE}


async def test_an_imported_rating_follows_the_files_session_over_the_stored_one(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS)
    moved = session_record(OWNED, "2025-06-01T10:00:00Z", consumer_id=BOB)  # the file gives it to Bob
    await load(server, app.id, [moved, feedback_record("f1", "m1", OWNED, 1, "2025-06-01T11:00:00Z")])
    (rating,) = (await get(api, app, "/feedback")).json()["data"]
    assert rating["consumer_id"] == BOB


# --- 4. trailing slashes and encoded slashes --------------------------------------------------------------------


async def test_a_trailing_slash_is_a_404_envelope_and_never_a_redirect(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS)
    for path in ("/sessions/", f"/sessions/{OWNED}/", "/feedback/"):
        response = await api.get(app.base + path, headers={**app.headers, "X-Forwarded-Proto": "https"})
        assert_error(response, 404, "not_found", f"Not found; paths have no trailing slash: {app.base}{path[:-1]}")
        assert "location" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_an_encoded_slash_in_a_path_id_is_a_404_not_another_route(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS)
    for encoded in ("%2F", "%2f"):
        # Decoded, this would be the messages route of a session that exists.
        response = await api.get(f"{app.base}/sessions/{OWNED}{encoded}messages", headers=app.headers)
        assert_error(response, 404, "not_found", "Not found")
    # Before authentication, as every unknown route.
    assert_error(await api.get(f"{app.base}/sessions/{OWNED}%2Fmessages"), 404, "not_found", "Not found")
    # An encoded slash in the query is a value like any other.
    listed = await get(api, app, "/sessions", {"search": "a/b"})
    assert listed.status_code == 200


# --- 5. WWW-Authenticate on every 401 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic abc", "Bearer nope", "Bearer chipp_" + "a" * 32],
    ids=["missing", "other scheme", "bad format", "unknown key"],
)
async def test_every_401_carries_a_bearer_challenge(server: Any, api: Any, authorization: str | None) -> None:
    app = await make_app(server, RECORDS)
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await api.get(app.base + "/sessions", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_expired_keys_401_carries_the_challenge(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS)
    await expire_key(server, app.key_id)
    response = await api.get(app.base + "/sessions", headers=app.headers)
    assert_error(response, 401, "expired", "API key has expired")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_other_errors_carry_no_challenge(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS)
    response = await api.get(f"{app.base}/sessions/{uid(1, 99)}", headers=app.headers)
    assert response.status_code == 404 and "www-authenticate" not in response.headers


async def test_the_operator_tokens_401_carries_the_challenge(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, admin_token="operator-secret", rate_limit=100_000))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post("/api/applications", json={"name": "x"},
                                         headers={"Authorization": "Bearer wrong"})
    finally:
        await app.state.limiter.counter.close()
        await app.state.engine.dispose()
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
