"""Every use of a private API of FastAPI, Starlette or SQLAlchemy, in one module, each saying what breaks if it changes.

The speed layers (routing.py's planned handler, db/fastread.py's compiled reads) lean on a few internals that
upstream does not promise to keep. Each touch is here, so that an upgrade has one file to read, and
pyproject.toml bounds the three libraries below their next minor versions. Raising a bound: run
tests/unit/test_compat.py, tests/unit/test_planned_route_shapes.py and tests/integration/test_planned_route.py
first; a change below fails at import or when a route is built, never as a silent slowdown or a skipped check.

Starlette: nothing private is used (the plan takes `Request` and returns `Response` as any endpoint does); it
is bounded because FastAPI's routing, which the plan mirrors, is built on its request/response cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import routing as _fastapi_routing

# FastAPI's per-parameter validator and its dependency tree. Not exported by FastAPI; the plan reads a
# Dependant's parameter lists (path_params, query_params, header_params, cookie_params, body_params,
# dependencies), its special-parameter names (request_param_name, response_param_name, ...), `call`, `name`,
# `use_cache` and `scope`, and a ModelField's `field_info`, `name`, `alias`, `default` and `validate`.
# If they move or are renamed, this import (or routing.py's plan, when the route is built) fails; if their
# meaning changes, tests/integration/test_planned_route.py, which holds the plan's answers to FastAPI's byte
# for byte, fails.
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant

try:
    # FastAPI builds an included router's route handlers inside this context variable, holding the "effective"
    # route: the route as included, whose dependant carries the including router's dependencies. Without it
    # a plan would see only the route's own dependencies and skip the including router's (auth).
    _EFFECTIVE_ROUTE_CONTEXT = _fastapi_routing._effective_route_context_var
    # The route FastAPI puts in an app's routes for each include_router(), building its routes' handlers lazily.
    _INCLUDED_ROUTER = _fastapi_routing._IncludedRouter
except AttributeError as error:  # pragma: no cover - only with an unsupported FastAPI
    raise ImportError(
        f"this FastAPI lacks {error.name}: the planned handler (server/routing.py) cannot see an including "
        "router's dependencies; use a fastapi version within pyproject.toml's bounds"
    ) from error

__all__ = [
    "Dependant",
    "ModelField",
    "bind_processors",
    "build_included_routes",
    "effective_route",
    "expanding_placeholder",
    "parameter_validator",
    "route_dependant",
]


def effective_route(route: Any) -> Any:
    """The route whose handler FastAPI is building now: for a route of an included router, the inclusion's
    context (its dependant includes the including router's dependencies), else the route itself.

    Breaks if FastAPI renames `original_route` on the context: refused here (an error when the route is
    built), because planning the bare route would skip the including router's dependencies.
    """
    context = _EFFECTIVE_ROUTE_CONTEXT.get()
    if context is None:
        return route
    if not hasattr(context, "original_route"):
        raise RuntimeError("FastAPI's effective route context has no original_route: update server/compat.py")
    return context if context.original_route is route else route


def build_included_routes(routes: Any) -> None:
    """Build now the handlers FastAPI builds on the first request through an included router (its private
    `_IncludedRouter.effective_candidates()`, which caches them), so that a GET route the plan cannot serve is
    an error when the app is created, not a 500 on its first request, and the first request pays nothing.

    If FastAPI renames it, this raises when the app is created (AttributeError): nothing is silently skipped.
    """
    for route in routes:
        if isinstance(route, _INCLUDED_ROUTER):
            build_included_routes(route.effective_candidates())


def route_dependant(route: Any) -> Dependant | None:
    """A route's dependency tree (`APIRoute.dependant`, undocumented), or None when the route has none.

    Used when a route is planned and, per request, only when a query parameter is repeated (deps.py). If
    FastAPI renames it, planning fails loudly in routing.py (no Dependant), and repeated parameters would
    go unrefused: tests/integration/test_bad_input.py covers that.
    """
    dependant = getattr(route, "dependant", None)
    return dependant if isinstance(dependant, Dependant) else None


def parameter_validator(field: ModelField) -> Callable[..., tuple[Any, list[Any]]]:
    """The bound `ModelField.validate(value, values, loc=...) -> (value, errors)` FastAPI uses for a path or
    query parameter, taken once when the route is planned (no per-request lookup).

    If its signature or return changes, every planned route's validation breaks at once, which
    tests/integration/test_planned_route.py and tests/unit/test_planned_route_shapes.py catch.
    """
    validate: Callable[..., tuple[Any, list[Any]]] = field.validate
    return validate


def bind_processors(compiled: Any) -> Mapping[str, Callable[[Any], Any] | None]:
    """SQLAlchemy's bind processors of a compiled statement, by parameter name (`SQLCompiler._bind_processors`):
    the dialect's own conversion of each Python value (a UUID to SQLite's hex text, a datetime to SQLite's UTC
    text), so a compiled read binds exactly what the engine would.

    If it is renamed, db/fastread.py fails when a statement is compiled (AttributeError); if its content
    changes, tests/integration/test_fastread.py (same values as the engine) fails.
    """
    processors: Mapping[str, Callable[[Any], Any] | None] = compiled._bind_processors
    return processors


def expanding_placeholder(name: str) -> str:
    """The text SQLAlchemy leaves in a compiled statement for an expanding (IN) parameter, which db/fastread.py
    replaces with one placeholder per value at run time (SQLAlchemy does so in its own "post-compile" step).

    If the form changes, db/fastread.py finds no placeholder and refuses the statement when it is compiled
    (tests/unit/test_compat.py checks the form).
    """
    return f"__[POSTCOMPILE_{name}]"
