"""What every resource router shares: the app base path and its documented error responses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from chipp_builder.server.responses import ERROR_RESPONSES
from chipp_builder.server.routing import ConditionalRoute, PlannedRoute

APP_BASE = "/api/v1/apps/{app_id}"

# Declared as text so that a non-UUID app id gets the documented 403, not a validation error.
AppIdPath = Annotated[str, Path(description="The application's id (a UUID).")]


def app_router(tag: str, *, etags: bool = True) -> APIRouter:
    """A router under the app base path, with the error responses documented; every GET route is served through
    a planned handler (routing.PlannedRoute), and one that cannot be planned fails when the app is built. Its
    GETs answer conditional requests (routing.ConditionalRoute) unless `etags` is False."""
    route_class = ConditionalRoute if etags else PlannedRoute
    return APIRouter(prefix=APP_BASE, tags=[tag], responses=ERROR_RESPONSES, route_class=route_class)


def as_uuid_or_none(text: str):  # type: ignore[no-untyped-def]
    """A path id as a UUID, or None when it is not one (then the resource is simply not found)."""
    from uuid import UUID

    try:
        return UUID(text)
    except ValueError:
        return None
