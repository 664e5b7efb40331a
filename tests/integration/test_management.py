"""Management over HTTP (SPEC section 10): apps and builder keys under /api/applications, guarded by
CHIPP_ADMIN_TOKEN, sharing resources/apps/queries.py with the CLI; revocation is immediate on every
worker; on every backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.resources.apps import queries as apps
from tests.factories import TestApp, assert_error, make_app

ADMIN = "operator-token-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Management switched on."""
    return Settings(database_url=database_url, rate_limit=100_000, admin_token=ADMIN)


@pytest.fixture
async def second_worker(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another app instance over the same database, as a second worker process would be."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.state.engine.dispose()


async def new_app(api: Any, name: str = "Support bot") -> dict[str, Any]:
    response = await api.post("/api/applications", json={"name": name}, headers=AUTH)
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def new_key(api: Any, app_id: Any, **body: Any) -> Any:
    return await api.post(
        f"/api/applications/{app_id}/builder-keys", json={"name": "zapier", **body}, headers=AUTH
    )


async def test_creating_an_app_returns_it(api: Any) -> None:
    created = await new_app(api, "Support bot")
    assert list(created) == ["id", "name", "created_at"]
    assert created["name"] == "Support bot" and uuid.UUID(created["id"])


async def test_a_created_key_is_shown_once_and_works(api: Any) -> None:
    app_id = (await new_app(api))["id"]
    response = await new_key(api, app_id, scopes={"sessions": "write"})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert list(data) == ["id", "name", "prefix", "scopes", "created_at", "expires_at", "rawKey"]
    assert data["rawKey"].startswith("chipp_") and data["prefix"] == data["rawKey"][:10]
    assert data["scopes"] == {
        "sessions": "write",
        "consumers": "read",
        "feedback": "read",
        "tags": "read",
        "knowledge_sources": "read",
        "memories": "read",
        "analytics": "read",
    }
    key_headers = {"Authorization": f"Bearer {data['rawKey']}"}
    assert (await api.get(f"/api/v1/apps/{app_id}/sessions", headers=key_headers)).status_code == 200
    logged = await api.post(
        f"/api/v1/apps/{app_id}/conversations/log",
        headers=key_headers,
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert logged.status_code == 201
    listed = (await api.get(f"/api/applications/{app_id}/builder-keys", headers=AUTH)).json()["data"]
    assert [k["id"] for k in listed] == [data["id"]]
    assert "rawKey" not in listed[0] and listed[0]["revoked_at"] is None
    assert data["rawKey"] not in str(listed)


async def test_a_key_may_expire(api: Any) -> None:
    app_id = (await new_app(api))["id"]
    later = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
    response = await new_key(api, app_id, expires_at=later.isoformat().replace("+00:00", "Z"))
    assert response.json()["data"]["expires_at"] == later.isoformat().replace("+00:00", "Z")


async def test_revoking_a_key_stops_it_at_once_on_every_worker(api: Any, second_worker: Any) -> None:
    app_id = (await new_app(api))["id"]
    data = (await new_key(api, app_id)).json()["data"]
    key_headers = {"Authorization": f"Bearer {data['rawKey']}"}
    path = f"/api/v1/apps/{app_id}/sessions"
    assert (await api.get(path, headers=key_headers)).status_code == 200
    assert (await second_worker.get(path, headers=key_headers)).status_code == 200

    revoked = await second_worker.delete(
        f"/api/applications/{app_id}/builder-keys/{data['id']}", headers=AUTH
    )
    assert revoked.status_code == 200 and revoked.json()["data"]["revoked_at"] is not None
    # No waiting: neither worker holds the key in a cache.
    for client in (api, second_worker):
        assert_error(await client.get(path, headers=key_headers), 401, "unauthorized", "Invalid API key")
    listed = (await api.get(f"/api/applications/{app_id}/builder-keys", headers=AUTH)).json()["data"]
    assert listed[0]["revoked_at"] == revoked.json()["data"]["revoked_at"]
    again = await api.delete(f"/api/applications/{app_id}/builder-keys/{data['id']}", headers=AUTH)
    assert again.json()["data"]["revoked_at"] == revoked.json()["data"]["revoked_at"]


async def test_the_cli_and_http_share_one_set_of_keys(server: Any, api: Any) -> None:
    made = await make_app(server)  # through resources/apps/queries.py, as the CLI does
    http_key = (await new_key(api, made.id)).json()["data"]
    async with server.state.engine.connect() as db:
        listed = await apps.list_keys(db, made.id)
    assert {str(k["id"]) for k in listed} == {str(made.key_id), http_key["id"]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "name is required"),
        ({"name": ""}, "name must be text of 1 to 200 characters"),
        ({"name": "   "}, "name must be 1 to 200 characters"),
        (
            {"name": "k", "scopes": {"sessions": "admin"}},
            "Scope level for sessions must be one of none, read, write",
        ),
        ({"name": "k", "scopes": {"sessions": 2}}, "scopes.sessions must be one of none, read, write"),
        ({"name": "k", "scopes": {"billing": "read"}}, "Unknown scope resource 'billing'"),
        ({"name": "k", "scopes": ["sessions=write"]}, "scopes must be an object from resource"),
        ({"name": "k", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at must be in the future"),
        ({"name": "k", "expires_at": "soon"}, "expires_at must be an RFC 3339 timestamp"),
        ({"name": "k", "rawKey": "chipp_x"}, "rawKey is not a known field"),
    ],
    ids=[
        "no name",
        "empty name",
        "blank name",
        "bad level",
        "level not text",
        "bad resource",
        "list scopes",
        "past expiry",
        "bad expiry",
        "raw key given",
    ],
)
async def test_an_invalid_key_request_is_a_400(api: Any, body: dict[str, Any], message: str) -> None:
    app_id = (await new_app(api))["id"]
    response = await api.post(f"/api/applications/{app_id}/builder-keys", json=body, headers=AUTH)
    text = assert_error(response, 400, "invalid_request")
    assert text.startswith(message), text


async def test_unknown_apps_and_keys_are_not_found(api: Any) -> None:
    app_id = (await new_app(api))["id"]
    other_id = (await new_app(api, "other"))["id"]
    other_key = (await new_key(api, other_id)).json()["data"]["id"]
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        assert_error(await new_key(api, missing), 404, "not_found", "Application not found")
        listed = await api.get(f"/api/applications/{missing}/builder-keys", headers=AUTH)
        assert_error(listed, 404, "not_found", "Application not found")
    for key_id in (other_key, str(uuid.uuid4()), "nope"):
        response = await api.delete(f"/api/applications/{app_id}/builder-keys/{key_id}", headers=AUTH)
        assert_error(response, 404, "not_found", "API key not found")
    # The other app's key still works: the refused revoke changed nothing.
    assert (await api.get(f"/api/applications/{other_id}/builder-keys", headers=AUTH)).json()["data"][0][
        "revoked_at"
    ] is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {ADMIN}"},
        {"Authorization": f"Bearer {ADMIN}x"},
        {"Authorization": f"Bearer {ADMIN[:-1]}"},
    ],
    ids=["none", "wrong", "not bearer", "longer", "shorter"],
)
async def test_a_wrong_or_missing_admin_token_is_a_401(api: Any, headers: dict[str, str]) -> None:
    app_id = (await new_app(api))["id"]
    calls = [
        api.post("/api/applications", json={"name": "x"}, headers=headers),
        api.post(f"/api/applications/{app_id}/builder-keys", json={"name": "x"}, headers=headers),
        api.get(f"/api/applications/{app_id}/builder-keys", headers=headers),
        api.delete(f"/api/applications/{app_id}/builder-keys/{uuid.uuid4()}", headers=headers),
    ]
    for call in calls:
        assert_error(await call, 401, "unauthorized")


