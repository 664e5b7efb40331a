"""Idempotency-Key for write endpoints: a retry with the same key and JSON body within 24 hours gets the
first response back and writes nothing; the same key with another body is a 409.

How it stays exact under concurrency: the key's row is inserted at the start of the write's own
transaction and filled with the response at its end, so it commits or rolls back with the write (only
2xx responses are ever stored; a failed request leaves no trace and may be retried with its key).
A second request with the same key meets the first one's uncommitted row: on PostgreSQL its insert
waits on the unique index until the first commits (then it replays) or rolls back (then it does the
work itself); on SQLite writers already run one at a time. Expired rows are treated as absent and
purged every few minutes by whichever write comes along.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from fastapi import Request, Response
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.errors import IdempotencyConflict, InvalidRequest
from chipp_builder.schemas.common import utc_now
from chipp_builder.server.db.tables import idempotency_key
from chipp_builder.server.db.writelock import write_transaction
from chipp_builder.server.responses import dumps

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL = timedelta(hours=24)
PURGE_INTERVAL_SECONDS = 300.0
_KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first response to a key."""

    status: int
    body: bytes


def read_key(request: Request) -> str | None:
    """The request's Idempotency-Key, or None; a 400 unless it is 1 to 255 printable ASCII characters."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1 or _KEY_RE.fullmatch(values[0]) is None:
        raise InvalidRequest(f"{HEADER} must be one value of 1 to 255 printable ASCII characters")
    return values[0]


def fingerprint(endpoint: str, body: Any) -> bytes:
    """What a retry must repeat: the endpoint and the body as a JSON value (key order and spacing aside)."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(endpoint.encode() + b"\n" + canonical).digest()


def _insert(db: AsyncConnection) -> Any:
    return (postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert)(idempotency_key)


async def claim(
    db: AsyncConnection, api_key_id: UUID, key: str, digest: bytes, now: datetime
) -> StoredResponse | None:
    """Reserve the key for this transaction's write (None), or return the response it already has.

    Raises the 409 when the key was used with another request.
    """
    mine = (idempotency_key.c.api_key_id == api_key_id, idempotency_key.c.key == key)
    # One statement: insert the key, or take over an expired row of it; a live row is left alone.
    insert = _insert(db).values(
        api_key_id=api_key_id, key=key, fingerprint=digest, created_at=now, expires_at=now + TTL
    )
    fresh = {
        "fingerprint": digest,
        "status_code": None,
        "response_body": None,
        "created_at": now,
        "expires_at": now + TTL,
    }
    inserted = (
        await db.execute(
            insert.on_conflict_do_update(
                index_elements=["api_key_id", "key"], set_=fresh, where=idempotency_key.c.expires_at <= now
            ).returning(idempotency_key.c.key)
        )
    ).first()
    if inserted is not None:
        return None
    row = (
        await db.execute(
            select(
                idempotency_key.c.fingerprint, idempotency_key.c.status_code, idempotency_key.c.response_body
            ).where(*mine)
        )
    ).one()
    if bytes(row.fingerprint) != digest:
        raise IdempotencyConflict(f"{HEADER} was already used with a different request")
    return StoredResponse(row.status_code, bytes(row.response_body))


async def store(db: AsyncConnection, api_key_id: UUID, key: str, response: StoredResponse) -> None:
    """Record the response to a claimed key (in the same transaction as the write)."""
    await db.execute(
        update(idempotency_key)
        .where(idempotency_key.c.api_key_id == api_key_id, idempotency_key.c.key == key)
        .values(status_code=response.status, response_body=response.body)
    )


async def purge_expired(db: AsyncConnection, now: datetime) -> int:
    """Delete every expired key; how many went."""
    result = await db.execute(delete(idempotency_key).where(idempotency_key.c.expires_at <= now))
    return int(result.rowcount or 0)


async def _purge_now_and_then(db: AsyncConnection, state: Any, now: datetime) -> None:
    last = getattr(state, "idempotency_purged_at", None)
    if last is None or time.monotonic() - last >= PURGE_INTERVAL_SECONDS:
        state.idempotency_purged_at = time.monotonic()
        await purge_expired(db, now)


Work = Callable[[], Awaitable[tuple[int, Any]]]


async def idempotent_write(
    request: Request, db: AsyncConnection, api_key_id: UUID, endpoint: str, body: Any, work: Work
) -> Response:
    """Run a write in the request's transaction under its Idempotency-Key (when it has one), commit, and
    only then answer, so an acknowledged write is durable.

    `work` returns (status, payload); the payload is rendered once and those exact bytes are stored
    and sent, so a replay is byte-for-byte the first response.
    """
    key = read_key(request)
    async with write_transaction(db):
        now = utc_now()
        if key is not None:
            stored = await claim(db, api_key_id, key, fingerprint(endpoint, body), now)
            if stored is not None:
                return Response(
                    stored.body,
                    status_code=stored.status,
                    media_type="application/json",
                    headers={REPLAYED_HEADER: "true"},
                )
        status, payload = await work()
        response = StoredResponse(status, dumps(payload))
        if key is not None:
            await store(db, api_key_id, key, response)
        await _purge_now_and_then(db, request.app.state, now)
    return Response(response.body, status_code=response.status, media_type="application/json")
