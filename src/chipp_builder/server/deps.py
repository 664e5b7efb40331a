"""Request dependencies: the reader, the write connection and the authentication pipeline
(key, rate limit, app match, scope, repeated parameters), in the order SPEC section 1 gives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.errors import APIError, AuthenticationError, Forbidden, InvalidRequest, RateLimited
from chipp_builder.server.auth import KeyIdentity, check_app, lookup_key, presented_key
from chipp_builder.server.compat import route_dependant
from chipp_builder.server.db.fastread import Reader
from chipp_builder.server.params import message_for


async def write_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """A connection to the primary, inside a transaction committed when the route returns normally."""
    async with request.app.state.engine.begin() as connection:
        yield connection


WriteConn = Annotated[AsyncConnection, Depends(write_connection)]


@lru_cache(maxsize=8)
def _networks(proxies: str) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(part.strip(), strict=False) for part in proxies.split(","))


def _from_trusted_proxy(peer: str, proxies: str | None) -> bool:
    """Whether the socket peer is the proxy (any peer when no proxies are configured: the header alone says
    that every request comes through one)."""
    if proxies is None:
        return True
    try:
        address = ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in _networks(proxies))


def client_address(request: Request) -> str:
    """The caller's address: from the configured header when the request comes from a trusted proxy, else the
    socket peer. No other forwarded header is read (docs/configuration.md)."""
    settings = request.app.state.settings
    peer = request.client.host if request.client else "unknown"
    header = settings.trusted_client_ip_header
    if header and _from_trusted_proxy(peer, settings.trusted_proxies):
        forwarded = request.headers.get(header)
        if forwarded:
            return forwarded.split(",")[0].strip()
    return peer


def _reject_repeated_parameters(request: Request) -> None:
    params = request.query_params
    if len(params) == len(params.multi_items()):
        return  # no name given twice (the usual case, checked in one step)
    dependant = route_dependant(request.scope.get("route"))
    if dependant is None:
        return
    for param in dependant.query_params:
        name = param.alias or param.name
        if len(params.getlist(name)) > 1:
            raise InvalidRequest(f"{name} must be given at most once; {message_for(name, request.scope['path'])}")


async def refuse_unauthenticated(request: Request, error: AuthenticationError) -> RateLimited | AuthenticationError:
    """Count a failed authentication against the caller's address, so the key space cannot be scanned quickly."""
    decision = await request.app.state.limiter.check("addr:" + client_address(request))
    if not decision.allowed:
        return RateLimited("Rate limit exceeded", retry_after=decision.retry_after)
    return error


async def raw_key(request: Request) -> str:
    """The caller's key, checked for shape and checksum before any database connection is taken."""
    try:
        return presented_key(request.headers.get("authorization"))
    except AuthenticationError as error:
        raise await refuse_unauthenticated(request, error) from None


RawKey = Annotated[str, Depends(raw_key)]


async def _identify(
    request: Request, key: str, reader: Reader, resource: str | None, level: str, any_of: tuple[str, ...] = ()
) -> KeyIdentity:
    try:
        identity = await lookup_key(reader, key)
    except AuthenticationError as error:
        raise await refuse_unauthenticated(request, error) from None
    if getattr(request.scope.get("route"), "conditional", False) and "if-none-match" in request.headers:
        # It may end in a 304, which the key's limit does not count: the route counts it once it knows
        # (routing.py, conditional.py). Refused before then, the request counts as any other.
        request.state.uncounted_key = identity.key_id
        try:
            _authorize(request, identity, resource, level, any_of)
        except APIError:
            await count_request(request, identity.key_id)
            raise
        request.state.identity = identity
        return identity
    await count_request(request, identity.key_id)
    _authorize(request, identity, resource, level, any_of)
    request.state.identity = identity  # the ETag of a conditional route names its scopes
    return identity


async def count_request(request: Request, key_id: UUID) -> None:
    """Count the request against its key's limit: a 429 past it, else the X-RateLimit-* headers to send."""
    decision = await request.app.state.limiter.check("key:" + str(key_id))
    if not decision.allowed:
        raise RateLimited("Rate limit exceeded", retry_after=decision.retry_after)
    request.state.ratelimit_headers = decision.headers()


def _authorize(
    request: Request, identity: KeyIdentity, resource: str | None, level: str, any_of: tuple[str, ...]
) -> None:
    """App match, scope, repeated parameters: the checks after the key is known."""
    check_app(identity, request.path_params.get("app_id", ""))
    if resource is not None:
        identity.require(resource, level)
    elif not any(identity.can_read(name) for name in any_of):
        raise Forbidden(f"API key lacks read access to all of {', '.join(any_of)}")
    _reject_repeated_parameters(request)


async def get_reader(request: Request) -> Reader:
    """The request's reader (db/fastread.py): the read database's, the replica when one is configured.

    async only so that FastAPI calls it in the loop: a plain function dependency costs a worker-thread hop.
    """
    reader: Reader = request.app.state.reader
    return reader


ReaderDep = Annotated[Reader, Depends(get_reader)]


def require(resource: str, level: str = "read") -> Callable[..., Coroutine[Any, Any, KeyIdentity]]:
    """A dependency that authenticates the caller for `level` access to `resource` of the path's app."""

    # The key parameter comes first: FastAPI resolves it, and refuses a bad header, before any database work.
    async def identity(request: Request, key: RawKey) -> KeyIdentity:
        return await _identify(request, key, request.app.state.reader, resource, level)

    identity.__name__ = f"require_{level}_{resource}"
    return identity


def require_any_read(resources: tuple[str, ...]) -> Callable[..., Coroutine[Any, Any, KeyIdentity]]:
    """A dependency that authenticates the caller for reading at least one of `resources` of the path's app
    (the event feed shows each key the events of the resources it can read)."""

    async def identity(request: Request, key: RawKey) -> KeyIdentity:
        return await _identify(request, key, request.app.state.reader, None, "read", resources)

    identity.__name__ = "require_read_any"
    return identity


def require_write(resource: str) -> Callable[..., Coroutine[Any, Any, KeyIdentity]]:
    """Authenticate for writing: the key is looked up on the primary (its reader), as the write will see it."""

    async def identity(request: Request, key: RawKey) -> KeyIdentity:
        return await _identify(request, key, request.app.state.primary_reader, resource, "write")

    identity.__name__ = f"require_write_{resource}"
    return identity
