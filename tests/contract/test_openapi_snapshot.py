"""The OpenAPI document: equal to the committed snapshot (regenerate with UPDATE_SNAPSHOT=1), served with
its docs page, and saying what the server really does about parameters and errors."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings

SNAPSHOT = Path(__file__).with_name("openapi.json")
APP_PREFIX = "/api/v1/apps/{app_id}"

# The enum parameters and the values SPEC sections 2-8 list for them.
ENUMS = {
    "source": ["APP", "API", "WHATSAPP", "SLACK", "EMAIL", "VOICE", "WIDGET", "ACP"],
    "role": ["user", "assistant", "system", "tool"],
    "rating": [-1, 0, 1],
    "has_email": ["true", "false"],
    "status": ["pending", "processing", "completed", "failed", "deleting"],
    "type": ["file", "url", "google_drive", "notion", "text", "qa", "sitemap", "youtube", "confluence"],
    "memory_type": ["preference", "background", "fact", "insight", "topic", "query"],
    "memory_layer": ["episodic", "fact"],
    "group_by": ["day", "week", "month"],
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The app over a database it never opens: the document and the docs page need none."""
    server = create_app(Settings(database_url="sqlite:///:memory:"))
    transport = httpx.ASGITransport(app=server, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await server.state.engine.dispose()


@pytest.fixture
async def doc(client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in doc["paths"].items() for method, op in item.items()]


def query_parameters(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", p["name"], p)
        for method, path, op in operations(doc)
        for p in op.get("parameters", [])
        if p["in"] == "query"
    ]


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


async def test_openapi_matches_the_committed_snapshot(doc):
    rendered = json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(rendered, encoding="utf-8")
    assert SNAPSHOT.exists(), "no snapshot yet: run this test with UPDATE_SNAPSHOT=1 and commit openapi.json"
    assert json.loads(SNAPSHOT.read_text(encoding="utf-8")) == doc, (
        "the OpenAPI document changed: review the difference, then run with UPDATE_SNAPSHOT=1"
    )


async def test_the_docs_page_is_html(client):
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text
    # Everything the page loads comes from this server: no CDN, so it works with no internet.
    loaded = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert loaded and all(url.startswith("/") for url in loaded), loaded
    assert "https://" not in response.text and "http://" not in response.text
    assert '"validatorUrl": null' in response.text  # no badge from the public validator either
    for url in loaded:
        if url.startswith("/docs/assets/"):
            asset = await client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url


async def test_every_query_parameter_has_a_description(doc):
    missing = [(op, name) for op, name, p in query_parameters(doc) if not p.get("description")]
    assert missing == []


async def test_limit_is_documented_from_1_to_100_with_default_25(doc):
    limits = [p["schema"] for path, name, p in query_parameters(doc)
              if name == "limit" and not path.endswith("/events")]
    assert len(limits) >= 6
    assert all((s.get("minimum"), s.get("maximum"), s.get("default")) == (1, 100, 25) for s in limits)
    # The event feed pages up to 500 events, 100 by default (SPEC section 11).
    (feed,) = [p["schema"] for path, name, p in query_parameters(doc) if name == "limit" and path.endswith("/events")]
    assert (feed.get("minimum"), feed.get("maximum"), feed.get("default")) == (1, 500, 100)


async def test_offset_is_documented_from_0_to_1000000(doc):
    offsets = [p["schema"] for _, name, p in query_parameters(doc) if name == "offset"]
    assert len(offsets) >= 4
    assert all((s.get("minimum"), s.get("maximum"), s.get("default")) == (0, 1_000_000, 0) for s in offsets)


async def test_search_is_documented_as_at_most_200_characters(doc):
    searches = [p["schema"] for _, name, p in query_parameters(doc) if name == "search"]
    assert len(searches) == 2
    assert all(s.get("maxLength") == 200 for s in searches)


async def test_enum_parameters_list_exactly_the_spec_values(doc):
    wrong = []
    for op, name, p in query_parameters(doc):
        if name in ENUMS and resolve(doc, p["schema"]).get("enum") != ENUMS[name]:
            wrong.append((op, name, resolve(doc, p["schema"]).get("enum")))
    assert wrong == []


async def test_timestamp_parameters_are_documented_as_date_times(doc):
    stamps = [
        p["schema"]
        for _, name, p in query_parameters(doc)
        if name.endswith("_after") or name.endswith("_before")
    ]
    assert len(stamps) >= 10
    assert all(s.get("format") == "date-time" for s in stamps)


async def test_no_operation_documents_a_422(doc):
    assert [(m, p) for m, p, op in operations(doc) if "422" in op["responses"]] == []


async def test_every_app_route_documents_its_errors_with_the_envelope(doc):
    wrong = []
    for method, path, op in operations(doc):
        if not path.startswith(APP_PREFIX):
            continue
        for status in ("400", "401", "403", "429"):
            schema = (
                op["responses"].get(status, {}).get("content", {}).get("application/json", {}).get("schema")
            )
            if schema != {"$ref": "#/components/schemas/ErrorEnvelope"}:
                wrong.append((method, path, status))
    assert wrong == []


async def test_every_operation_has_a_description(doc):
    assert [(m, p) for m, p, op in operations(doc) if not op.get("description")] == []


async def test_the_error_envelope_schema_is_code_and_message(doc):
    schemas = doc["components"]["schemas"]
    assert list(schemas["ErrorEnvelope"]["properties"]) == ["error"]
    assert list(schemas["ErrorBody"]["properties"]) == ["code", "message"]


OPERATION_IDS = {
    "create_application", "list_builder_keys", "create_builder_key", "revoke_builder_key", "get_token_usage",
    "get_usage", "list_consumers", "auth_consumer", "get_consumer", "log_conversation", "list_feedback",
    "create_feedback", "list_knowledge_sources", "list_memories", "list_sessions", "get_session", "list_messages",
    "list_tags", "list_events", "latest_event", "delete_session", "erase_consumer",
}


async def test_operation_ids_are_the_route_functions_names(doc):
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    assert set(ids) == OPERATION_IDS


async def test_every_request_body_is_a_named_component(doc):
    bodies = {
        op["operationId"]: op["requestBody"]["content"]["application/json"]["schema"]
        for _, _, op in operations(doc)
        if "requestBody" in op
    }
    assert len(bodies) == 5
    for schema in bodies.values():
        name = schema["$ref"].removeprefix("#/components/schemas/")
        assert set(schema) == {"$ref"} and doc["components"]["schemas"][name]["type"] == "object"
    assert bodies["create_feedback"] == {"$ref": "#/components/schemas/FeedbackCreate"}
    # Every reference anywhere in the document resolves.
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in doc["components"]["schemas"], ref


async def test_ratings_are_integer_enums(doc):
    schemas = doc["components"]["schemas"]
    for name in ("Feedback", "MessageFeedback", "FeedbackCreate"):
        assert schemas[name]["properties"]["rating"]["enum"] == [-1, 0, 1], name
        assert schemas[name]["properties"]["rating"]["type"] == "integer", name
    (parameter,) = [p for op, name, p in query_parameters(doc) if name == "rating"]
    assert parameter["schema"]["type"] == "integer"


def _timestamp_properties(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for model, schema in doc["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            if field.endswith("_at") or field == "period":
                # Besides null, a request body's optional timestamp accepts "" (read as absent).
                branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null" and b != {"enum": [""]}]
                found.extend((model, field, branch) for branch in branches)
    return found


async def test_every_timestamp_is_a_date_time(doc):
    stamps = _timestamp_properties(doc)
    assert len(stamps) >= 25
    assert [(m, f) for m, f, s in stamps if (s.get("type"), s.get("format")) != ("string", "date-time")] == []


async def test_a_tool_result_is_a_string(doc):
    assert doc["components"]["schemas"]["ToolResult"]["properties"]["result"]["type"] == "string"


async def test_a_ratings_consumer_says_when_it_is_null(doc):
    for name in ("Feedback", "MessageFeedback"):
        assert "Null only when" in doc["components"]["schemas"][name]["properties"]["consumer_id"]["description"]


async def test_every_401_documents_the_bearer_challenge(doc):
    for _, _, op in operations(doc):
        if "401" in op["responses"]:
            assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["schema"]["enum"] == ["Bearer"]
