"""Which routes PlannedRoute plans (server/routing.py): every GET route or an error when it is built, never a
silent fall back to FastAPI's solver; and that a plan never skips what FastAPI would run: an including router's
dependencies, validation errors in FastAPI's own form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

import httpx
import pytest
from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import Response

from chipp_builder.server.compat import build_included_routes
from chipp_builder.server.routing import PlannedRoute, UnplannableRoute

calls: list[str] = []


async def who(request: Request) -> str:
    calls.append("who")
    return request.headers.get("x-who", "nobody")


async def deny(request: Request) -> None:
    calls.append("deny")
    if request.headers.get("x-let-in") != "yes":
        raise HTTPException(403, "denied by the including router")


async def session() -> AsyncIterator[str]:
    yield "connection"


def _router() -> APIRouter:
    router = APIRouter(route_class=PlannedRoute)

    @router.get("/items/{item_id}")
    async def item(
        item_id: int,
        caller: Annotated[str, Depends(who)],
        again: Annotated[str, Depends(who)],
        size: Annotated[int, Query(ge=1, le=5)] = 2,
        kind: Literal["a", "b"] | None = None,
    ) -> Response:
        return Response(f"{item_id}:{caller}:{again}:{size}:{kind}")

    @router.post("/bodies")
    async def bodies(value: Annotated[int, Body(embed=True)]) -> Response:
        return Response(str(value))

    return router


def plain_function(request: Request) -> str:
    return "sync"


async def with_header(x_who: Annotated[str, Header()]) -> str:
    return x_who


async def _listed(tags: Annotated[list[str], Query()]) -> Response:
    return Response(",".join(tags))


async def _held(conn: Annotated[str, Depends(session)]) -> Response:
    return Response(conn)


async def _plain(caller: Annotated[str, Depends(plain_function)]) -> Response:
    return Response(caller)


async def _header(caller: Annotated[str, Depends(with_header)]) -> Response:
    return Response(caller)


async def _own_header(x_who: Annotated[str, Header()]) -> Response:
    return Response(x_who)


async def _serialised() -> dict[str, int]:
    return {"serialised": 1}


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        (_listed, "the query parameter 'tags' is not a scalar"),
        (_held, "the dependency session is a generator dependency"),
        (_plain, "the dependency plain_function is not an async def"),
        (_header, "the dependency with_header takes a header parameter"),
        (_own_header, "the endpoint takes a header parameter"),
        (_serialised, "the endpoint is not declared to return a Response"),
    ],
)
def test_a_get_route_that_cannot_be_planned_is_an_error_when_it_is_built(endpoint, reason) -> None:
    router = APIRouter(route_class=PlannedRoute)
    with pytest.raises(UnplannableRoute, match="GET /shape cannot take the planned handler: " + reason):
        router.add_api_route("/shape", endpoint, methods=["GET"])


def test_other_routes_may_keep_fastapis_handler() -> None:
    router = _router()
    planned = {r.path: r.planned for r in router.routes if isinstance(r, PlannedRoute)}
    assert planned == {"/items/{item_id}": True, "/bodies": False}  # a body: FastAPI's handler
    router.add_api_route("/written", _held, methods=["POST"])  # a write with a generator dependency
    assert not router.routes[-1].planned  # type: ignore[attr-defined]


async def _get(app: FastAPI, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, **kwargs)  # type: ignore[arg-type]


async def test_a_planned_route_solves_a_shared_dependency_once_and_validates_like_fastapi() -> None:
    app = FastAPI()
    app.include_router(_router())
    calls.clear()
    response = await _get(app, "/items/7?size=3&kind=b", headers={"x-who": "ada"})
    assert response.text == "7:ada:ada:3:b"
    assert calls == ["who"]  # cached per request, as FastAPI does

    plain = FastAPI()
    plain.include_router(APIRouter(routes=[*_plain_routes()]))
    for query in ("/items/x", "/items/7?size=9", "/items/7?kind=c", "/items/x?size=0&kind=z"):
        mine, theirs = await _get(app, query), await _get(plain, query)
        assert mine.status_code == theirs.status_code == 422
        assert mine.json() == theirs.json()


def _plain_routes() -> list[object]:
    """The same routes as plain APIRoutes: FastAPI's own answers, to compare with."""
    router = _router()
    plain = APIRouter()
    for route in router.routes:
        plain.add_api_route(route.path, route.endpoint, methods=list(route.methods))  # type: ignore[attr-defined]
    return list(plain.routes)


@pytest.mark.parametrize("let_in", [False, True])
async def test_an_including_routers_dependencies_still_run(let_in: bool) -> None:
    app = FastAPI()
    router = _router()
    app.include_router(router, prefix="/guarded", dependencies=[Depends(deny)])
    build_included_routes(app.router.routes)  # as create_app does
    # Planned as included, with the including router's dependency in the plan.
    assert next(r for r in router.routes if r.path == "/items/{item_id}").planned  # type: ignore[attr-defined]
    calls.clear()
    headers = {"x-let-in": "yes"} if let_in else {}
    response = await _get(app, "/guarded/items/1", headers=headers)
    assert "deny" in calls
    assert response.status_code == (200 if let_in else 403)


def test_an_including_routers_unplannable_dependency_is_an_error_when_the_app_is_built() -> None:
    app = FastAPI()
    app.include_router(_router(), prefix="/guarded", dependencies=[Depends(plain_function)])
    with pytest.raises(UnplannableRoute, match="GET /guarded/items/{item_id} .*plain_function is not an async def"):
        build_included_routes(app.router.routes)
