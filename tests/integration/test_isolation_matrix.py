"""The isolation matrix (issue 6, OWASP API1 broken object-level authorization), generated from the OpenAPI
document: every operation of every route, with two apps holding parallel data and a write key each.

For each operation under the app base `/api/v1/apps/{app_id}/...`:
- A's key with B's app id in the path: 403 `forbidden`, `API key does not match application`;
- A's key under A's path with B's object ids in the path parameters: the 404 a missing object gets;
- B's ids and texts in query filters, in cursors, in write bodies and in a reused Idempotency-Key: nothing of
  B's is answered (an empty list, a 404, or A's own new row) and B's rows are unchanged afterwards;
- no answer of any kind holds one of B's ids, names, emails, titles or contents (unless the request sent it);
- and A's key with A's own ids is a 2xx, so that the refusals above are about ownership, not bad input.

Routes outside the app base are covered their own way: management refuses an app key, and with the operator
token cannot reach one app's key through another app's path; the documentation routes, which the document
does not list, are named in EXCLUDED with the reason. A new operation, path parameter, query parameter or
request body that these tables do not know fails `test_the_matrix_knows_every_operation`, so no route can
escape the matrix silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.db.tables import api_key, idempotency_key, metadata
from chipp_builder.server.db.tables import app as app_table
from tests.factories import (
    TestApp,
    assert_error,
    consumer_record,
    feedback_record,
    knowledge_source_record,
    make_app,
    memory_record,
    message_record,
    message_tag_record,
    new_id,
    session_record,
    tag_record,
)

ADMIN_TOKEN = "isolation-matrix-operator-token"
DOC = create_app(Settings(database_url="sqlite:///:memory:", admin_token=ADMIN_TOKEN)).openapi()
APP_BASE = "/api/v1/apps/{app_id}"
MANAGEMENT_BASE = "/api/applications"
OPERATIONS = sorted((method.upper(), path) for path, item in DOC["paths"].items() for method in item)
APP_OPERATIONS = [op for op in OPERATIONS if op[1].startswith(APP_BASE + "/")]
MANAGEMENT_OPERATIONS = [op for op in OPERATIONS if op[1] == MANAGEMENT_BASE or op[1].startswith(MANAGEMENT_BASE + "/")]
MISMATCH = {"error": {"code": "forbidden", "message": "API key does not match application"}}
WRITE_EVERYTHING = {
    name: "write"
    for name in ("sessions", "consumers", "feedback", "tags", "knowledge_sources", "memories", "analytics")
}

# Routes the document does not list (FastAPI's documentation pages): public, static, no app's data.
EXCLUDED = {
    "/openapi.json": "the OpenAPI document itself: public, the same for every caller",
    "/docs": "Swagger UI page over /openapi.json: static HTML, no data",
    "/docs/oauth2-redirect": "Swagger UI's OAuth helper page: static HTML, no data",
    **{
        f"/docs/assets/{name}": "Swagger UI's files, served by the server so /docs needs no internet: static, no data"
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
    },
    "/": "the root's plain-text pointer to /docs and the API base: static text, no data",
}
# Routes the document does not list that do hold an app's data, each with the tests that prove its isolation.
KEYED_ELSEWHERE = {
    "/mcp": "the MCP endpoint (Streamable HTTP, not REST): tests/integration/test_mcp_http.py shows that it "
    "needs a key and that another app's key gets the API's errors, never data",
}


@dataclass
class Side:
    """One app of the pair: its key and the ids and texts of its parallel data."""

    app: TestApp
    label: str
    ids: dict[str, str]
    texts: dict[str, str]
    extra_ids: set[str] = field(default_factory=set)  # made during the test (sessions, consumers, messages)

    def secrets(self) -> list[str]:
        """Everything of this app that another app's answers must never hold."""
        return [str(self.app.id), self.app.key, str(self.app.key_id), *self.ids.values(), *self.texts.values(),
                *self.extra_ids]


