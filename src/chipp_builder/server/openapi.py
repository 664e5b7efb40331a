"""The OpenAPI document, cleaned to say what the server really does: no 422s, plain optional parameters,
bearer authentication."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi


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


def install_openapi(app: FastAPI) -> None:
    """Replace app.openapi with a cached generator that post-processes FastAPI's document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path_item in doc.get("paths", {}).values():
            for operation in path_item.values():
                # Validation failures are rendered as 400 invalid_request, never FastAPI's 422.
                operation.get("responses", {}).pop("422", None)
                for parameter in operation.get("parameters", []):
                    parameter["schema"] = _without_null(parameter.get("schema", {}))
                if any(p.get("name") == "app_id" for p in operation.get("parameters", [])):
                    operation["security"] = [{"bearerAuth": []}]
        schemas = doc.get("components", {}).get("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        doc.setdefault("components", {})["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key: `chipp_` + 32 characters."}
        }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
