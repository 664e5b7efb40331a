"""LeanRoute: a FastAPI route whose request handler is planned once, for routes simple enough to plan.

Why: on a hot GET, FastAPI's general request handler (solve_dependencies) cost more CPU than the route's own
work: per request it re-inspects every parameter's annotation, builds a dependency cache key per dependency,
and walks the dependency tree through a general solver (measured on `GET /sessions?limit=25`: about 45 % of
the in-process time). Our app routes all have the same simple shape: path and scalar query parameters, and
dependencies that are plain `async def` functions of the `Request` and of other such dependencies. For that
shape everything FastAPI works out per request can be worked out once, when the route is built.

The route itself is declared exactly as before, so FastAPI still builds the OpenAPI document, the parameter
validators and the dependency tree; this module only calls them more directly. Each parameter is validated by
the very `ModelField` FastAPI built for it, errors are raised as the same `RequestValidationError` (same
`loc`), dependencies run in FastAPI's order (dependencies first, then path and query parameters). A route
outside this shape (a body, headers, a generator dependency, a sequence parameter) keeps FastAPI's handler,
and so does every request while `app.dependency_overrides` is in use (tests). What a plan leaves out is what
these routes do not use: background tasks, the `Response` parameter, security scopes, and FastAPI's own
telemetry hooks around the endpoint.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import Request
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

_SCALARS = (str, int, float, bool, UUID, datetime)
_MISSING = object()


@dataclass(frozen=True)
class _Dependency:
    """One `Depends(...)` to await: its function, the parameter it fills, and its own dependencies."""

    name: str
    call: Callable[..., Awaitable[Any]]
    request_param: str | None
    needs: tuple[_Dependency, ...]
    cached: bool

    async def solve(self, request: Request, cache: dict[Any, Any]) -> Any:
        """Await the dependency once per request (when cached), after the ones it needs."""
        if self.cached and self.call in cache:
            return cache[self.call]
        arguments = {need.name: await need.solve(request, cache) for need in self.needs}
        if self.request_param is not None:
            arguments[self.request_param] = request
        value = await self.call(**arguments)
        if self.cached:
            cache[self.call] = value
        return value


@dataclass(frozen=True)
class _Parameter:
    """One path or query parameter, validated by the ModelField FastAPI built for it."""

    name: str
    alias: str
    field: Any  # fastapi._compat.ModelField
    loc: tuple[str, str]
    default: Any  # _MISSING when required


def _is_scalar(annotation: Any) -> bool:
    """str, int, bool, a UUID, a datetime, an Enum or a Literal of these, possibly optional (never a list or a
    model)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_scalar(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return all(arg is type(None) or _is_scalar(arg) for arg in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return all(isinstance(arg, _SCALARS) for arg in typing.get_args(annotation))
    return isinstance(annotation, type) and (issubclass(annotation, _SCALARS) or issubclass(annotation, enum.Enum))


def _is_plain_async(dependant: Dependant) -> bool:
    """An `async def` that takes at most the Request besides other dependencies: nothing else to solve."""
    call = dependant.call
    return (
        inspect.iscoroutinefunction(call)
        and not dependant.header_params
        and not dependant.cookie_params
        and not dependant.body_params
        and not dependant.own_oauth_scopes
        and dependant.websocket_param_name is None
        and dependant.http_connection_param_name is None
        and dependant.response_param_name is None
        and dependant.background_tasks_param_name is None
        and dependant.security_scopes_param_name is None
        and getattr(dependant, "scope", None) in (None, "function", "request")
    )


def _dependency(dependant: Dependant) -> _Dependency | None:
    """The plan of one dependency, or None when it is not a plain async function of the request."""
    if not _is_plain_async(dependant) or dependant.path_params or dependant.query_params or dependant.name is None:
        return None
    needs = [_dependency(sub) for sub in dependant.dependencies]
    if any(need is None for need in needs):
        return None
    assert dependant.call is not None
    return _Dependency(
        name=dependant.name, call=dependant.call, request_param=dependant.request_param_name,
        needs=tuple(need for need in needs if need is not None), cached=dependant.use_cache,
    )


def _parameter(field: Any, where: str) -> _Parameter | None:
    if not _is_scalar(field.field_info.annotation):
        return None
    required = field.field_info.is_required()
    if not required and field.field_info.validate_default:
        return None
    default = _MISSING if required else field.default
    if not isinstance(default, (type(None), str, int, float, bool, enum.Enum)) and default is not _MISSING:
        return None  # a mutable default would need FastAPI's per-request copy
    alias = field.alias
    return _Parameter(name=field.name, alias=alias, field=field, loc=(where, alias), default=default)


@dataclass(frozen=True)
class _Plan:
    """Everything the handler of one route needs, worked out once."""

    endpoint: Callable[..., Awaitable[Any]]
    dependencies: tuple[_Dependency, ...]
    request_param: str | None
    path: tuple[_Parameter, ...]
    query: tuple[_Parameter, ...]

    async def run(self, request: Request) -> Any:
        """Solve the dependencies, validate the parameters, call the endpoint."""
        cache: dict[Any, Any] = {}
        values: dict[str, Any] = {}
        for dependency in self.dependencies:
            values[dependency.name] = await dependency.solve(request, cache)
        errors: list[Any] = []
        for parameters, received in ((self.path, request.path_params), (self.query, request.query_params)):
            for parameter in parameters:
                raw = received.get(parameter.alias)
                if raw is None:
                    if parameter.default is _MISSING:
                        errors.append({"type": "missing", "loc": parameter.loc, "msg": "Field required", "input": None})
                    else:
                        values[parameter.name] = parameter.default
                    continue
                value, problems = parameter.field.validate(raw, values, loc=parameter.loc)
                if problems:
                    errors.extend(problems)
                else:
                    values[parameter.name] = value
        if errors:
            raise RequestValidationError(errors)
        if self.request_param is not None:
            values[self.request_param] = request
        return await self.endpoint(**values)


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    """Whether the endpoint is declared to return a Response (ours render their own JSON), so the plan never has
    to serialise a return value as FastAPI would."""
    try:
        returned = typing.get_type_hints(endpoint).get("return")
    except (NameError, TypeError):
        return False
    return isinstance(returned, type) and issubclass(returned, Response)


def plan_for(dependant: Dependant) -> _Plan | None:
    """The plan of a route's dependant, or None when FastAPI's general handler must serve it."""
    if not _is_plain_async(dependant) or dependant.call is None or not _returns_response(dependant.call):
        return None
    dependencies = [_dependency(sub) for sub in dependant.dependencies]
    path = [_parameter(field, "path") for field in dependant.path_params]
    query = [_parameter(field, "query") for field in dependant.query_params]
    if any(item is None for item in (*dependencies, *path, *query)):
        return None
    return _Plan(
        endpoint=dependant.call,
        dependencies=tuple(d for d in dependencies if d is not None),
        request_param=dependant.request_param_name,
        path=tuple(p for p in path if p is not None),
        query=tuple(p for p in query if p is not None),
    )


class LeanRoute(fastapi_routing.APIRoute):
    """An APIRoute that serves requests through a plan (above) when its shape allows, else as FastAPI does."""

    planned: bool = False

    def get_route_handler(self) -> Callable[[Request], typing.Coroutine[Any, Any, Response]]:
        """The planned handler, or FastAPI's when the route (as included, with any router dependencies) has a
        shape the plan does not cover."""
        general = super().get_route_handler()
        # Routes of an included router are built through an "effective context" that adds the including
        # router's dependencies; plan that context's dependant, so no dependency is ever skipped.
        context_var = getattr(fastapi_routing, "_effective_route_context_var", None)
        context = context_var.get() if context_var is not None else None
        route = context if context is not None and getattr(context, "original_route", None) is self else self
        dependant = getattr(route, "dependant", None)
        plan = plan_for(dependant) if isinstance(dependant, Dependant) and route.body_field is None else None
        # What the handler serves through: the tests hold every app GET route to being planned.
        self.planned = plan is not None and context_var is not None
        if plan is None or context_var is None:
            return general
        overrides = route.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            if overrides is not None and getattr(overrides, "dependency_overrides", None):
                return await general(request)
            response: Response = await plan.run(request)
            return response

        return handler
