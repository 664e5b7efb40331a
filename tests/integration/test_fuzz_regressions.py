"""What the contract fuzzer (tests/contract/test_fuzz.py) found, one test each, so that it stays fixed
without the fuzzer having to find it again. The body-schema cases near the end were gaps between the
request bodies' documented schemas (schemas/) and what the server checks; the schemas now state each rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema_rs
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.params import NO_CONTROL_CHARACTERS
from tests.factories import assert_error, get, make_app, message_record, session_record, uid

SESSION = uid(1, 1)
RECORDS = [session_record(SESSION, "2025-06-01T10:00:00Z", title="Billing"),
           message_record("m1", SESSION, "2025-06-01T10:00:01Z")]
ADMIN_TOKEN = "regression-operator-token"
DOC = create_app(Settings(database_url="sqlite:///:memory:", admin_token=ADMIN_TOKEN)).openapi()
WRITE = {"sessions": "write", "feedback": "write", "consumers": "write"}


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in DOC["paths"].items() for method, op in item.items()]


def _resolved(node: Any) -> Any:
    """A schema with each `#/components/schemas/...` reference replaced by that component (resolved too)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            component = DOC["components"]["schemas"][ref.removeprefix("#/components/schemas/")]
            return _resolved({**component, **{key: value for key, value in node.items() if key != "$ref"}})
        return {key: _resolved(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolved(item) for item in node]
    return node


def body_schema(method: str, path: str) -> dict[str, Any]:
    """The request body's schema as a client reads it: the named component, its references resolved."""
    op = DOC["paths"][path][method.lower()]
    return dict(_resolved(op["requestBody"]["content"]["application/json"]["schema"]))


@pytest.fixture
async def admin_api(database_url: str) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(Settings(database_url=database_url, rate_limit=100_000, admin_token=ADMIN_TOKEN))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield app, client
    await app.state.limiter.counter.close()
    await app.state.engine.dispose()


# --- Empty query values: the server reads `name=` as absent; the document said a date-time, UUID or enum.


def test_every_optional_query_parameter_is_documented_as_allowing_an_empty_value() -> None:
    for method, path, op in operations():
        for parameter in op.get("parameters", []):
            if parameter["in"] == "query" and not parameter.get("required"):
                assert parameter.get("allowEmptyValue") is True, (method, path, parameter["name"])


@pytest.mark.parametrize("query", ["created_before=", "session_id=", "rating=", "created_after=&limit="])
async def test_empty_values_are_absent_as_documented(server: Any, api: httpx.AsyncClient, query: str) -> None:
    app = await make_app(server, RECORDS)
    response = await api.get(f"{app.base}/feedback?{query}", headers=app.headers)
    assert response.status_code == 200, response.text


# --- 405 `Allow`: Starlette named only the first route matching the path.


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/applications/{app}/builder-keys", "GET, POST"),  # was `POST`
        ("/api/v1/apps/{app}/feedback", "GET, POST"),  # was `GET`
        ("/api/v1/apps/{app}/consumers/auth", "POST"),  # was `GET`, from /consumers/{consumer_id}
        ("/api/v1/apps/{app}/consumers/" + SESSION, "DELETE, GET"),
        ("/api/v1/apps/{app}/sessions/" + SESSION, "DELETE, GET"),
        ("/api/v1/apps/{app}/sessions/" + SESSION + "/messages", "GET"),
        ("/api/applications/{app}/builder-keys/" + SESSION, "DELETE"),
    ],
)
async def test_a_405_allows_every_method_of_the_resource(
    admin_api: tuple[Any, httpx.AsyncClient], path: str, allow: str
) -> None:
    server, client = admin_api
    app = await make_app(server)
    for method in ("OPTIONS", "PUT", "PATCH"):
        response = await client.request(method, path.format(app=app.id), headers=app.headers)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == allow
        assert response.headers["x-content-type-options"] == "nosniff"


# --- `search`: control characters are a 400, and the document now says so with a pattern.


def test_search_documents_that_control_characters_are_refused() -> None:
    searches = [p for _, _, op in operations() for p in op.get("parameters", []) if p["name"] == "search"]
    assert searches
    for parameter in searches:
        assert parameter["schema"]["pattern"] == NO_CONTROL_CHARACTERS
        assert parameter["schema"]["maxLength"] == 200


