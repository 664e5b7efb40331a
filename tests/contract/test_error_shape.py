"""One error shape (SPEC section 1, DESIGN rule 2): every non-2xx body on every route is exactly
`{"error": {"code", "message"}}` as JSON: never HTML, never FastAPI's `{"detail": ...}`, never a trace."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.auth import generate_key
from chipp_builder.server.config import Settings
from tests.factories import assert_error, make_app, new_id

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


# Building the document needs no database.
DOC = create_app(Settings(database_url="sqlite:///:memory:")).openapi()
OPERATIONS = [(method.upper(), path) for path, item in DOC["paths"].items() for method in item]
PATHS = sorted({path for _, path in OPERATIONS})
APP_OPERATIONS = [(m, p) for m, p in OPERATIONS if p.startswith("/api/v1/apps/{app_id}")]
# Operations that can be given a bad request: a query parameter or a body to get wrong.
VALIDATED_OPERATIONS = [
    (m, p)
    for m, p in APP_OPERATIONS
    if "requestBody" in DOC["paths"][p][m.lower()]
    or any(q["in"] == "query" for q in DOC["paths"][p][m.lower()].get("parameters", []))
]


def fill(path: str, app_id: Any) -> str:
    """The path with its app id and any other path parameter (a fresh UUID) filled in."""
    path = path.replace("{app_id}", str(app_id))
    return re.sub(r"\{[a-z_]+\}", lambda _: new_id(), path)


def template_re(path: str) -> str:
    """A regular expression matching the concrete paths of a path template."""
    return re.sub(r"\{[a-z_]+\}", "[^/]+", path)


def assert_envelope(response: httpx.Response) -> None:
    assert response.status_code >= 400, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert list(body) == ["error"], body
    assert list(body["error"]) == ["code", "message"], body
    assert isinstance(body["error"]["code"], str) and re.fullmatch(r"[a-z_]+", body["error"]["code"]), body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    assert "Traceback" not in response.text


def op_id(operation: tuple[str, str]) -> str:
    return f"{operation[0]} {operation[1]}"


@pytest.fixture
async def app(server):
    return await make_app(server)


def test_the_walk_covers_every_read_route():
    reads = {p for m, p in APP_OPERATIONS if m == "GET"}
    assert {p.removeprefix("/api/v1/apps/{app_id}") for p in reads} >= {
        "/sessions",
        "/sessions/{session_id}",
        "/sessions/{session_id}/messages",
        "/consumers",
        "/consumers/{consumer_id}",
        "/feedback",
        "/tags",
        "/knowledge-sources",
        "/memories",
        "/analytics/usage",
        "/analytics/token-usage",
    }


async def test_the_running_servers_document_has_the_walked_routes(api):
    doc = (await api.get("/openapi.json")).json()
    assert sorted((m.upper(), p) for p, item in doc["paths"].items() for m in item) == sorted(OPERATIONS)


def envelope_problem(
    response: httpx.Response, status: int | None = None, code: str | None = None
) -> str | None:
    """Why a response is not the error envelope (with this status and code, when given), or None."""
    try:
        assert_envelope(response)
        if status is not None:
            assert response.status_code == status
        if code is not None:
            assert response.json()["error"]["code"] == code
    except (AssertionError, ValueError, KeyError):
        return f"{response.status_code} {response.headers.get('content-type')} {response.text[:200]}"
    return None


async def test_no_key_gets_the_envelope_on_every_route(api, app):
    problems = {}
    for method, path in OPERATIONS:
        response = await api.request(method, fill(path, app.id), json={})
        problem = envelope_problem(response)
        if problem or response.status_code not in (401, 404):
            problems[op_id((method, path))] = problem or response.status_code
    assert problems == {}


async def test_no_key_on_every_app_route_is_401(api, app):
    problems = {}
    for method, path in APP_OPERATIONS:
        response = await api.request(method, fill(path, app.id), json={})
        message = response.json().get("error", {}).get("message")
        problem = envelope_problem(response, 401, "unauthorized")
        if problem or message != "Missing or invalid Authorization header":
            problems[op_id((method, path))] = problem or message
    assert problems == {}


async def test_a_malformed_key_on_every_app_route_is_401(api, app):
    problems = {}
    for method, path in APP_OPERATIONS:
        headers = {"Authorization": "Bearer nope"}
        response = await api.request(method, fill(path, app.id), json={}, headers=headers)
        message = response.json().get("error", {}).get("message")
        problem = envelope_problem(response, 401, "unauthorized")
        if problem or message != "Invalid API key format":
            problems[op_id((method, path))] = problem or message
    assert problems == {}


async def test_another_apps_path_on_every_app_route_is_403(api, app):
    problems = {}
    for method, path in APP_OPERATIONS:
        response = await api.request(method, fill(path, new_id()), json={}, headers=app.headers)
        message = response.json().get("error", {}).get("message")
        problem = envelope_problem(response, 403, "forbidden")
        if problem or message != "API key does not match application":
            problems[op_id((method, path))] = problem or message
    assert problems == {}


async def test_a_bad_request_with_a_valid_key_gets_the_envelope_on_every_route(api, app):
    problems = {}
    for method, path in VALIDATED_OPERATIONS:
        response = await api.request(
            method,
            fill(path, app.id),
            params={"limit": "0", "group_by": "year"},
            content=b"{not json",
            headers={**app.headers, "Content-Type": "application/json"},
        )
        problem = envelope_problem(response)
        if problem or response.status_code not in (400, 403, 404):
            problems[op_id((method, path))] = problem or response.status_code
    assert problems == {}


async def test_every_undocumented_method_is_405_with_the_envelope(api, app):
    problems = {}
    for path in PATHS:
        concrete = fill(path, app.id)
        for method in METHODS:
            # Skip a method that a documented route answers here (GET /consumers/auth is GET /consumers/{id}).
            if any(m == method and re.fullmatch(template_re(p), concrete) for m, p in OPERATIONS):
                continue
            response = await api.request(method, concrete, headers=app.headers)
            problem = envelope_problem(response, 405, "method_not_allowed")
            if problem:
                problems[f"{method} {path}"] = problem
    assert problems == {}


UNKNOWN_PATHS = [  # "/" is a plain-text pointer to /docs (tests/integration/test_home.py)
    "/api",
    "/api/v1",
    "/api/v1/apps",
    "/api/v1/apps/{app_id}",
    "/api/v1/apps/{app_id}/",
    "/api/v1/apps/{app_id}/nothing",
    "/api/v1/apps/{app_id}/sessions/{x}/messages/{y}",
    "/api/v2/apps/{app_id}/sessions",
    "/favicon.ico",
    "/index.html",
]


async def test_unknown_routes_are_404_with_the_envelope(api, app):
    problems = {}
    for path in UNKNOWN_PATHS:
        for headers in ({}, app.headers):
            response = await api.get(fill(path, app.id), headers=headers)
            problem = envelope_problem(response, 404, "not_found")
            if problem:
                problems[path] = problem
    assert problems == {}


async def test_a_missing_resource_is_404_with_the_envelope(api, app):
    assert_error(await api.get(f"{app.base}/sessions/{new_id()}", headers=app.headers), 404, "not_found")
    assert_error(await api.get(f"{app.base}/consumers/{new_id()}", headers=app.headers), 404, "not_found")


@pytest.fixture
async def broken() -> AsyncIterator[httpx.AsyncClient]:
    """An app whose database cannot be opened, plus a route that fails with an unexpected exception."""
    server = create_app(Settings(database_url="sqlite:////nonexistent-directory/chipp.db"))

    def explode() -> None:
        raise RuntimeError("secret internal detail")

    server.add_api_route("/explode", explode)
    transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await server.state.engine.dispose()


async def test_an_unreachable_database_is_503_with_the_envelope(broken):
    headers = {"Authorization": f"Bearer {generate_key()}"}
    response = await broken.get(f"/api/v1/apps/{new_id()}/sessions", headers=headers)
    assert_error(response, 503, "service_unavailable")


async def test_an_unexpected_exception_is_500_with_the_envelope_and_no_detail(broken):
    response = await broken.get("/explode")
    assert_error(response, 500, "internal_error", "Internal server error")
    assert "secret internal detail" not in response.text
