"""The OpenAPI document, cleaned to say what the server really does: no 422s, plain optional parameters
that may be sent empty, bearer authentication."""

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
                    if parameter.get("in") == "query" and not parameter.get("required"):
                        # `name=` is read as absent (middleware.QueryAndHeaders), whatever the type.
                        parameter["allowEmptyValue"] = True
                if "management" in operation.get("tags", []):
                    # Management is guarded by the operator token, not by an app's API key.
                    operation["security"] = [{"adminToken": []}]
                elif any(p.get("name") == "app_id" for p in operation.get("parameters", [])):
                    operation["security"] = [{"bearerAuth": []}]
        schemas = doc.get("components", {}).get("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
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
