"""POST /consumers/auth (SPEC section 9): find or create the consumer and sign a short-lived token naming
the app and the consumer, with a per-deployment secret generated on first use, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from chipp_builder.server import tokens
from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.db.tables import server_secret
from tests.factories import CONSUMER_FIELDS, TestApp, assert_error, consumer_record, get, make_app, uid

WRITE = {"consumers": "write", "sessions": "write"}


async def auth(api: Any, app: TestApp, body: Any) -> Any:
    return await api.post(app.base + "/consumers/auth", json=body, headers=app.headers)


async def stored_secret(server: Any) -> bytes:
    async with server.state.engine.connect() as db:
        return bytes((await db.execute(select(server_secret.c.value))).scalar_one())


async def test_a_new_user_is_created_and_gets_a_token(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    before = datetime.now(UTC)
    response = await auth(
        api,
        app,
        {
            "external_id": "user-1",
            "email": "ann@example.com",
            "name": "Ann",
            "picture_url": "https://x.test/a.png",
        },
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert list(data) == ["consumer", "token", "expires_at"]
    consumer = data["consumer"]
    assert list(consumer) == CONSUMER_FIELDS
    assert (consumer["identifier"], consumer["email"], consumer["name"]) == (
        "user-1",
        "ann@example.com",
        "Ann",
    )
    assert consumer["picture_url"] == "https://x.test/a.png" and consumer["is_anonymous"] is False
    assert (await get(api, app, f"/consumers/{consumer['id']}")).json()["data"] == consumer

    claims = tokens.verify(await stored_secret(server), data["token"])
    assert claims["sub"] == consumer["id"] and claims["app_id"] == str(app.id)
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    assert claims["exp"] == int(expires.timestamp())
    assert timedelta(minutes=59) <= expires - before <= timedelta(minutes=61)


async def test_the_same_user_again_is_found_not_created(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    first = (await auth(api, app, {"external_id": "user-2"})).json()["data"]
    response = await auth(api, app, {"external_id": "user-2", "name": "Renamed"})
    assert response.status_code == 200
    again = response.json()["data"]
    assert again["consumer"]["id"] == first["consumer"]["id"] and again["consumer"]["name"] == "Renamed"
    assert (await get(api, app, "/consumers")).json()["pagination"]["total"] == 1


async def test_auth_and_conversations_log_share_the_consumer_matching(server: Any, api: Any) -> None:
    app = await make_app(
        server,
        [
            consumer_record(uid(2, 1), "crm-1", "2025-05-01T00:00:00Z", email="eve@example.com"),
        ],
        scopes=WRITE,
    )
    by_email = (await auth(api, app, {"email": "eve@example.com"})).json()["data"]["consumer"]
    assert by_email["id"] == uid(2, 1)
    by_external_id = (await auth(api, app, {"external_id": "crm-1"})).json()["data"]["consumer"]
    assert by_external_id["id"] == uid(2, 1)
    created = (await auth(api, app, {"email": "finn@example.com"})).json()["data"]["consumer"]
    logged = await api.post(
        app.base + "/conversations/log",
        headers=app.headers,
        json={
            "consumer": {"email": "finn@example.com"},
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert logged.json()["data"]["consumer_id"] == created["id"]


async def test_an_anonymous_consumer_becomes_identified(server: Any, api: Any) -> None:
    app = await make_app(
        server,
        [
            consumer_record(uid(2, 3), "anon_abc", "2025-05-01T00:00:00Z", is_anonymous=True),
        ],
        scopes=WRITE,
    )
    response = await api.post(
        app.base + "/conversations/log",
        headers=app.headers,
        json={
            "consumer": {"identifier": "anon_abc", "email": "gil@example.com"},
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert response.json()["data"]["consumer_id"] == uid(2, 3)
    consumer = (await get(api, app, f"/consumers/{uid(2, 3)}")).json()["data"]
    assert consumer["is_anonymous"] is False and consumer["identifier"] == "gil@example.com"
    assert (await auth(api, app, {"email": "gil@example.com"})).json()["data"]["consumer"]["id"] == uid(2, 3)


async def test_the_secret_is_made_once_and_kept_across_restarts(
    server: Any, api: Any, settings: Settings
) -> None:
    app = await make_app(server, scopes=WRITE)
    token = (await auth(api, app, {"external_id": "u"})).json()["data"]["token"]
    secret = await stored_secret(server)
    assert len(secret) == 32
    restarted = create_app(settings)
    try:
        import httpx

        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            again = (await auth(other, app, {"external_id": "u"})).json()["data"]["token"]
    finally:
        await restarted.state.engine.dispose()
    assert await stored_secret(server) == secret
    assert tokens.verify(secret, token)["sub"] == tokens.verify(secret, again)["sub"]


async def test_a_token_is_refused_with_another_deployments_secret(server: Any, api: Any) -> None:
    app = await make_app(server, scopes=WRITE)
    token = (await auth(api, app, {"external_id": "u"})).json()["data"]["token"]
    with pytest.raises(jwt.InvalidSignatureError):
        tokens.verify(b"another deployment's secret.....", token)


def test_an_expired_token_is_refused() -> None:
    key = b"k" * 32
    old = tokens.issue(key, uid(9, 1), uid(2, 1), 60, now=datetime.now(UTC) - timedelta(hours=2))  # type: ignore[arg-type]
    with pytest.raises(jwt.ExpiredSignatureError):
        tokens.verify(key, old.token)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "Nobody"}, "external_id or email is required"),
        ({}, "external_id or email is required"),
        ({"external_id": "", "email": ""}, "external_id or email is required"),
        ({"email": "not-an-email"}, "email must be an email address of at most 320 characters"),
        ({"external_id": 42}, "external_id must be text of 1 to 320 characters"),
        ({"external_id": "x", "picture_url": "ftp://x"}, "picture_url must be an http(s) URL"),
        ({"external_id": "x", "role": "admin"}, "role is not a known field"),
        ("user-1", "Request body must be a JSON object"),
    ],
    ids=[
        "no identity",
        "empty",
        "empty strings",
        "bad email",
        "number",
        "bad url",
        "unknown field",
        "string",
    ],
)
async def test_an_invalid_body_is_a_400(server: Any, api: Any, body: Any, message: str) -> None:
    app = await make_app(server, scopes=WRITE)
    text = assert_error(await auth(api, app, body), 400, "invalid_request")
    assert text.startswith(message), text
    assert (await get(api, app, "/consumers")).json()["pagination"]["total"] == 0


async def test_a_read_only_key_cannot_authenticate_consumers(server: Any, api: Any) -> None:
    app = await make_app(server, scopes={"sessions": "write"})
    assert_error(
        await auth(api, app, {"external_id": "u"}),
        403,
        "forbidden",
        "API key lacks write access to consumers",
    )
