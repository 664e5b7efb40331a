"""Consumer tokens: short-lived HS256 JWTs naming the app and the consumer, signed with a per-deployment
secret that is generated on first use and kept in the database (never a built-in default)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import server_secret

SECRET_NAME = "consumer_token_hs256"
ALGORITHM = "HS256"
ISSUER = "chipp-builder"
AUDIENCE = "chipp-builder:consumer"
_SECRET_BYTES = 32  # 256 bits, as RFC 7518 asks of an HS256 key


@dataclass(frozen=True, slots=True)
class ConsumerToken:
    """A signed token and when it stops being accepted."""

    token: str
    expires_at: datetime


async def load_signing_key(db: AsyncConnection) -> bytes:
    """The deployment's signing key, created in this transaction if there is none yet.

    Called inside the request's write transaction (no second connection, so no pool deadlock on a cold
    start); the caller caches the key only after that transaction commits, so a key that was rolled back
    is never used. Concurrent first calls agree: the loser of the insert reads the winner's key.
    """
    insert = (postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert)(server_secret)
    await db.execute(
        insert.values(
            name=SECRET_NAME, value=secrets.token_bytes(_SECRET_BYTES), created_at=datetime.now(UTC)
        ).on_conflict_do_nothing(index_elements=["name"])
    )
    row = (await db.execute(select(server_secret.c.value).where(server_secret.c.name == SECRET_NAME))).one()
    return bytes(row.value)


def issue(
    key: bytes, app_id: UUID, consumer_id: UUID, ttl_seconds: int, now: datetime | None = None
) -> ConsumerToken:
    """Sign a token for this app's consumer, valid for `ttl_seconds` from now."""
    issued = int((now or datetime.now(UTC)).timestamp())
    expires = issued + ttl_seconds
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(consumer_id),
        "app_id": str(app_id),
        "iat": issued,
        "exp": expires,
    }
    return ConsumerToken(jwt.encode(claims, key, algorithm=ALGORITHM), datetime.fromtimestamp(expires, UTC))


def verify(key: bytes, token: str, leeway: timedelta = timedelta(0)) -> dict[str, Any]:
    """The claims of a valid, unexpired token of ours; jwt.InvalidTokenError otherwise."""
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[ALGORITHM],
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=leeway,
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
    return claims