@pytest.mark.parametrize("search", ["a\nb", "\x11", "x\x8f", "\x7f", "\x00"])
async def test_search_with_control_characters_is_a_400(server: Any, api: httpx.AsyncClient, search: str) -> None:
    app = await make_app(server, RECORDS)
    for path in ("/sessions", "/consumers"):
        assert_error(await get(api, app, path, {"search": search}), 400, "invalid_request",
                     "search must be text of at most 200 characters without control characters")


@pytest.mark.parametrize("search", ["Bill", "é\u00a0ß", "%_\\", "\u2028"])
async def test_search_without_control_characters_is_accepted(
    server: Any, api: httpx.AsyncClient, search: str
) -> None:
    app = await make_app(server, RECORDS)
    response = await get(api, app, "/sessions", {"search": search})
    assert response.status_code == 200, response.text


# --- Idempotency-Key: printable ASCII only; the document said any string of 1 to 255 characters.


def test_idempotency_key_documents_printable_ascii() -> None:
    for method, path, op in operations():
        for parameter in op.get("parameters", []):
            if parameter["name"] == "Idempotency-Key":
                assert parameter["schema"]["pattern"] == "^[\\x20-\\x7e]*$", (method, path)


async def test_idempotency_key_with_a_tab_is_a_400(server: Any, api: httpx.AsyncClient) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    response = await api.post(f"{app.base}/feedback", json={"message_id": "m1", "rating": 1},
                              headers={**app.headers, "Idempotency-Key": "dd>y3\tcY*"})
    assert_error(response, 400, "invalid_request")


# --- Security: management needs the operator token (POST /api/applications declared none at all).


def test_every_operation_declares_the_credential_it_needs() -> None:
    schemes = DOC["components"]["securitySchemes"]
    assert set(schemes) == {"bearerAuth", "adminToken"}
    for method, path, op in operations():
        expected = "adminToken" if path.startswith("/api/applications") else "bearerAuth"
        assert op.get("security") == [{expected: []}], (method, path)


async def test_management_refuses_an_api_key(admin_api: tuple[Any, httpx.AsyncClient]) -> None:
    server, client = admin_api
    app = await make_app(server)
    assert_error(await client.post("/api/applications", json={"name": "x"}, headers=app.headers),
                 401, "unauthorized")
    assert_error(await client.get(f"/api/applications/{app.id}/builder-keys", headers=app.headers),
                 401, "unauthorized")


# --- Key scopes: the document said any string to any string.


def test_key_scopes_document_their_resources_and_levels() -> None:
    scopes = body_schema("POST", "/api/applications/{app_id}/builder-keys")["properties"]["scopes"]
    assert scopes["propertyNames"]["enum"] == [
        "sessions", "consumers", "feedback", "tags", "knowledge_sources", "memories", "analytics"]
    assert scopes["additionalProperties"]["enum"] == ["none", "read", "write"]