def parallel_side_records(label: str) -> tuple[dict[str, str], dict[str, str], list[dict[str, Any]]]:
    """Fresh UUIDs, string ids and texts that name their app (`alpha-…`, `bravo-…`), and the records."""
    ids = {kind: new_id() for kind in ("consumer", "session", "session2", "tag")}
    ids.update({kind: f"{label}-{kind}" for kind in ("message", "message2", "message3", "feedback", "source",
                                                    "memory")})
    texts = {
        "email": f"{label}@example.com", "name": f"{label.title()} Person", "identifier": f"{label}-ident",
        "title": f"{label} title", "title2": f"{label} second title", "question": f"{label} question",
        "answer": f"{label} answer", "model": f"{label}-model", "tag": f"{label}-tag",
        "source_name": f"{label} source", "memory_text": f"{label} memory",
    }
    records = [
        consumer_record(ids["consumer"], texts["identifier"], "2025-05-01T00:00:00Z", email=texts["email"],
                        name=texts["name"]),
        session_record(ids["session"], "2025-06-01T00:00:00Z", title=texts["title"], consumer_id=ids["consumer"]),
        session_record(ids["session2"], "2025-06-02T00:00:00Z", title=texts["title2"]),
        tag_record(ids["tag"], texts["tag"], "#ef4444", "2025-05-01T00:00:00Z"),
        message_record(ids["message"], ids["session"], "2025-06-01T00:00:01Z", content=texts["question"]),
        message_record(ids["message2"], ids["session"], "2025-06-01T00:00:02Z", role="assistant",
                       content=texts["answer"], model=texts["model"], token_count=10),
        message_record(ids["message3"], ids["session2"], "2025-06-02T00:00:01Z", content=texts["question"]),
        message_tag_record(ids["message2"], ids["tag"]),
        feedback_record(ids["feedback"], ids["message2"], ids["session"], 1, "2025-06-01T00:01:00Z",
                        consumer_id=ids["consumer"]),
        knowledge_source_record(ids["source"], texts["source_name"], "url", "completed", "2025-05-01T00:00:00Z",
                                url=f"https://{label}.example.com"),
        memory_record(ids["memory"], texts["memory_text"], "2025-06-01T00:00:03Z", consumer_id=ids["consumer"]),
    ]
    return ids, texts, records


@pytest.fixture
async def pair(server: Any) -> tuple[Side, Side]:
    sides = []
    for label in ("alpha", "bravo"):
        ids, texts, records = parallel_side_records(label)
        made = await make_app(server, records, scopes=WRITE_EVERYTHING, name=label.title())
        sides.append(Side(made, label, ids, texts))
    return sides[0], sides[1]


# --- How to fill each operation: tables keyed by parameter name and by operation. ---

# Path parameters naming one of the app's objects: (kind in Side.ids, the 404 message of another app's).
PATH_OBJECTS: dict[str, tuple[str, str]] = {
    "session_id": ("session", "Session not found"),
    "consumer_id": ("consumer", "Consumer not found"),
}

# Query parameters that can name another app's data, and the value of B's to send.
QUERY_REFERENCES: dict[str, Callable[[Side], str]] = {
    "consumer_id": lambda b: b.ids["consumer"],
    "session_id": lambda b: b.ids["session"],
    "search": lambda b: b.label,  # every text of B's holds its label
    "cursor": lambda b: b.texts["cursor"],  # set by the test: a real cursor from one of B's pages
    "after": lambda b: b.texts["after"],  # set by the test: B's feed position (GET /events/latest)
}
# Query parameters that hold values, not references: nothing of another app can be named through them.
QUERY_VALUES = {
    "limit", "offset", "source", "started_after", "started_before", "created_after", "created_before", "role",
    "include", "has_email", "rating", "status", "type", "memory_type", "memory_layer", "group_by", "types", "wait",
}
# Header parameters: the Idempotency-Key is per API key, so B's key value must not replay B's answer to A.
HEADER_REFERENCES = {"Idempotency-Key"}