async def test_an_api_key_is_not_an_admin_token(server: Any, api: Any) -> None:
    made: TestApp = await make_app(server, scopes={"sessions": "write"})
    response = await api.get(f"/api/applications/{made.id}/builder-keys", headers=made.headers)
    assert_error(response, 401, "unauthorized", "Invalid admin token")


async def test_management_is_off_without_an_admin_token(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, rate_limit=100_000))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            app_id = uuid.uuid4()
            calls = [
                client.post("/api/applications", json={"name": "x"}, headers=AUTH),
                client.post(f"/api/applications/{app_id}/builder-keys", json={"name": "x"}, headers=AUTH),
                client.get(f"/api/applications/{app_id}/builder-keys", headers=AUTH),
                client.delete(f"/api/applications/{app_id}/builder-keys/{uuid.uuid4()}", headers=AUTH),
            ]
            for call in calls:
                assert_error(await call, 404, "not_found", "Not found")
    finally:
        await app.state.engine.dispose()


async def test_failed_admin_tokens_are_rate_limited_per_address(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, rate_limit=3, admin_token=ADMIN))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            bad = {"Authorization": "Bearer guess"}
            statuses = [
                (await client.get(f"/api/applications/{uuid.uuid4()}/builder-keys", headers=bad)).status_code
                for _ in range(5)
            ]
            assert statuses == [401, 401, 401, 429, 429]
    finally:
        await app.state.engine.dispose()
