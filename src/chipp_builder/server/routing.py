"""PlannedRoute: a FastAPI route whose request handler is planned once, for routes simple enough to plan.

Why: on a hot GET, FastAPI's general request handler (solve_dependencies) cost more CPU than the route's own
work: per request it re-inspects every parameter's annotation, builds a dependency cache key per dependency,
and walks the dependency tree through a general solver (measured on `GET /sessions?limit=25`: about 45 % of
the in-process time). Our app routes all have the same simple shape: path and scalar query parameters, and
dependencies that are plain `async def` functions of the `Request` and of other such dependencies. For that
shape everything FastAPI works out per request can be worked out once, when the route is built.

The route itself is declared exactly as before, so FastAPI still builds the OpenAPI document, the parameter
validators and the dependency tree; this module only calls them more directly. Each parameter is validated by
the very `ModelField` FastAPI built for it, errors are raised as the same `RequestValidationError` (same
`loc`), dependencies run in FastAPI's order (dependencies first, then path and query parameters). A GET route
outside this shape (a header parameter, a plain `def` or generator dependency, a sequence parameter) is an
error when the route is built (`UnplannableRoute`), so an app GET route can never slip back to the slow solver
unnoticed; any other route (a body, a write) keeps FastAPI's handler, and so does every request while
`app.dependency_overrides` is in use (tests). FastAPI's internals used here are reached through compat.py.
What a plan leaves out is what these routes do not use: background tasks, the `Response` parameter, security
scopes, and FastAPI's own telemetry hooks around the endpoint.
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
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from chipp_builder.server.compat import Dependant, ModelField, effective_route, parameter_validator, route_dependant
from chipp_builder.server.conditional import STAR, cache_headers, etag_for, feed_head, matches, not_modified
from chipp_builder.server.deps import count_request
from chipp_builder.server.response_cache import ResponseCache

_SCALARS = (str, int, float, bool, UUID, datetime)
_MISSING = object()


@dataclass(frozen=True)
class _Dependency:
    """One `Depends(...)` to await: its function, the parameter it fills, and its own dependencies."""

    name: str | None  # None for a router's or route's `dependencies=[...]`: awaited, its value unused
    call: Callable[..., Awaitable[Any]]
    request_param: str | None
    needs: tuple[_Dependency, ...]
    cached: bool

    async def solve(self, request: Request, cache: dict[Any, Any]) -> Any:
        """Await the dependency once per request (when cached), after the ones it needs."""
        if self.cached and self.call in cache:
            return cache[self.call]
        arguments: dict[Any, Any] = {need.name: await need.solve(request, cache) for need in self.needs}
        if self.request_param is not None:
            arguments[self.request_param] = request
        value = await self.call(**arguments)
        if self.cached:
            cache[self.call] = value
        return value


class UnplannableRoute(TypeError):
    """A GET route of the app that the plan cannot serve; raised when the route is built, naming the reason."""


@dataclass(frozen=True)
class _Parameter:
    """One path or query parameter, validated by the ModelField FastAPI built for it."""

    name: str
    alias: str
    validate: Callable[..., tuple[Any, list[Any]]]  # the field's own validator (compat.parameter_validator)
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


def _not_plain_async(dependant: Dependant, name: str) -> str | None:
    """Why a function is not an `async def` taking at most the Request besides other dependencies (None: it is)."""
    call = dependant.call
    if inspect.isasyncgenfunction(call) or inspect.isgeneratorfunction(call):
        return f"{name} is a generator dependency"
    if not inspect.iscoroutinefunction(call):
        return f"{name} is not an async def"
    kinds = {
        "header": dependant.header_params, "cookie": dependant.cookie_params, "body": dependant.body_params,
        "security scopes": dependant.own_oauth_scopes,
    }
    for kind, present in kinds.items():
        if present:
            return f"{name} takes a {kind} parameter"
    specials = {
        "WebSocket": dependant.websocket_param_name, "HTTPConnection": dependant.http_connection_param_name,
        "Response": dependant.response_param_name, "BackgroundTasks": dependant.background_tasks_param_name,
        "SecurityScopes": dependant.security_scopes_param_name,
    }
    for kind, special in specials.items():
        if special is not None:
            return f"{name} takes a {kind} parameter"
    if getattr(dependant, "scope", None) not in (None, "function", "request"):
        return f"{name} has dependency scope {dependant.scope!r}"
    return None


def _dependency(dependant: Dependant) -> _Dependency:
    """The plan of one dependency (UnplannableRoute when it is not a plain async function of the request)."""
    name = getattr(dependant.call, "__name__", repr(dependant.call))
    reason = _not_plain_async(dependant, f"the dependency {name}")
    if reason is None and (dependant.path_params or dependant.query_params):
        reason = f"the dependency {name} takes path or query parameters"
    if reason is not None:
        raise UnplannableRoute(reason)
    assert dependant.call is not None
    return _Dependency(
        name=dependant.name, call=dependant.call, request_param=dependant.request_param_name,
        needs=tuple(_dependency(sub) for sub in dependant.dependencies), cached=dependant.use_cache,
    )


def _parameter(field: ModelField, where: str) -> _Parameter:
    if not _is_scalar(field.field_info.annotation):
        raise UnplannableRoute(f"the {where} parameter {field.name!r} is not a scalar")
    required = field.field_info.is_required()
    if not required and field.field_info.validate_default:
        raise UnplannableRoute(f"the {where} parameter {field.name!r} validates its default")
    default = _MISSING if required else field.default
    if not isinstance(default, (type(None), str, int, float, bool, enum.Enum)) and default is not _MISSING:
        # A mutable default would need FastAPI's per-request copy.
        raise UnplannableRoute(f"the {where} parameter {field.name!r} has a mutable default")
    alias = field.alias
    return _Parameter(
        name=field.name, alias=alias, validate=parameter_validator(field), loc=(where, alias), default=default
    )


@dataclass(frozen=True)
class _Plan:
    """Everything the handler of one route needs, worked out once."""

    endpoint: Callable[..., Awaitable[Any]]
    dependencies: tuple[_Dependency, ...]
    request_param: str | None
    path: tuple[_Parameter, ...]
    query: tuple[_Parameter, ...]
    conditional: bool = False  # a GET of the app API: ETag on its 200s, 304 for a matching If-None-Match

    async def run(self, request: Request) -> Any:
        """Solve the dependencies, validate the parameters, call the endpoint."""
        cache: dict[Any, Any] = {}
        values: dict[str, Any] = {}
        for dependency in self.dependencies:
            value = await dependency.solve(request, cache)
            if dependency.name is not None:
                values[dependency.name] = value
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
                value, problems = parameter.validate(raw, values, loc=parameter.loc)
                if problems:
                    errors.extend(problems)
                else:
                    values[parameter.name] = value
        if errors:
            if self.conditional:
                await _count_deferred(request)
            raise RequestValidationError(errors)
        if self.request_param is not None:
            values[self.request_param] = request
        if self.conditional:
            return await self._conditional(request, values)
        return await self.endpoint(**values)

    async def _conditional(self, request: Request, values: dict[str, Any]) -> Response:
        """The endpoint behind its ETag (conditional.py): worked out from the feed head before the page's
        query, a 304 when If-None-Match names it; else the page, counted then, with the ETag added to a 200."""
        state = request.scope["state"]
        identity = state.get("identity")
        if identity is None:  # a route without a key (none today): no ETag to work out
            response: Response = await self.endpoint(**values)
            return response
        head = await feed_head(request.app.state.reader, identity.app_id)
        etag = etag_for(head, request.scope["path"], [(p.alias, values[p.name]) for p in self.query], identity)
        uncounted = state.pop("uncounted_key", None)
        if uncounted is not None:
            matched = matches(request.headers.get("if-none-match", ""), etag)
            if matched is True:
                return await not_modified(request, uncounted, etag)
            if matched == STAR:
                # `*` matches any page that exists, which only the page's query can tell (a deleted session's
                # page is a 404, not a 304): run it, then answer 304 for a 200.
                try:
                    response = await self.endpoint(**values)
                except Exception:
                    await count_request(request, uncounted)
                    raise
                if response.status_code == 200:
                    return await not_modified(request, uncounted, etag)
                await count_request(request, uncounted)
                return response
            await count_request(request, uncounted)
        pages: ResponseCache | None = request.app.state.response_cache
        if pages is not None and (kept := pages.get(etag)) is not None:
            return kept  # counted above as any 200 is; only the query and the rendering are saved
        response = await self.endpoint(**values)
        if response.status_code == 200:
            response.raw_headers.extend(cache_headers(etag))
            if pages is not None:
                pages.put(etag, response)
        return response


async def _count_deferred(request: Request) -> None:
    """Count a conditional request refused before its ETag was known, as any other request."""
    uncounted = request.scope["state"].pop("uncounted_key", None)
    if uncounted is not None:
        await count_request(request, uncounted)


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    """Whether the endpoint is declared to return a Response (ours render their own JSON), so the plan never has
    to serialise a return value as FastAPI would."""
    try:
        returned = typing.get_type_hints(endpoint).get("return")
    except (NameError, TypeError):
        return False
    return isinstance(returned, type) and issubclass(returned, Response)


def plan_for(dependant: Dependant, conditional: bool = False) -> _Plan:
    """The plan of a route's dependant; UnplannableRoute, naming the reason, when FastAPI's general handler
    would have to serve it."""
    reason = _not_plain_async(dependant, "the endpoint")
    if reason is not None:
        raise UnplannableRoute(reason)
    if dependant.call is None or not _returns_response(dependant.call):
        raise UnplannableRoute("the endpoint is not declared to return a Response")
    return _Plan(
        endpoint=dependant.call,
        dependencies=tuple(_dependency(sub) for sub in dependant.dependencies),
        request_param=dependant.request_param_name,
        path=tuple(_parameter(field, "path") for field in dependant.path_params),
        query=tuple(_parameter(field, "query") for field in dependant.query_params),
        conditional=conditional,
    )


class PlannedRoute(fastapi_routing.APIRoute):
    """An APIRoute that serves requests through a plan (above); a GET route that cannot take one is an error
    when it is built, any other route that cannot keeps FastAPI's handler."""

    planned: bool = False
    etags: typing.ClassVar[bool] = False  # ConditionalRoute: its GETs answer conditional requests
    conditional: bool = False  # this route's: a GET of a class with etags (read by deps.py before the plan)

    def get_route_handler(self) -> Callable[[Request], typing.Coroutine[Any, Any, Response]]:
        """The planned handler, or FastAPI's for a non-GET route (as included, with any router dependencies)
        whose shape the plan does not cover."""
        general = super().get_route_handler()
        # Routes of an included router are built through an "effective context" that adds the including
        # router's dependencies; plan that context's dependant, so no dependency is ever skipped.
        route = effective_route(self)
        dependant = route_dependant(route)
        try:
            if dependant is None:
                raise UnplannableRoute("FastAPI gave the route no Dependant (see server/compat.py)")
            if route.body_field is not None:
                raise UnplannableRoute("the route takes a body")
            self.conditional = self.etags and "GET" in (self.methods or ())
            plan = plan_for(dependant, self.conditional)
        except UnplannableRoute as error:
            self.planned = self.conditional = False
            if "GET" in (self.methods or ()):
                raise UnplannableRoute(f"GET {route.path} cannot take the planned handler: {error}") from None
            return general
        # What the handler serves through: the tests hold every app GET route to being planned.
        self.planned = True
        overrides = route.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            if overrides is not None and getattr(overrides, "dependency_overrides", None):
                return await general(request)
            response: Response = await plan.run(request)
            return response

        return handler


class ConditionalRoute(PlannedRoute):
    """A PlannedRoute whose GET answers conditional requests (conditional.py): a weak ETag on every 200, and a
    304 for an If-None-Match that names it."""

    etags = True
