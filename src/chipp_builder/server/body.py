"""Request bodies: read under the size cap, parsed with orjson, validated with pydantic, and one 400 that
names the offending field by its path (`messages[1].role must be one of …`). FastAPI never sees the body,
so it never answers 422."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from chipp_builder.errors import InvalidRequest
from chipp_builder.schemas.common import ErrorEnvelope

M = TypeVar("M", bound=BaseModel)

NOT_AN_OBJECT = "Request body must be a JSON object"
NOT_JSON = "Request body is not valid JSON"


async def read_json(request: Request) -> tuple[bytes, Any]:
    """The raw body and its parsed JSON value (the size cap is enforced by the middleware while reading)."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest(NOT_AN_OBJECT)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(NOT_JSON) from None
    if not isinstance(value, dict):
        raise InvalidRequest(NOT_AN_OBJECT)
    return raw, value


def field_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location written as the client spells it: `messages[1].tool_calls[0].status`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + part
    return path


def describe(error: Mapping[str, Any], rules: Mapping[str, str]) -> str:
    """The 400 message for one validation error: the field's path and what that field accepts.

    `rules` maps a field's path without indices (`messages.role`) to what it accepts
    (`one of user, assistant, system, tool`), so every way of getting a field wrong gives the same advice;
    `name.*` stands for any key of a mapping.
    """
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    path = field_path(loc)
    if not path:
        return str(error.get("msg")) if kind == "chipp_rule" else NOT_AN_OBJECT
    if isinstance(loc[-1], int) and kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path} must be an object"
    if kind == "missing":
        return f"{path} is required"
    if kind == "extra_forbidden":
        return f"{path} is not a known field"
    if kind == "chipp_rule":
        return f"{path} {error.get('msg')}"
    names = [part for part in loc if isinstance(part, str)]
    # `scopes.*` covers every entry of a mapping whose keys are data (`scopes.sessions`).
    rule = rules.get(".".join(names)) or rules.get(".".join([*names[:-1], "*"]))
    return f"{path} must be {rule}" if rule else f"{path}: {error.get('msg', 'is invalid')}"


def validate_body(
    model: type[M], raw: bytes, rules: Mapping[str, str], context: dict[str, Any] | None = None
) -> M:
    """Validate a JSON body strictly (a string is never an integer, a number never a string); the first
    error, in document order, becomes the 400."""
    try:
        return model.model_validate_json(raw, strict=True, context=context)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc.errors()[0], rules)) from None


# Documented on every route that takes a body, beside the app routes' common errors.
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorEnvelope,
        "description": "Idempotency-Key reused with another body (`idempotency_conflict`).",
    },
    413: {
        "model": ErrorEnvelope,
        "description": "Body over the size limit, 1 MiB by default (`payload_too_large`).",
    },
    507: {
        "model": ErrorEnvelope,
        "description": "The database is out of storage (`insufficient_storage`); nothing was written.",
    },
}

_IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1 to 255 printable ASCII characters. A retry with the same key and body within 24 hours "
    "returns the first response and writes nothing; the same key with another body is a 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]*$"},
}


# The models of the request bodies the routes read themselves, by component name: openapi.py puts each in the
# document's components (with the models it refers to), so generated clients get a named type per body.
BODY_MODELS: dict[str, type[BaseModel]] = {}


def openapi_body(model: type[BaseModel], description: str, *, idempotent: bool = False) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON request body that the route reads itself, as a reference to the
    model's named component (and the Idempotency-Key header, where the route honours it)."""
    name = model.__name__
    if BODY_MODELS.setdefault(name, model) is not model:
        raise ValueError(f"two request-body models are named {name}")
    extra: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }
    if idempotent:
        extra["parameters"] = [_IDEMPOTENCY_PARAMETER]
    return extra


def body_components() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of every request-body model, and of the models they use, by component name."""
    components: dict[str, dict[str, Any]] = {}
    for name, model in BODY_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for inner, definition in {**schema.pop("$defs", {}), name: schema}.items():
            if components.setdefault(inner, definition) != definition:
                raise ValueError(f"two request-body schemas are named {inner}")
    return components
