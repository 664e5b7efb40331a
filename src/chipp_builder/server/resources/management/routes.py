"""HTTP management (SPEC section 10): create apps, and create, list and revoke an app's builder keys.

Guarded by the operator token CHIPP_ADMIN_TOKEN; without it the routes answer 404 as if absent. The
work is done by resources/apps/queries.py, the same functions the CLI calls.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from chipp_builder.errors import AuthenticationError, NotFound, RateLimited, Unauthorized
from chipp_builder.schemas.common import DataEnvelope, Timestamp, WireModel
from chipp_builder.schemas.keys import RESOURCES, ApiKey, App, ScopeLevel
from chipp_builder.server.auth import bearer_token
from chipp_builder.server.body import WRITE_ERRORS, openapi_body, read_json, validate_body
from chipp_builder.server.db.writelock import write_transaction
from chipp_builder.server.deps import WriteConn, client_address
from chipp_builder.server.params import NO_CONTROL_CHARACTERS, TIMESTAMP_HELP, parse_timestamp
from chipp_builder.server.resources.apps import queries
from chipp_builder.server.resources.common import as_uuid_or_none
from chipp_builder.server.responses import ERROR_RESPONSES, json_response

ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    code: ERROR_RESPONSES[code] for code in (400, 401, 404, 429, 500, 503)
}
router = APIRouter(prefix="/api/applications", tags=["management"], responses=ADMIN_ERRORS)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


async def require_admin(request: Request) -> None:
    """The operator check: 404 when management is off, 401 unless the bearer token is CHIPP_ADMIN_TOKEN.

    Compared as SHA-256 digests with compare_digest, so the time taken reveals neither the token's
    content nor its length. Failures are rate limited per client address, as failed API keys are.
    """
    expected = request.app.state.settings.admin_token
    if not expected:
        raise NotFound("Not found")
    try:
        given = bearer_token(request.headers.get("authorization"))
        if not hmac.compare_digest(_digest(given), _digest(expected)):
            raise Unauthorized("Invalid admin token")
    except AuthenticationError:
        decision = await request.app.state.limiter.check("addr:" + client_address(request))
        if not decision.allowed:
            raise RateLimited("Rate limit exceeded", retry_after=decision.retry_after) from None
        raise


Admin = Depends(require_admin)
AppIdText = Annotated[str, Path(description="The application's id (a UUID).")]
KeyIdText = Annotated[str, Path(description="The key's id (a UUID).")]


def _timestamp(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    return parse_timestamp(value)


class AppCreate(BaseModel):
    """Body of POST /api/applications."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_CONTROL_CHARACTERS)]


class KeyCreate(BaseModel):
    """Body of POST /api/applications/{appId}/builder-keys: `read` on every resource not given a level."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_CONTROL_CHARACTERS)]
    # Resources and levels are checked by parse_scopes, whose messages name the resource and the levels.
    scopes: Annotated[
        dict[str, str] | None,
        # Documented for what parse_scopes accepts, whose 400s name the resource or the levels.
        Field(json_schema_extra={
            "propertyNames": {"enum": list(RESOURCES)},
            "additionalProperties": {"enum": [level.value for level in ScopeLevel]},
        }),
    ] = None
    expires_at: Annotated[datetime | None, BeforeValidator(_timestamp)] = None


class KeyCreated(WireModel):
    """A key just created, with `rawKey`: the only time the raw key is ever shown."""

    id: UUID
    name: str
    prefix: str
    scopes: dict[str, ScopeLevel]
    created_at: Timestamp
    expires_at: Timestamp | None
    rawKey: str  # noqa: N815 - the management API's documented field name


APP_RULES = {"name": "text of 1 to 200 characters"}
KEY_RULES = {
    "name": "text of 1 to 200 characters",
    "scopes": "an object from resource to level (none, read or write)",
    "scopes.*": "one of none, read, write",
    "expires_at": f"{TIMESTAMP_HELP}, in the future",
}


def _app_id(text: str) -> Any:
    app_id = as_uuid_or_none(text)
    if app_id is None:
        raise NotFound("Application not found")
    return app_id


@router.post(
    "",
    status_code=201,
    dependencies=[Admin],
    response_model=DataEnvelope[App],
    responses={413: WRITE_ERRORS[413]},
    openapi_extra=openapi_body(AppCreate, "The new application's name."),
)
async def create_application(request: Request, db: WriteConn) -> Response:
    """Create an application."""
    raw, _ = await read_json(request)
    body = validate_body(AppCreate, raw, APP_RULES)
    async with write_transaction(db):
        created = await queries.create_app(db, body.name)
    return json_response({"data": created}, status_code=201)


@router.post(
    "/{app_id}/builder-keys",
    status_code=201,
    dependencies=[Admin],
    response_model=DataEnvelope[KeyCreated],
    responses={413: WRITE_ERRORS[413]},
    openapi_extra=openapi_body(KeyCreate, "The key's name, and optionally its scopes and expiry."),
)
async def create_builder_key(app_id: AppIdText, request: Request, db: WriteConn) -> Response:
    """Create a builder API key; the response carries `rawKey`, shown this once only."""
    target = _app_id(app_id)
    raw, _ = await read_json(request)
    body = validate_body(KeyCreate, raw, KEY_RULES)
    async with write_transaction(db):
        created = await queries.create_key(db, target, body.name, body.scopes, body.expires_at)
    fields = ("id", "name", "prefix", "scopes", "created_at", "expires_at", "rawKey")
    return json_response({"data": {name: created[name] for name in fields}}, status_code=201)


@router.get("/{app_id}/builder-keys", dependencies=[Admin], response_model=DataEnvelope[list[ApiKey]])
async def list_builder_keys(app_id: AppIdText, db: WriteConn) -> Response:
    """List an application's keys, oldest first, revoked ones with their revoked_at; never raw keys."""
    # Read from the primary: a key created a moment ago must be listed.
    return json_response({"data": await queries.list_keys(db, _app_id(app_id))})


@router.delete(
    "/{app_id}/builder-keys/{key_id}",
    dependencies=[Admin],
    response_model=DataEnvelope[ApiKey],
    responses={404: ERROR_RESPONSES[404]},
)
async def revoke_builder_key(app_id: AppIdText, key_id: KeyIdText, db: WriteConn) -> Response:
    """Revoke a key: it stops working on the next request, on every worker (keys are not cached)."""
    target = _app_id(app_id)
    key_uuid = as_uuid_or_none(key_id)
    async with write_transaction(db):
        await queries.get_app(db, target)
        if key_uuid is None:
            raise NotFound("API key not found")
        revoked = await queries.revoke_key(db, key_uuid, target)
    return json_response({"data": revoked})