@pytest.mark.parametrize("scopes", [{"": "read"}, {"sessions": "admin"}, {"\t": "\x88"}])
async def test_undocumented_scopes_are_a_400(admin_api: tuple[Any, httpx.AsyncClient], scopes: Any) -> None:
    server, client = admin_api
    app = await make_app(server)
    response = await client.post(f"/api/applications/{app.id}/builder-keys", json={"name": "k", "scopes": scopes},
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert_error(response, 400, "invalid_request")


# --- Request bodies: the schemas in schemas/ say what the server checks (they said less, issue 6).


async def test_an_integral_float_rating_is_accepted(server: Any, api: httpx.AsyncClient) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    response = await api.post(f"{app.base}/feedback", json={"message_id": "m1", "rating": 1.0}, headers=app.headers)
    assert response.status_code in (200, 201), response.text


def test_log_documents_that_empty_fields_are_absent() -> None:
    schema = body_schema("POST", "/api/v1/apps/{app_id}/conversations/log")["properties"]["session_id"]
    assert {"enum": [""]} in schema.get("anyOf", []) or "" in schema.get("enum", [])


def test_consumer_auth_documents_the_picture_url_rule() -> None:
    branches = body_schema("POST", "/api/v1/apps/{app_id}/consumers/auth")["properties"]["picture_url"]["anyOf"]
    assert any("pattern" in b or "format" in b for b in branches)


def test_consumer_auth_documents_that_external_id_or_email_is_required() -> None:
    schema = body_schema("POST", "/api/v1/apps/{app_id}/consumers/auth")
    assert "anyOf" in schema or "oneOf" in schema or schema.get("required")


def test_log_documents_that_message_ids_have_no_control_characters() -> None:
    message = body_schema("POST", "/api/v1/apps/{app_id}/conversations/log")["properties"]["messages"]["items"]
    assert any(branch.get("pattern") == NO_CONTROL_CHARACTERS for branch in message["properties"]["id"]["anyOf"])


def test_log_documents_that_titles_have_no_control_characters() -> None:
    title = body_schema("POST", "/api/v1/apps/{app_id}/conversations/log")["properties"]["title"]
    assert any(branch.get("pattern") == NO_CONTROL_CHARACTERS for branch in title["anyOf"])


LOG = "/api/v1/apps/{app_id}/conversations/log"
AUTH = "/api/v1/apps/{app_id}/consumers/auth"
FEEDBACK = "/api/v1/apps/{app_id}/feedback"
# (document path, server path, body, valid): values on either side of each rule the fuzzer found undocumented.
def turn(**fields: Any) -> dict[str, Any]:
    """One logged message with `fields` changed."""
    return {"role": "user", "content": "hi", **fields}


BODIES = [
    (FEEDBACK, "/feedback", {"message_id": "m1", "rating": 1.0}, True),
    (FEEDBACK, "/feedback", {"message_id": "m1", "rating": 1.5}, False),
    (FEEDBACK, "/feedback", {"message_id": "m1", "rating": True}, False),
    (LOG, "/conversations/log", {"messages": [turn(token_count=3.0)]}, True),
    (LOG, "/conversations/log", {"messages": [turn(latency_ms=-1.0)]}, False),
    (LOG, "/conversations/log", {"messages": [turn(id="a\x1fb")]}, False),
    (LOG, "/conversations/log", {"messages": [turn(id="a\u200bb")]}, True),
    (LOG, "/conversations/log", {"messages": [turn(id="")]}, True),
    (LOG, "/conversations/log", {"messages": [turn(content="a\tb\r\nc")]}, True),
    (LOG, "/conversations/log", {"messages": [turn(content="a\x0bb")]}, False),
    (LOG, "/conversations/log", {"title": "a\x00b", "messages": [turn()]}, False),
    (LOG, "/conversations/log", {"title": "a\nb", "messages": [turn()]}, False),
    (LOG, "/conversations/log", {"session_id": "", "title": "", "source": "",
                                 "messages": [turn(created_at="", model="")]}, True),
    (LOG, "/conversations/log", {"consumer": {"id": "", "email": "", "identifier": ""}, "messages": [turn()]}, True),
    (LOG, "/conversations/log", {"consumer": {"email": "a@b@c"}, "messages": [turn()]}, True),
    (LOG, "/conversations/log", {"consumer": {"email": "a@b c"}, "messages": [turn()]}, False),
    (LOG, "/conversations/log", {"consumer": {"email": "a@\u3000"}, "messages": [turn()]}, False),
    (LOG, "/conversations/log", {"consumer": {"email": "@b"}, "messages": [turn()]}, False),
    (AUTH, "/consumers/auth", {"external_id": "0", "picture_url": "0" * 300}, False),
    (AUTH, "/consumers/auth", {"external_id": "0", "picture_url": "https://a.b/c?d=e"}, True),
    (AUTH, "/consumers/auth", {"external_id": "0", "picture_url": "http://a.b/\u00a0"}, False),
    (AUTH, "/consumers/auth", {"external_id": "0", "picture_url": "HTTPS://a.b/"}, False),
    (AUTH, "/consumers/auth", {"email": "", "external_id": None, "name": "", "picture_url": ""}, False),
    (AUTH, "/consumers/auth", {"email": "", "external_id": "x"}, True),
    (AUTH, "/consumers/auth", {"email": "a@b", "external_id": ""}, True),
    (AUTH, "/consumers/auth", {"name": "only a name"}, False),
    (AUTH, "/consumers/auth", {}, False),
]


@pytest.mark.parametrize(("documented", "path", "body", "valid"), BODIES)
async def test_the_server_accepts_a_body_exactly_when_its_document_does(
    server: Any, api: httpx.AsyncClient, documented: str, path: str, body: Any, valid: bool
) -> None:
    """The documented schema (read with ECMA regexes, as clients do) and the server give the same verdict:
    a 2xx when valid, a 400 envelope when not."""
    app = await make_app(server, RECORDS, scopes=WRITE)
    assert jsonschema_rs.validator_for(body_schema("POST", documented)).is_valid(body) is valid
    response = await api.post(app.base + path, json=body, headers=app.headers)
    if valid:
        assert response.status_code in (200, 201), response.text
    else:
        assert_error(response, 400, "invalid_request")


# --- Found by the 1000-example run: two logged messages with one id. JSON Schema cannot say "this property is
# unique across the items" (uniqueItems compares whole items), so the fuzz counts it as an unstatable rule.


async def test_repeated_message_ids_in_one_log_are_a_400_naming_both_and_write_nothing(
    server: Any, api: httpx.AsyncClient
) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    body = {"messages": [turn(id="&x"), turn(id="other"), turn(content="again", id="&x", latency_ms=79029.0)]}
    response = await api.post(f"{app.base}/conversations/log", json=body, headers=app.headers)
    assert_error(response, 400, "invalid_request", "messages[2].id repeats messages[0].id")
    assert [s["id"] for s in (await get(api, app, "/sessions")).json()["data"]] == [SESSION]


# --- NUL in POST /feedback's message_id was a 500 on PostgreSQL (text cannot hold NUL there).


@pytest.mark.parametrize("message_id", ["\x00", "m1\x00", "\x1f\x11\U0007c6f3\x00\U000d353c\u00b1", "m\x7f", "m\x85"])
async def test_control_characters_in_a_rated_message_id_are_a_400(
    server: Any, api: httpx.AsyncClient, message_id: str
) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    response = await api.post(f"{app.base}/feedback", json={"message_id": message_id, "rating": 1},
                              headers={**app.headers, "Idempotency-Key": "7JT"})
    assert_error(response, 400, "invalid_request",
                 "message_id must be the id of one of the app's messages (1 to 64 characters without control "
                 "characters)")


def test_feedback_documents_that_message_ids_have_no_control_characters() -> None:
    message_id = body_schema("POST", "/api/v1/apps/{app_id}/feedback")["properties"]["message_id"]
    assert message_id["pattern"] == NO_CONTROL_CHARACTERS


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/conversations/log", {"title": "\x00", "messages": [{"role": "user", "content": "hi"}]}),
        ("/conversations/log", {"messages": [{"role": "user", "content": "a\x00b"}]}),
        ("/conversations/log", {"messages": [{"role": "user", "content": "hi", "id": "\x00"}]}),
        ("/conversations/log", {"messages": [{"role": "user", "content": "hi", "model": "\x00"}]}),
        ("/conversations/log", {"consumer": {"name": "\x00"}, "messages": [{"role": "user", "content": "hi"}]}),
        ("/conversations/log", {"consumer": {"identifier": "\x00"}, "messages": [turn()]}),
        ("/conversations/log", {"consumer": {"email": "a\x00@b.c"}, "messages": [turn()]}),
        ("/conversations/log", {"messages": [{"role": "tool", "content": "x",
                                              "tool_calls": [{"tool_name": "\x00", "status": "ok"}]}]}),
        ("/consumers/auth", {"external_id": "\x00"}),
        ("/consumers/auth", {"email": "a\x00@b.c"}),
        ("/consumers/auth", {"external_id": "x", "name": "\x00"}),
        ("/consumers/auth", {"external_id": "x", "picture_url": "https://a.b/\x00"}),
    ],
)
async def test_nul_anywhere_in_a_body_is_a_400(server: Any, api: httpx.AsyncClient, path: str, body: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    assert_error(await api.post(app.base + path, json=body, headers=app.headers), 400, "invalid_request")


@pytest.mark.parametrize("body", [{"name": "\x00"}, {"name": "a\x00b"}])
async def test_nul_in_management_names_is_a_400(admin_api: tuple[Any, httpx.AsyncClient], body: Any) -> None:
    server, client = admin_api
    app = await make_app(server)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert_error(await client.post("/api/applications", json=body, headers=admin), 400, "invalid_request")
    assert_error(await client.post(f"/api/applications/{app.id}/builder-keys", json=body, headers=admin),
                 400, "invalid_request")
