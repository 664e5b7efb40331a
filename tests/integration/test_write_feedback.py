"""POST /feedback (SPEC section 9): one rating per message and consumer, replaced on repeat, only for
this app's messages and consumers, on every backend."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.factories import (
    FEEDBACK_FIELDS,
    TestApp,
    assert_error,
    consumer_record,
    feedback_record,
    get,
    make_app,
    message_record,
    session_record,
    uid,
)

S1, ALICE, BOB = uid(1, 1), uid(2, 1), uid(2, 2)
RECORDS = [
    consumer_record(ALICE, "alice@example.com", "2025-05-01T00:00:00Z", email="alice@example.com"),
    consumer_record(BOB, "bob@example.com", "2025-05-01T00:00:00Z", email="bob@example.com"),
    session_record(S1, "2025-06-01T10:00:00Z", consumer_id=ALICE),
    message_record("m1", S1, "2025-06-01T10:00:01Z", role="user", content="Where is my refund?"),
    message_record("m2", S1, "2025-06-01T10:00:02Z", role="assistant", content="It was sent today. " * 20),
]
WRITE = {"feedback": "write"}


async def rate(api: Any, app: TestApp, body: Any) -> Any:
    return await api.post(app.base + "/feedback", json=body, headers=app.headers)


async def test_a_first_rating_is_201_with_the_feedback_object(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    response = await rate(api, app, {"message_id": "m2", "rating": 1, "consumer_id": ALICE})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert list(data) == FEEDBACK_FIELDS
    assert (data["session_id"], data["message_id"], data["consumer_id"], data["rating"]) == (
        S1,
        "m2",
        ALICE,
        1,
    )
    assert data["message_preview"] == ("It was sent today. " * 20)[:200]
    listed = (await get(api, app, "/feedback")).json()["data"]
    assert listed == [data]
    messages = (await get(api, app, f"/sessions/{S1}/messages")).json()["data"]
    assert messages[1]["feedback"] == {
        "id": data["id"],
        "rating": 1,
        "consumer_id": ALICE,
        "created_at": data["created_at"],
    }


async def test_a_second_rating_by_the_same_consumer_replaces_the_first(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    first = (await rate(api, app, {"message_id": "m2", "rating": 1, "consumer_id": ALICE})).json()["data"]
    response = await rate(api, app, {"message_id": "m2", "rating": -1, "consumer_id": ALICE})
    assert response.status_code == 200
    second = response.json()["data"]
    assert second["id"] == first["id"] and second["rating"] == -1
    assert second["created_at"] >= first["created_at"]
    listed = (await get(api, app, "/feedback")).json()
    assert listed["pagination"]["total"] == 1 and listed["data"][0]["rating"] == -1


async def test_other_consumers_ratings_are_kept_apart(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    for consumer, rating in ((ALICE, 1), (BOB, -1)):
        response = await rate(api, app, {"message_id": "m2", "rating": rating, "consumer_id": consumer})
        assert response.status_code == 201
    # Naming nobody is the session's consumer (Alice) rating again: it replaces hers.
    assert (await rate(api, app, {"message_id": "m2", "rating": 0})).status_code == 200
    listed = (await get(api, app, "/feedback", {"session_id": S1})).json()
    assert sorted((f["consumer_id"], f["rating"]) for f in listed["data"]) == [(ALICE, 0), (BOB, -1)]


async def test_imported_duplicates_collapse_to_one_rating(server: Any, api: Any) -> None:
    records = [
        *RECORDS,
        feedback_record("f1", "m1", S1, 1, "2025-06-01T11:00:00Z", consumer_id=ALICE),
        feedback_record("f2", "m1", S1, 0, "2025-06-01T12:00:00Z", consumer_id=ALICE),
    ]
    app = await make_app(server, records, scopes=WRITE)
    response = await rate(api, app, {"message_id": "m1", "rating": -1, "consumer_id": ALICE})
    assert response.status_code == 200 and response.json()["data"]["id"] == "f2"
    assert [f["id"] for f in (await get(api, app, "/feedback")).json()["data"]] == ["f2"]


async def test_another_apps_message_is_not_found(server: Any, api: Any) -> None:
    await make_app(server, RECORDS)
    app = await make_app(server, scopes=WRITE)
    for message_id in ("m1", "nope"):
        assert_error(
            await rate(api, app, {"message_id": message_id, "rating": 1}),
            404,
            "not_found",
            "Message not found",
        )


async def test_another_apps_consumer_is_not_found(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    await make_app(server, [consumer_record(uid(2, 9), "z@example.com", "2025-05-01T00:00:00Z")])
    for consumer_id in (uid(2, 9), str(uuid.uuid4())):
        response = await rate(api, app, {"message_id": "m1", "rating": 1, "consumer_id": consumer_id})
        assert_error(response, 404, "not_found", "Consumer not found")
    assert (await get(api, app, "/feedback")).json()["data"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message_id": "m1", "rating": 2}, "rating must be one of -1, 0, 1"),
        ({"message_id": "m1", "rating": "1"}, "rating must be one of -1, 0, 1"),
        ({"message_id": "m1", "rating": True}, "rating must be one of -1, 0, 1"),
        ({"message_id": "m1", "rating": 0.5}, "rating must be one of -1, 0, 1"),
        ({"rating": 1}, "message_id is required"),
        ({"message_id": "m1"}, "rating is required"),
        ({"message_id": "", "rating": 1}, "message_id must be the id of one of the app's messages"),
        ({"message_id": "m1", "rating": 1, "consumer_id": "alice"}, "consumer_id must be a UUID"),
        ({"message_id": "m1", "rating": 1, "comment": "meh"}, "comment is not a known field"),
        ([1], "Request body must be a JSON object"),
    ],
    ids=[
        "out of range",
        "string",
        "boolean",
        "fraction",
        "no message",
        "no rating",
        "empty id",
        "bad consumer",
        "unknown field",
        "array",
    ],
)
async def test_an_invalid_rating_is_a_400(server: Any, api: Any, body: Any, message: str) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    text = assert_error(await rate(api, app, body), 400, "invalid_request")
    assert text.startswith(message), text


async def test_a_read_only_key_cannot_rate(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes={"sessions": "write"})
    response = await rate(api, app, {"message_id": "m1", "rating": 1})
    assert_error(response, 403, "forbidden", "API key lacks write access to feedback")