@dataclass
class Case:
    """One request body: who it is about, and what the answer must be."""

    body: dict[str, Any]
    statuses: tuple[int, ...]
    message: str | None = None


def log_turns(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": text + " reply", "model": "m"}]


@dataclass
class Bodies:
    """An operation's own body (A's data, a 2xx) and its bodies naming B's data."""

    own: Callable[[Side], dict[str, Any]]
    foreign: Callable[[Side, Side], list[Case]]


BODIES: dict[tuple[str, str], Bodies] = {
    ("POST", APP_BASE + "/conversations/log"): Bodies(
        own=lambda s: {"title": f"{s.label} logged", "messages": log_turns(f"{s.label} logged")},
        foreign=lambda a, b: [
            Case({"session_id": b.ids["session"], "messages": log_turns("x")}, (404,), "Session not found"),
            Case({"consumer": {"id": b.ids["consumer"]}, "messages": log_turns("x")}, (404,), "Consumer not found"),
            Case({"session_id": a.ids["session"], "consumer": {"id": b.ids["consumer"]}, "messages": log_turns("x")},
                 (404,), "Consumer not found"),
            # Matched within A only: a new consumer of A's, never B's.
            Case({"consumer": {"email": b.texts["email"]}, "messages": log_turns("x")}, (201,)),
            Case({"consumer": {"identifier": b.texts["identifier"]}, "messages": log_turns("x")}, (201,)),
            # Message ids are unique per app: B's ids are free in A, and B's messages stay B's.
            Case({"messages": [{"role": "user", "content": "x", "id": b.ids["message"]}]}, (201,)),
        ],
    ),
    ("POST", APP_BASE + "/feedback"): Bodies(
        own=lambda s: {"message_id": s.ids["message2"], "rating": -1},
        foreign=lambda a, b: [
            Case({"message_id": b.ids["message2"], "rating": -1}, (404,), "Message not found"),
            Case({"message_id": b.ids["message2"], "rating": 1, "consumer_id": b.ids["consumer"]}, (404,),
                 "Message not found"),
            Case({"message_id": a.ids["message2"], "rating": 1, "consumer_id": b.ids["consumer"]}, (404,),
                 "Consumer not found"),
        ],
    ),
    ("POST", APP_BASE + "/consumers/auth"): Bodies(
        own=lambda s: {"external_id": f"{s.label}-site-user", "name": "Site user"},
        foreign=lambda a, b: [
            Case({"external_id": b.texts["identifier"]}, (200, 201)),
            Case({"email": b.texts["email"]}, (200, 201)),
            Case({"external_id": "new-one", "email": b.texts["email"], "name": b.texts["name"]}, (200, 201)),
        ],
    ),
}


def fill(path: str, side: Side, objects_of: Side | None = None) -> str:
    """The path with `side`'s app id and the object ids of `objects_of` (default: the same side)."""
    owner = objects_of or side
    values = {"app_id": str(side.app.id)}
    values.update({name: owner.ids[kind] for name, (kind, _) in PATH_OBJECTS.items()})
    return path.format(**values)


def parameters(method: str, path: str, where: str) -> list[dict[str, Any]]:
    return [p for p in DOC["paths"][path][method.lower()].get("parameters", []) if p["in"] == where]


def has_body(method: str, path: str) -> bool:
    return "requestBody" in DOC["paths"][path][method.lower()]


async def call(api: httpx.AsyncClient, method: str, url: str, key_of: Side, body: Any = None,
               headers: dict[str, str] | None = None) -> httpx.Response:
    content = None if body is None else json.dumps(body)
    sent = {**key_of.app.headers, **({"Content-Type": "application/json"} if body is not None else {}),
            **(headers or {})}
    return await api.request(method, url, content=content, headers=sent)


def assert_no_trace_of(response: httpx.Response, b: Side, sent: str) -> None:
    """Nothing of B's in the answer, apart from what the request itself sent (an echoed email, say)."""
    answer = response.text + json.dumps(dict(response.headers))
    for secret in b.secrets():
        if secret not in sent:
            assert secret not in answer, (secret, response.status_code, response.text[:500])


async def rows_of(server: Any, side: Side) -> dict[str, list[str]]:
    """Every row that belongs to one app (domain data, summaries, keys and their idempotency records)."""
    found: dict[str, list[str]] = {}
    async with server.state.engine.connect() as db:
        for table in metadata.sorted_tables:
            if table is app_table:
                query = select(table).where(table.c.id == side.app.id)
            elif table is idempotency_key:
                key_ids = select(api_key.c.id).where(api_key.c.app_id == side.app.id)
                query = select(table).where(table.c.api_key_id.in_(key_ids))
            elif "app_id" in table.c:
                query = select(table).where(table.c.app_id == side.app.id)
            else:
                continue
            found[table.name] = sorted(repr(tuple(row)) for row in await db.execute(query))
    return found


# --- The coverage check: a route the tables do not know fails here. ---


def test_the_matrix_knows_every_operation() -> None:
    assert len(APP_OPERATIONS) >= 14 and set(APP_OPERATIONS) | set(MANAGEMENT_OPERATIONS) == set(OPERATIONS), (
        "an operation is neither under the app base nor management: decide how the matrix covers it",
        sorted(set(OPERATIONS) - set(APP_OPERATIONS) - set(MANAGEMENT_OPERATIONS)))
    for method, path in APP_OPERATIONS:
        for parameter in parameters(method, path, "path"):
            assert parameter["name"] == "app_id" or parameter["name"] in PATH_OBJECTS, (
                f"{method} {path}: add path parameter {parameter['name']!r} to PATH_OBJECTS")
        for parameter in parameters(method, path, "query"):
            assert parameter["name"] in QUERY_REFERENCES or parameter["name"] in QUERY_VALUES, (
                f"{method} {path}: classify query parameter {parameter['name']!r} (QUERY_REFERENCES/QUERY_VALUES)")
        for parameter in parameters(method, path, "header"):
            assert parameter["name"] in HEADER_REFERENCES, (method, path, parameter["name"])
        assert has_body(method, path) == ((method, path) in BODIES), (
            f"{method} {path}: add its own and foreign bodies to BODIES")
    assert set(MANAGEMENT_OPERATIONS) == set(MANAGEMENT), "add the management operation to MANAGEMENT"


def _routes(routes: list[Any], prefix: str = "") -> list[tuple[str, bool]]:
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI's included router: its own routes, under its prefix
            found += _routes(included.routes, prefix + getattr(route.include_context, "prefix", ""))
        elif hasattr(route, "path"):
            found.append((prefix + route.path, bool(getattr(route, "include_in_schema", True))))
    return found


def test_every_route_is_documented_or_excluded_with_a_reason() -> None:
    routes = _routes(create_app(Settings(database_url="sqlite:///:memory:", admin_token=ADMIN_TOKEN)).routes)
    documented = {path for _, path in OPERATIONS}
    assert {path for path, shown in routes if shown} == documented
    assert {path for path, shown in routes if not shown} == set(EXCLUDED) | set(KEYED_ELSEWHERE)


# --- The matrix over every operation under the app base. ---


@pytest.mark.parametrize(("method", "path"), APP_OPERATIONS, ids=[f"{m} {p.removeprefix(APP_BASE)}" for m, p in
                                                                  APP_OPERATIONS])
async def test_app_routes_keep_another_apps_data_out(
    server: Any, api: httpx.AsyncClient, pair: tuple[Side, Side], method: str, path: str
) -> None:
    a, b = pair
    body_rules = BODIES.get((method, path))
    query_names = {p["name"] for p in parameters(method, path, "query")}
    idempotent = any(p["name"] == "Idempotency-Key" for p in parameters(method, path, "header"))
    # A real cursor from one of B's pages (B holds two sessions, and two messages in its first session).
    b.texts["cursor"] = await _cursor_of(api, b, path) if "cursor" in query_names else ""
    b.texts["after"] = ""
    if "after" in query_names:
        latest = await call(api, "GET", fill(APP_BASE + "/events/latest", b), b)
        b.texts["after"] = latest.json()["data"]["cursor"]

    # B first reuses a key that A will send too: A must never be answered with B's stored response.
    b_replayed: httpx.Response | None = None
    if idempotent and body_rules is not None:
        b_replayed = await call(api, method, fill(path, b), b, body_rules.own(b), {"Idempotency-Key": "shared-key"})
        assert b_replayed.status_code in (200, 201), b_replayed.text
        b.extra_ids.update(_ids_in(b_replayed.json()["data"]))
    b_before = await rows_of(server, b)
    own_body = body_rules.own(a) if body_rules else None

    # 1. A's key on B's path (B's objects or A's): 403 before anything else is looked at.
    for objects in (b, a):
        url = fill(path, b, objects)
        response = await call(api, method, url, a, own_body)
        assert response.status_code == 403 and response.json() == MISMATCH, (url, response.text)
        assert_no_trace_of(response, b, url)

    # 2. B's object ids under A's path: the 404 of a missing object, the same answer for both.
    for name, (kind, message) in PATH_OBJECTS.items():
        if "{" + name + "}" in path:
            url = fill(path, a).replace(a.ids[kind], b.ids[kind])
            theirs = await call(api, method, url, a, own_body)
            assert_error(theirs, 404, "not_found", message)
            missing = await call(api, method, fill(path, a).replace(a.ids[kind], new_id()), a, own_body)
            assert (missing.status_code, missing.json()) == (404, theirs.json())
            assert_no_trace_of(theirs, b, url)

    # 3. B's ids and texts in the query: nothing of B's comes back.
    for name in sorted(query_names & set(QUERY_REFERENCES)):
        value = QUERY_REFERENCES[name](b)
        url = fill(path, a) + "?" + urlencode({name: value})
        response = await call(api, method, url, a)
        assert response.status_code in (200, 400), (url, response.text)
        if response.status_code == 200 and name != "cursor" and isinstance(response.json()["data"], list):
            assert response.json()["data"] == [], (url, response.text)
        assert_no_trace_of(response, b, url + value)

    # 4. B's ids in the body: refused as missing, or matched inside A only.
    if body_rules is not None:
        for case in body_rules.foreign(a, b):
            response = await call(api, method, fill(path, a), a, case.body)
            assert response.status_code in case.statuses, (case.body, response.text)
            if case.message is not None:
                assert_error(response, 404, "not_found", case.message)
            assert_no_trace_of(response, b, json.dumps(case.body))
        if b_replayed is not None:
            response = await call(api, method, fill(path, a), a, body_rules.own(b), {"Idempotency-Key": "shared-key"})
            assert response.text != b_replayed.text
            assert_no_trace_of(response, b, json.dumps(body_rules.own(b)))

    # 5. A's own request is answered (so every refusal above is about ownership), with nothing of B's.
    response = await call(api, method, fill(path, a), a, own_body)
    assert response.status_code in (200, 201), response.text
    assert_no_trace_of(response, b, "")

    assert await rows_of(server, b) == b_before, "a request with A's key changed B's rows"


async def _cursor_of(api: httpx.AsyncClient, b: Side, path: str) -> str:
    response = await call(api, "GET", fill(path, b) + "?limit=1", b)
    cursor = response.json()["pagination"]["next_cursor"]
    assert cursor, response.text
    return str(cursor)


def _ids_in(data: dict[str, Any]) -> set[str]:
    """The ids a write answered with (session, consumer, messages, rating), to look for in A's answers."""
    found = {str(data[k]) for k in ("id", "session_id", "consumer_id") if data.get(k)}
    found.update(str(m) for m in data.get("message_ids", []))
    if isinstance(data.get("consumer"), dict):
        found.add(str(data["consumer"]["id"]))
    if data.get("token"):
        found.add(str(data["token"]))
    return found


# --- Management: the operator token's routes, which an app key never opens. ---


@pytest.fixture
async def admin_api(database_url: str) -> Any:
    app = create_app(Settings(database_url=database_url, rate_limit=100_000, admin_token=ADMIN_TOKEN))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield app, client
    await app.state.limiter.counter.close()
    await app.state.engine.dispose()


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# How each management operation is filled: (path for app A with B's key id where one is named, body).
MANAGEMENT: dict[tuple[str, str], Callable[[Side, Side], tuple[str, dict[str, Any] | None]]] = {
    ("POST", MANAGEMENT_BASE): lambda a, b: (MANAGEMENT_BASE, {"name": "made by the matrix"}),
    ("GET", MANAGEMENT_BASE + "/{app_id}/builder-keys"): lambda a, b: (f"{MANAGEMENT_BASE}/{a.app.id}/builder-keys",
                                                                       None),
    ("POST", MANAGEMENT_BASE + "/{app_id}/builder-keys"): lambda a, b: (
        f"{MANAGEMENT_BASE}/{a.app.id}/builder-keys", {"name": "second key"}),
    ("DELETE", MANAGEMENT_BASE + "/{app_id}/builder-keys/{key_id}"): lambda a, b: (
        f"{MANAGEMENT_BASE}/{a.app.id}/builder-keys/{b.app.key_id}", None),
}


@pytest.mark.parametrize(("method", "path"), MANAGEMENT_OPERATIONS, ids=[f"{m} {p}" for m, p in MANAGEMENT_OPERATIONS])
async def test_management_refuses_app_keys_and_keeps_apps_apart(
    admin_api: tuple[Any, httpx.AsyncClient], method: str, path: str
) -> None:
    server, client = admin_api
    sides = []
    for label in ("alpha", "bravo"):
        ids, texts, records = parallel_side_records(label)
        sides.append(Side(await make_app(server, records, scopes=WRITE_EVERYTHING, name=label.title()), label, ids,
                          texts))
    a, b = sides
    url, body = MANAGEMENT[(method, path)](a, b)
    b_before = await rows_of(server, b)

    for key_of in (a, b):  # an app key, even the write key of the app named in the path, is not the token
        response = await call(client, method, url, key_of, body)
        assert_error(response, 401, "unauthorized")
        assert_no_trace_of(response, b, url)

    response = await client.request(method, url, json=body, headers=ADMIN)
    if method == "DELETE":  # B's key named under A's path: not found there, and still working
        assert_error(response, 404, "not_found", "API key not found")
    else:
        assert response.status_code in (200, 201), response.text
    assert_no_trace_of(response, b, url)
    assert await rows_of(server, b) == b_before
    still = await call(client, "GET", fill(APP_BASE + "/sessions", b), b)
    assert still.status_code == 200 and b.ids["session"] in still.text
    if method == "POST" and path.endswith("builder-keys"):  # A's new key opens A's data, never B's
        new_key = {"Authorization": f"Bearer {response.json()['data']['rawKey']}"}
        assert (await client.get(fill(APP_BASE + "/sessions", b), headers=new_key)).json() == MISMATCH


# --- The routes the document does not list. ---


@pytest.mark.parametrize("path", sorted(EXCLUDED))
async def test_undocumented_routes_hold_no_apps_data(api: httpx.AsyncClient, pair: tuple[Side, Side],
                                                     path: str) -> None:
    a, b = pair
    for headers in ({}, a.app.headers):
        response = await api.get(path, headers=headers)
        assert response.status_code == 200, response.text
        for side in (a, b):
            assert_no_trace_of(response, side, "")
