"""The OpenAPI document, cleaned to say what the server really does: no 422s, plain optional parameters
that may be sent empty, integer enums as integers, bearer authentication; short operation ids and named
request bodies, for generated clients."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from chipp_builder.server.body import body_components


def operation_id(route: APIRoute) -> str:
    """A route's operation id: its function's name (`list_sessions`), which generated clients use as the
    method name (FastAPI's default appends the path and the method)."""
    return route.name


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` on a query parameter is just X: a query string cannot carry a null."""
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1:
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            merged.update(kept[0])
            return merged
    return schema


def _integer_enum(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter that accepts only the texts of integers (`rating`: `-1`, `0`, `1`) is an integer
    enum: a query string carries text, but a typed client should be able to pass the number."""
    values = schema.get("enum")
    if schema.get("type") == "string" and isinstance(values, list) and values and all(
        isinstance(value, str) and value.lstrip("-").isdigit() and str(int(value)) == value for value in values
    ):
        return {**schema, "type": "integer", "enum": [int(value) for value in values]}
    return schema


def _without_nones(node: Any) -> Any:
    """The schema without null-valued keys (`"default": null`), as FastAPI writes the rest of the document."""
    if isinstance(node, dict):
        return {key: _without_nones(value) for key, value in node.items() if value is not None}
    if isinstance(node, list):
        return [_without_nones(item) for item in node]
    return node


def install_openapi(app: FastAPI) -> None:
    """Replace app.openapi with a cached generator that post-processes FastAPI's document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        operation_ids: set[str] = set()
        for path_item in doc.get("paths", {}).values():
            for operation in path_item.values():
                if operation["operationId"] in operation_ids:
                    raise ValueError(f"two routes are named {operation['operationId']}: rename one function")
                operation_ids.add(operation["operationId"])
                # Validation failures are rendered as 400 invalid_request, never FastAPI's 422.
                operation.get("responses", {}).pop("422", None)
                for parameter in operation.get("parameters", []):
                    parameter["schema"] = _integer_enum(_without_null(parameter.get("schema", {})))
                    if parameter.get("in") == "query" and not parameter.get("required"):
                        # `name=` is read as absent (middleware.QueryAndHeaders), whatever the type.
                        parameter["allowEmptyValue"] = True
                if "management" in operation.get("tags", []):
                    # Management is guarded by the operator token, not by an app's API key.
                    operation["security"] = [{"adminToken": []}]
                elif any(p.get("name") == "app_id" for p in operation.get("parameters", [])):
                    operation["security"] = [{"bearerAuth": []}]
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        for name, schema in _without_nones(body_components()).items():
            # A body model may share a name with a response model only when the two schemas agree.
            if schemas.setdefault(name, schema) != schema:
                raise ValueError(f"request body {name} differs from the response schema of that name")
        doc["components"]["schemas"] = dict(sorted(schemas.items()))
        doc.setdefault("components", {})["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key: `chipp_` + 32 characters."},
            "adminToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "The operator token, CHIPP_ADMIN_TOKEN (management endpoints; off when it is unset).",
            },
        }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
