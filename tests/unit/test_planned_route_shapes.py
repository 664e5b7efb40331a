"""Which routes PlannedRoute plans (server/routing.py), and that a plan never skips what FastAPI would run: an
including router's dependencies, validation errors in FastAPI's own form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

import httpx
import pytest
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response

from chipp_builder.server.routing import PlannedRoute

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

    @router.get("/listed")
    async def listed(tags: Annotated[list[str], Query()]) -> Response:
        return Response(",".join(tags))

    @router.get("/held")
    async def held(conn: Annotated[str, Depends(session)]) -> Response:
        return Response(conn)

    @router.post("/bodies")
    async def bodies(value: Annotated[int, Body(embed=True)]) -> Response:
        return Response(str(value))

    @router.get("/plain")
    async def plain() -> dict[str, int]:
        return {"serialised": 1}

    return router


async def _get(app: FastAPI, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, **kwargs)  # type: ignore[arg-type]


def test_only_simple_shapes_are_planned() -> None:
    router = _router()
    planned = {r.path: r.planned for r in router.routes if isinstance(r, PlannedRoute)}
    assert planned == {
        "/items/{item_id}": True,
        "/listed": False,  # a sequence parameter
        "/held": False,  # a generator dependency
        "/bodies": False,  # a body
        "/plain": False,  # a return value FastAPI must serialise
    }


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
    # Planned as included, with the including router's dependency in the plan.
    assert next(r for r in router.routes if r.path == "/items/{item_id}").planned  # type: ignore[attr-defined]
    calls.clear()
    headers = {"x-let-in": "yes"} if let_in else {}
    response = await _get(app, "/guarded/items/1", headers=headers)
    assert "deny" in calls
    assert response.status_code == (200 if let_in else 403)
