"""Conditional GETs of the app API (SPEC section 12): the weak ETag of a request, worked out before the page's
query, and the 304 that answers an `If-None-Match` naming it.

Why the ETag can be known before the query: every write of an app's domain data records events in its
transaction (server/writes/), so the app's feed head (its newest event's position) moves whenever any page
of the app could change. A page is therefore fixed by (head, the canonical request, the key's scopes): the
path, each query parameter in the route's order with its default filled in (`?limit=25` and no limit are the
same page), and what the key may see. Checking `If-None-Match` costs one indexed point read of the head,
never the page's query. The head is read per request from the database every worker shares, so no worker
answers 304 for data another one changed. A head read before a write that commits before the page's query
only makes the ETag older than the page: the next conditional request then misses and gets a 200, never a
stale 304.

A 304 does not count against the key's limit; conditional requests that end in a 304 have their own ceiling
of ten times it (ratelimit.RateLimiter.check_conditional)."""

from __future__ import annotations

import enum
from datetime import datetime
from hashlib import blake2b
from typing import Any
from uuid import UUID

from fastapi import Request
from sqlalchemy import BigInteger, bindparam, func, select
from starlette.responses import Response

from chipp_builder.errors import RateLimited
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.db.fastread import Reader, ReadQuery
from chipp_builder.server.db.tables import event

CACHE_CONTROL = b"private, no-cache"
VARY = b"Authorization, Accept-Encoding"

_HEAD = ReadQuery(
    select(func.coalesce(func.max(event.c.position), 0, type_=BigInteger).label("head")).where(
        event.c.app_id == bindparam("app_id")
    ),
    on_loop=True,  # one index range (the event table's primary key starts with the app)
)


async def feed_head(reader: Reader, app_id: UUID) -> int:
    """The app's newest event position (0 before its first write): its data version."""
    (row,) = await reader.fetch(_HEAD, app_id=app_id)
    return int(row["head"])


def _text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)


def etag_for(head: int, path: str, query: list[tuple[str, Any]], identity: KeyIdentity) -> bytes:
    """The weak ETag of a page: a digest of the head, the canonical request and the key's scopes."""
    scopes = ",".join(f"{name}={level}" for name, level in sorted(identity.scopes.items()))
    canonical = "\n".join([str(head), path, "&".join(f"{name}={_text(value)}" for name, value in query), scopes])
    return b'W/"' + blake2b(canonical.encode(), digest_size=12).hexdigest().encode() + b'"'


STAR = "*"


def matches(if_none_match: str, etag: bytes) -> bool | str:
    """Weak comparison (RFC 9110 13.1.2) of `etag` with an If-None-Match value, a list, with or without W/:
    True when it names the ETag, STAR when it names none but holds `*` (which matches only a page that exists:
    the route must answer 200 for it to be a 304), else False."""
    opaque = etag[2:].decode()
    star = False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == STAR:
            star = True
        elif candidate.removeprefix("W/") == opaque:
            return True
    return STAR if star else False


def cache_headers(etag: bytes) -> list[tuple[bytes, bytes]]:
    """The validator and caching headers of a conditional page, the same on its 200 and its 304."""
    return [(b"etag", etag), (b"cache-control", CACHE_CONTROL), (b"vary", VARY)]


async def not_modified(request: Request, key_id: UUID, etag: bytes) -> Response:
    """The 304: counted against the conditional ceiling, not the key's limit (whose headers it shows unchanged)."""
    decision = await request.app.state.limiter.check_conditional("key:" + str(key_id))
    if not decision.allowed:
        raise RateLimited("Rate limit exceeded", retry_after=decision.retry_after)
    request.state.ratelimit_headers = decision.headers()
    response = Response(status_code=304)
    response.raw_headers.extend(cache_headers(etag))
    return response
