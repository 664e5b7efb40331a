"""API keys: their format and checksum, hashing, lookup by hash, and the scope check."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select

from chipp_builder.errors import Expired, Forbidden, Unauthorized
from chipp_builder.schemas.common import utc_now
from chipp_builder.schemas.keys import RESOURCES
from chipp_builder.server.db.fastread import Reader, ReadQuery
from chipp_builder.server.db.tables import api_key

KEY_PREFIX = "chipp_"
_ALPHABET = string.digits + string.ascii_lowercase  # base 36, digits first
_RANDOM_LENGTH = 26
_CHECKSUM_LENGTH = 6
_KEY_RE = re.compile(r"chipp_[a-z0-9]{32}")
_BEARER_RE = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+)\s*")
LEVELS = {"none": 0, "read": 1, "write": 2}


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode("ascii")) % 36**_CHECKSUM_LENGTH
    digits = []
    for _ in range(_CHECKSUM_LENGTH):
        value, rest = divmod(value, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def generate_key() -> str:
    """A new raw key: `chipp_`, 26 CSPRNG characters, then their 6-character CRC32 checksum."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return KEY_PREFIX + body + _checksum(body)


def is_well_formed(raw_key: str) -> bool:
    """Whether a token has the key format and a correct checksum (no database needed)."""
    if _KEY_RE.fullmatch(raw_key) is None:
        return False
    body = raw_key[len(KEY_PREFIX) : len(KEY_PREFIX) + _RANDOM_LENGTH]
    return hmac.compare_digest(_checksum(body), raw_key[-_CHECKSUM_LENGTH:])


def hash_key(raw_key: str) -> bytes:
    """The stored form of a key: SHA-256 of the whole key (keys are high-entropy, so no salt is needed)."""
    return hashlib.sha256(raw_key.encode("ascii")).digest()


def display_prefix(raw_key: str) -> str:
    """The part of a key safe to show: its first 10 characters."""
    return raw_key[:10]


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header, or the 401 for a missing or malformed header."""
    if not authorization:
        raise Unauthorized("Missing or invalid Authorization header")
    match = _BEARER_RE.fullmatch(authorization)
    if match is None:
        raise Unauthorized("Missing or invalid Authorization header")
    return match.group(1)


def full_scopes(requested: dict[str, str] | None = None) -> dict[str, str]:
    """A key's scopes: `read` on every resource not given a level."""
    scopes = {resource: "read" for resource in RESOURCES}
    scopes.update(requested or {})
    return scopes


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """Who is calling: the key and the app it belongs to."""

    key_id: UUID
    app_id: UUID
    scopes: dict[str, str]

    def require(self, resource: str, level: str = "read") -> None:
        """Raise the 403 when this key lacks `level` on `resource`."""
        if LEVELS.get(self.scopes.get(resource, "none"), 0) < LEVELS[level]:
            raise Forbidden(f"API key lacks {level} access to {resource}")

    def can_read(self, resource: str) -> bool:
        """Whether this key may read `resource`."""
        return LEVELS.get(self.scopes.get(resource, "none"), 0) >= LEVELS["read"]


def presented_key(authorization: str | None) -> str:
    """The raw key of an Authorization header, checked without the database: shape, then checksum."""
    raw_key = bearer_token(authorization)
    if _KEY_RE.fullmatch(raw_key) is None:
        raise Unauthorized("Invalid API key format")
    if not is_well_formed(raw_key):
        # A mistyped or made-up key of the right shape: refused before any lookup, as an unknown key.
        raise Unauthorized("Invalid API key")
    return raw_key


# Compiled once (db/fastread.py), with Python values (UUIDs, an aware expiry): every request starts with it.
_KEY_BY_HASH = ReadQuery(
    select(api_key.c.id, api_key.c.app_id, api_key.c.scopes, api_key.c.key_hash, api_key.c.expires_at,
           api_key.c.revoked_at).where(api_key.c.key_hash == bindparam("digest")),
    wire=False,
    on_loop=True,
)


async def lookup_key(reader: Reader, raw_key: str, now: datetime | None = None) -> KeyIdentity:
    """Resolve a well-formed raw key to its identity: one indexed lookup by hash; 401 unknown, revoked, expired.

    GETs pass the request's reader (the replica when one is configured), writes the primary's.
    """
    digest = hash_key(raw_key)
    found = await reader.fetch(_KEY_BY_HASH, digest=digest)
    row: dict[str, Any] | None = found[0] if found else None
    # The lookup is by an index on the hash; compare_digest makes the final check constant-time as well.
    if row is None or not hmac.compare_digest(row["key_hash"], digest) or row["revoked_at"] is not None:
        raise Unauthorized("Invalid API key")
    if row["expires_at"] is not None and row["expires_at"] <= (now or utc_now()):
        raise Expired("API key has expired")
    return KeyIdentity(key_id=row["id"], app_id=row["app_id"], scopes=_as_scopes(row["scopes"]))


def _as_scopes(value: Any) -> dict[str, str]:
    return dict(value) if isinstance(value, dict) else full_scopes()


def check_app(identity: KeyIdentity, path_app_id: str) -> None:
    """The 403 unless the path's app id is the key's own app (not a UUID or another app: the same answer)."""
    try:
        if UUID(path_app_id) == identity.app_id:
            return
    except ValueError:
        pass
    raise Forbidden("API key does not match application")
