"""Rendering: JSON bodies through orjson (timestamps as `…Z`, UUIDs as strings), and the error envelope."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from fastapi import Response

from chipp_builder.errors import APIError, InternalError
from chipp_builder.schemas.common import ErrorEnvelope

# OPT_NON_STR_KEYS: SQLAlchemy's RowMapping keys are `quoted_name` (a str subclass), which orjson otherwise
# refuses as dict keys.
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # asyncpg returns its own UUID subclass, which orjson (exact types only) does not serialize by itself.
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(body: Any) -> bytes:
    """Serialize a response body in the API's representation."""
    return orjson.dumps(body, option=_OPTIONS, default=_default)


class JSONBody(Response):
    """A JSON response rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(body: Any, status_code: int = 200) -> Response:
    """A JSON response with the body already in wire shape."""
    return Response(dumps(body), status_code=status_code, media_type="application/json")


# RFC 7235 and RFC 6750: a 401 names the scheme that would be accepted, so clients (and their auth
# libraries) know to send a bearer token. Every 401 comes through here: the API keys' and the operator token's.
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def error_response(error: APIError, headers: dict[str, str] | None = None) -> Response:
    """The one error envelope every non-2xx response uses (a 401 with its `WWW-Authenticate` challenge)."""
    if error.status == 401:
        headers = {**_CHALLENGE, **(headers or {})}
    return Response(dumps(error.to_body()), status_code=error.status, media_type="application/json",
                    headers=headers)


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": description}


# Documented on every app route (OpenAPI), so clients and the contract fuzzer know every status we send.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("Invalid request parameters (`invalid_request`)."),
    401: {
        **_doc("Missing, malformed, unknown, revoked (`unauthorized`) or expired (`expired`) API key."),
        "headers": {"WWW-Authenticate": {"description": "`Bearer`: the scheme to authenticate with.",
                                         "schema": {"type": "string", "enum": ["Bearer"]}}},
    },
    403: _doc("The key does not match the app, or lacks the scope (`forbidden`)."),
    404: _doc("Not found in this app (`not_found`)."),
    429: _doc("Rate limit exceeded (`rate_limited`); see `Retry-After`."),
    500: _doc("Server fault (`internal_error`)."),
    503: _doc("The database cannot be reached (`service_unavailable`)."),
}

__all__ = ["ERROR_RESPONSES", "InternalError", "JSONBody", "dumps", "error_response", "json_response"]
