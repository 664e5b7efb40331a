"""SQL for apps and API keys. The CLI and the HTTP management routes both call these; there is no second copy."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.errors import InvalidRequest, NotFound
from chipp_builder.schemas.common import utc_now
from chipp_builder.schemas.keys import RESOURCES, ScopeLevel
from chipp_builder.server.auth import display_prefix, full_scopes, generate_key, hash_key
from chipp_builder.server.db.tables import api_key, app


def parse_scopes(pairs: list[str] | dict[str, str] | None) -> dict[str, str]:
    """Validate `RESOURCE=LEVEL` pairs (or a mapping) into a full scope map: `read` where none is given."""
    requested: dict[str, str] = {}
    if isinstance(pairs, dict):
        items = list(pairs.items())
    else:
        items = [(p.partition("=")[0], p.partition("=")[2]) for p in pairs or []]
    levels = [level.value for level in ScopeLevel]
    for resource, level in items:
        if resource not in RESOURCES:
            raise InvalidRequest(f"Unknown scope resource {resource!r}: use one of {', '.join(RESOURCES)}")
        if level not in levels:
            raise InvalidRequest(f"Scope level for {resource} must be one of none, read, write")
        requested[resource] = level
    return full_scopes(requested)


def _app_row(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "created_at": row.created_at}


def _key_row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "app_id": row.app_id, "name": row.name, "prefix": row.prefix, "scopes": dict(row.scopes),
        "created_at": row.created_at, "expires_at": row.expires_at, "revoked_at": row.revoked_at,
    }


def _check_name(name: str) -> str:
    name = name.strip()
    if not (1 <= len(name) <= 200):
        raise InvalidRequest("name must be 1 to 200 characters")
    return name


async def create_app(db: AsyncConnection, name: str, app_id: UUID | None = None) -> dict[str, Any]:
    """Create an app and return it."""
    row = {"id": app_id or uuid.uuid4(), "name": _check_name(name), "created_at": utc_now()}
    await db.execute(app.insert().values(**row))
    return row


async def list_apps(db: AsyncConnection) -> list[dict[str, Any]]:
    """Every app, oldest first."""
    rows = (await db.execute(select(app).order_by(app.c.created_at, app.c.id))).all()
    return [_app_row(r) for r in rows]


async def get_app(db: AsyncConnection, app_id: UUID) -> dict[str, Any]:
    """One app, or 404."""
    row = (await db.execute(select(app).where(app.c.id == app_id))).first()
    if row is None:
        raise NotFound("Application not found")
    return _app_row(row)


async def create_key(
    db: AsyncConnection,
    app_id: UUID,
    name: str,
    scopes: dict[str, str] | list[str] | None = None,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """Create a key for an app; the result carries `rawKey`, the only time the raw key exists."""
    await get_app(db, app_id)
    raw_key = generate_key()
    now = utc_now()
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("expires_at must be in the future")
    row = {
        "id": uuid.uuid4(), "app_id": app_id, "name": _check_name(name), "prefix": display_prefix(raw_key),
        "key_hash": hash_key(raw_key), "scopes": parse_scopes(scopes), "created_at": now,
        "expires_at": expires_at, "revoked_at": None,
    }
    await db.execute(api_key.insert().values(**row))
    created = {k: v for k, v in row.items() if k != "key_hash"}
    created["rawKey"] = raw_key
    return created


async def list_keys(db: AsyncConnection, app_id: UUID) -> list[dict[str, Any]]:
    """An app's keys, oldest first, revoked ones included with their revoked_at; never raw keys."""
    await get_app(db, app_id)
    rows = (
        await db.execute(
            select(api_key).where(api_key.c.app_id == app_id).order_by(api_key.c.created_at, api_key.c.id)
        )
    ).all()
    return [_key_row(r) for r in rows]


async def revoke_key(db: AsyncConnection, key_id: UUID, app_id: UUID | None = None) -> dict[str, Any]:
    """Revoke a key (idempotent: revoking twice keeps the first time); 404 when unknown (or not this app's)."""
    query = select(api_key).where(api_key.c.id == key_id)
    if app_id is not None:
        query = query.where(api_key.c.app_id == app_id)
    row = (await db.execute(query)).first()
    if row is None:
        raise NotFound("API key not found")
    if row.revoked_at is None:
        await db.execute(update(api_key).where(api_key.c.id == key_id).values(revoked_at=utc_now()))
        row = (await db.execute(select(api_key).where(api_key.c.id == key_id))).first()
    return _key_row(row)
