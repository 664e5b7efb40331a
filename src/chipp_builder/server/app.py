"""create_app(settings): the wiring only: routers, middleware, error handlers and the lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from chipp_builder import __version__
from chipp_builder.errors import (
    APIError,
    InsufficientStorage,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UnexpectedStatus,
)
from chipp_builder.server.compat import build_included_routes
from chipp_builder.server.config import Settings
from chipp_builder.server.db.engine import DRIVER_ERRORS, is_disk_full, is_unavailable, make_engine
from chipp_builder.server.db.fastread import make_reader
from chipp_builder.server.docs_pages import install_docs
from chipp_builder.server.mcp_http import PATH as MCP_PATH
from chipp_builder.server.mcp_http import McpEndpoint
from chipp_builder.server.middleware import BodySizeLimit, Gzip, HeadAsGet, QueryAndHeaders
from chipp_builder.server.openapi import install_openapi, operation_id
from chipp_builder.server.params import message_for
from chipp_builder.server.ratelimit import MemoryCounter, RateLimiter, WindowCounter
from chipp_builder.server.resources import ROUTERS
from chipp_builder.server.response_cache import make_response_cache
from chipp_builder.server.responses import error_response
from chipp_builder.server.writes.events import prune_events

log = logging.getLogger("chipp_builder")

DESCRIPTION = """A self-hosted Builder API: read an AI chat app's sessions, messages, consumers, feedback,
tags, knowledge sources, memories and analytics. Every request carries `Authorization: Bearer chipp_…`;
every error is `{"error": {"code", "message"}}`."""


# What a browser page may read of a response (CHIPP_CORS_ORIGINS): the quota, the wait of a 429, the ETag.
CORS_EXPOSED = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After", "ETag")


def make_counter(settings: Settings) -> WindowCounter:
    """The rate-limit counter the settings ask for: Redis when configured, else this process's memory."""
    if settings.redis_url:
        from chipp_builder.server.ratelimit_redis import shared_counter

        return shared_counter(settings.redis_url, settings.redis_prefix)
    return MemoryCounter()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app for these settings (the environment's when none are given)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything alive now (modules, routes, compiled statements) lives as long as the process: freezing it
        # keeps the collector's full passes from walking it again and again under load (measured: about 10 %
        # more requests per second on the sessions page).
        async with app.state.mcp.running(app):
            gc.collect()
            gc.freeze()
            pruner = asyncio.create_task(_prune_forever(app.state.engine, settings.event_retention))
            yield
            pruner.cancel()
        await app.state.limiter.counter.close()
        await app.state.engine.dispose()  # closes the readers too

    app = FastAPI(
        title="chipp-builder Builder API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # One URL per resource: a trailing slash is a 404 envelope, not a 307 whose absolute Location would
        # name the scheme and host the server sees (http:// behind a TLS proxy) and lose the key on the way.
        redirect_slashes=False,
        # Operation ids are the route functions' names (`list_sessions`), unique across the app (openapi.py
        # checks), so generated clients get short method names.
        generate_unique_id_function=operation_id,
        # /docs is served with Swagger UI's files from this server (docs_pages.py), not FastAPI's CDN links.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    # Requests get the tight statement timeout too, so a silent database is a 503 within the setting.
    timeout = settings.db_timeout_seconds
    app.state.engine = make_engine(settings.database_url, timeout_seconds=timeout, statement_timeout_seconds=timeout)
    # Every read of a request goes through a reader (db/fastread.py), closed when the engine is disposed: GETs
    # through the read database's (the replica when one is configured), writes' key lookups the primary's.
    app.state.primary_reader = make_reader(app.state.engine, settings.database_url, timeout)
    app.state.reader = (
        make_reader(app.state.engine, settings.database_read_url, timeout)
        if settings.database_read_url
        else app.state.primary_reader
    )
    app.state.limiter = RateLimiter(make_counter(settings), settings.rate_limit)
    app.state.response_cache = make_response_cache(settings.response_cache_mb)
    for router in ROUTERS:
        app.include_router(router)
    build_included_routes(app.router.routes)  # an app GET route that cannot be planned fails here
    # /mcp: a plain ASGI route (not in the OpenAPI document), running from the lifespan above.
    app.state.mcp = McpEndpoint(settings.mcp_hosts)
    app.router.routes.append(Route(MCP_PATH, endpoint=app.state.mcp, include_in_schema=False))
    _install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    # Inside QueryAndHeaders, so a 413 carries the same security headers as every other response.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(QueryAndHeaders)
    # Outside QueryAndHeaders: gzip compresses the finished body, and a HEAD drops it only after compression,
    # so its headers are the GET's exactly.
    app.add_middleware(Gzip, minimum_size=1024)
    app.add_middleware(HeadAsGet, skip_paths=(MCP_PATH,))
    origins = settings.cors_origin_list
    if origins:
        # Outermost: a preflight is answered before anything else runs.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=[*CORS_EXPOSED],
            max_age=600,
        )
    return app


async def _prune_forever(engine: AsyncEngine, retention: timedelta) -> None:
    """Drop the feed's events older than the retention, every minute (or a quarter of a shorter retention);
    a failure is logged and tried again next time, never fatal to the server."""
    interval = min(60.0, max(retention.total_seconds() / 4, 0.25))
    while True:
        await asyncio.sleep(interval)
        try:
            await prune_events(engine, retention)
        except Exception:  # noqa: BLE001 (the database may be briefly unavailable; the next pass retries)
            log.warning("pruning the event feed failed; retrying in %.0f s", interval, exc_info=True)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_request: Request, exc: Exception) -> Any:
        assert isinstance(exc, APIError)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return error_response(exc, headers)

    async def on_http_error(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            path = request.url.path
            if len(path) > 1 and path.endswith("/"):
                return error_response(NotFound(f"Not found; paths have no trailing slash: {path.rstrip('/')}"))
            return error_response(NotFound("Not found"))
        if exc.status_code == 405:
            return error_response(MethodNotAllowed("Method not allowed"),
                                  {"Allow": (exc.headers or {}).get("Allow", "")} if exc.headers else None)
        if exc.status_code == 413:
            return error_response(PayloadTooLarge("Request body is too large"))
        return error_response(UnexpectedStatus(str(exc.detail), exc.status_code))

    async def on_validation_error(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if not errors:
            return error_response(InvalidRequest("Invalid request"))
        loc = [str(part) for part in errors[0].get("loc", ())]
        if loc and loc[0] == "body":
            field = ".".join(loc[1:]) or "body"
            return error_response(InvalidRequest(f"{field}: {errors[0].get('msg', 'is invalid')}"))
        return error_response(InvalidRequest(message_for(loc[-1] if loc else "request", request.scope["path"])))

    async def on_database_error(_request: Request, exc: Exception) -> Any:
        if is_disk_full(exc):
            # The request's transaction was rolled back with the error: nothing of it was written.
            log.error("database out of storage: %s", type(exc).__name__)
            return error_response(InsufficientStorage("The server is out of storage"))
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(ServiceUnavailable("The database is unavailable; retry shortly"))

    async def on_unexpected(_request: Request, exc: Exception) -> Any:
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        return error_response(InternalError("Internal server error"))

    async def on_driver_error(request: Request, exc: Exception) -> Any:
        # Lost connections, timeouts and a server that refuses work are 503s, a full disk a 507; anything
        # else is a bug.
        if is_disk_full(exc) or is_unavailable(exc):
            return await on_database_error(request, exc)
        return await on_unexpected(request, exc)

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    for db_error in (OperationalError, InterfaceError, ConnectionError, TimeoutError, OSError):
        app.add_exception_handler(db_error, on_database_error)
    # Registered here (not left to the catch-all) so that they are answered without being re-raised.
    driver_errors: tuple[type[Exception], ...] = (SQLAlchemyError, *DRIVER_ERRORS)
    for driver_error in driver_errors:
        app.add_exception_handler(driver_error, on_driver_error)
    app.add_exception_handler(Exception, on_unexpected)
