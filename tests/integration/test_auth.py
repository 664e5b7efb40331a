"""Authentication (SPEC section 1): every row of the table, exact codes and messages, order of checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from chipp_builder.server.auth import generate_key
from chipp_builder.server.resources.apps.queries import revoke_key
from tests.factories import assert_error, expire_key, get, make_app, session_record, uid

MISSING = "Missing or invalid Authorization header"
BAD_FORMAT = "Invalid API key format"
UNKNOWN = "Invalid API key"
MISMATCH = "API key does not match application"

# Every GET route, with the scope it needs (paths relative to the app base).
SESSION = uid(1, 1)
CONSUMER = uid(2, 1)
ROUTES = [
    ("/sessions", "sessions"),
    (f"/sessions/{SESSION}", "sessions"),
    (f"/sessions/{SESSION}/messages", "sessions"),
    ("/consumers", "consumers"),
    (f"/consumers/{CONSUMER}", "consumers"),
    ("/feedback", "feedback"),
    ("/tags", "tags"),
    ("/knowledge-sources", "knowledge_sources"),
    ("/memories", "memories"),
    ("/analytics/usage", "analytics"),
    ("/analytics/token-usage", "analytics"),
]


def with_bad_checksum(key: str) -> str:
    """The same key with another valid-looking 6-character checksum."""
    tail = key[-6:]
    replacement = "000000" if tail != "000000" else "000001"
    return key[:-6] + replacement


@pytest.fixture
async def app(server):
    return await make_app(server, [session_record(SESSION, "2025-06-01T00:00:00Z")])


async def call(api, app, authorization: str | None, path: str = "/sessions", params=None):
    headers = {} if authorization is None else {"Authorization": authorization}
    return await api.get(app.base + path, params=params, headers=headers)


async def test_a_valid_key_is_accepted(api, app):
    assert (await call(api, app, f"Bearer {app.key}")).status_code == 200


async def test_a_missing_header_is_401(api, app):
    assert_error(await call(api, app, None), 401, "unauthorized", MISSING)


@pytest.mark.parametrize(
    "header",
    ["", "Basic x", "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token {key}", "{key}", "Bearer: {key}"],
)
async def test_a_header_that_is_not_bearer_token_is_401(api, app, header):
    assert_error(await call(api, app, header.format(key=app.key)), 401, "unauthorized", MISSING)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
async def test_the_scheme_name_is_case_insensitive(api, app, scheme):
    assert (await call(api, app, f"{scheme} {app.key}")).status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        "chipp_short",
        "sk_live_0123456789abcdef0123456789abcdef",
        "chipp_" + "a" * 31,
        "chipp_" + "a" * 33,
        "CHIPP_" + "a" * 32,
        "chipp-" + "a" * 32,
    ],
)
async def test_a_token_not_in_the_key_format_is_401_invalid_format(api, app, token):
    assert_error(await call(api, app, f"Bearer {token}"), 401, "unauthorized", BAD_FORMAT)


async def test_an_uppercased_key_is_401_invalid_format(api, app):
    assert_error(await call(api, app, f"Bearer {app.key.upper()}"), 401, "unauthorized", BAD_FORMAT)


# SPEC section 1: "a mistyped or made-up key is rejected as `Invalid API key` before any database lookup".
async def test_a_key_with_a_wrong_checksum_is_401_invalid_key(api, app):
    bad = with_bad_checksum(app.key)
    assert len(bad) == len(app.key) and bad[:-6] == app.key[:-6]
    assert_error(await call(api, app, f"Bearer {bad}"), 401, "unauthorized", UNKNOWN)


async def test_a_key_with_one_mistyped_character_is_401_invalid_key(api, app):
    body = app.key[6:32]
    mistyped = "chipp_" + ("b" if body[0] != "b" else "c") + body[1:] + app.key[-6:]
    assert_error(await call(api, app, f"Bearer {mistyped}"), 401, "unauthorized", UNKNOWN)


async def test_a_well_formed_unknown_key_is_401_invalid_key(api, app):
    assert_error(await call(api, app, f"Bearer {generate_key()}"), 401, "unauthorized", UNKNOWN)


async def test_a_revoked_key_is_401_invalid_key(api, server, app):
    async with server.state.engine.begin() as db:
        await revoke_key(db, app.key_id)
    assert_error(await call(api, app, f"Bearer {app.key}"), 401, "unauthorized", UNKNOWN)


async def test_an_expired_key_is_401_expired(api, server, app):
    await expire_key(server, app.key_id)
    assert_error(await call(api, app, f"Bearer {app.key}"), 401, "expired", "API key has expired")


async def test_a_key_with_a_future_expiry_is_accepted(api, server):
    app = await make_app(server, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert (await call(api, app, f"Bearer {app.key}")).status_code == 200


async def test_another_apps_id_in_the_path_is_403(api, server, app):
    other = await make_app(server, name="Other app")
    response = await api.get(f"{other.base}/sessions", headers=app.headers)
    assert_error(response, 403, "forbidden", MISMATCH)


async def test_a_non_uuid_app_id_is_403(api, app):
    response = await api.get("/api/v1/apps/not-a-uuid/sessions", headers=app.headers)
    assert_error(response, 403, "forbidden", MISMATCH)


async def test_a_nonexistent_app_id_is_403(api, app):
    response = await api.get(f"/api/v1/apps/{uuid.uuid4()}/sessions", headers=app.headers)
    assert_error(response, 403, "forbidden", MISMATCH)


async def test_an_uppercase_app_id_is_the_same_app(api, app):
    response = await api.get(f"/api/v1/apps/{str(app.id).upper()}/sessions", headers=app.headers)
    assert response.status_code == 200


@pytest.mark.parametrize(("path", "resource"), ROUTES)
async def test_a_key_without_the_scope_is_403_naming_the_scope(api, server, path, resource):
    app = await make_app(server, scopes={resource: "none"})
    response = await get(api, app, path)
    assert_error(response, 403, "forbidden", f"API key lacks read access to {resource}")


@pytest.mark.parametrize(("path", "resource"), ROUTES)
async def test_a_read_key_reaches_every_route(api, app, path, resource):
    assert (await get(api, app, path)).status_code in (200, 404)


async def test_a_missing_scope_does_not_affect_other_resources(api, server):
    app = await make_app(server, scopes={"sessions": "none"})
    assert (await get(api, app, "/consumers")).status_code == 200


async def test_write_scope_implies_read(api, server):
    app = await make_app(server, scopes={"sessions": "write"})
    assert (await get(api, app, "/sessions")).status_code == 200


# Order of checks: route (404/405), then authentication, then app, then scope, then parameters.


async def test_an_unknown_route_is_404_before_authentication(api, app):
    assert_error(await api.get(f"{app.base}/nothing-here"), 404, "not_found")


async def test_an_unknown_top_level_path_is_404_before_authentication(api):
    assert_error(await api.get("/no/such/path"), 404, "not_found")


async def test_a_wrong_method_is_405_before_authentication(api, app):
    assert_error(await api.delete(f"{app.base}/sessions"), 405, "method_not_allowed")


async def test_bad_parameters_without_a_key_are_401(api, app):
    assert_error(await call(api, app, None, params={"limit": "abc"}), 401, "unauthorized", MISSING)


async def test_bad_parameters_with_an_expired_key_are_401_expired(api, server, app):
    await expire_key(server, app.key_id)
    response = await call(api, app, f"Bearer {app.key}", params={"limit": "0"})
    assert_error(response, 401, "expired", "API key has expired")


async def test_bad_parameters_with_another_apps_path_are_403(api, server, app):
    other = await make_app(server, name="Other app")
    response = await api.get(f"{other.base}/sessions", params={"limit": "abc"}, headers=app.headers)
    assert_error(response, 403, "forbidden", MISMATCH)


async def test_bad_parameters_without_the_scope_are_403(api, server):
    app = await make_app(server, scopes={"sessions": "none"})
    response = await get(api, app, "/sessions", {"limit": "abc"})
    assert_error(response, 403, "forbidden", "API key lacks read access to sessions")


async def test_a_repeated_parameter_without_a_key_is_401(api, app):
    response = await api.get(f"{app.base}/sessions?limit=1&limit=2")
    assert_error(response, 401, "unauthorized", MISSING)


async def test_an_unknown_session_without_a_key_is_401_not_404(api, app):
    assert_error(await call(api, app, None, path=f"/sessions/{uid(1, 99)}"), 401, "unauthorized", MISSING)


async def test_a_wrong_app_is_403_before_not_found(api, server, app):
    other = await make_app(server, name="Other app")
    response = await api.get(f"{other.base}/sessions/{uid(1, 99)}", headers=app.headers)
    assert_error(response, 403, "forbidden", MISMATCH)


async def test_errors_do_not_say_whether_another_app_exists(api, server, app):
    other = await make_app(server, name="Other app")
    existing = await api.get(f"{other.base}/sessions", headers=app.headers)
    missing = await api.get(f"/api/v1/apps/{uuid.uuid4()}/sessions", headers=app.headers)
    assert existing.status_code == missing.status_code == 403
    assert existing.json() == missing.json()


async def test_a_request_without_a_valid_key_is_refused_without_touching_the_database(tmp_path):
    import httpx

    from chipp_builder.server.app import create_app
    from chipp_builder.server.config import Settings

    # The database cannot even be opened: a refusal that needed it would be a 503, not a 401.
    unreachable = create_app(Settings(database_url=f"sqlite:///{tmp_path}/missing/dir/x.db"))
    transport = httpx.ASGITransport(app=unreachable, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        path = f"/api/v1/apps/{uuid.uuid4()}/sessions"
        missing = await client.get(path)
        malformed = await client.get(path, headers={"Authorization": "Bearer nope"})
        mistyped = await client.get(path, headers={"Authorization": "Bearer chipp_" + "a" * 32})
    assert [r.status_code for r in (missing, malformed, mistyped)] == [401, 401, 401]
    assert mistyped.json()["error"]["message"] == "Invalid API key"
    await unreachable.state.engine.dispose()
