"""The private APIs server/compat.py wraps still have the form the speed layers rely on (fails on an upgrade
that changes them, before any route or read is wrong)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.sqlite import aiosqlite

from chipp_builder.server import compat
from chipp_builder.server.db.tables import message, session


def test_an_expanding_parameter_is_left_as_the_placeholder_fastread_replaces() -> None:
    query = select(message.c.id).where(message.c.id.in_(bindparam("ids", expanding=True)))
    compiled = query.compile(dialect=aiosqlite.dialect())
    assert compat.expanding_placeholder("ids") in compiled.string


def test_bind_processors_are_the_dialects_own_conversions() -> None:
    query = select(session.c.title).where(session.c.id == bindparam("session_id"))
    processors = compat.bind_processors(query.compile(dialect=aiosqlite.dialect()))
    convert = processors["session_id"]
    assert convert is not None
    assert convert(UUID("00000001-0000-4000-8000-000000000001")) == "00000001000040008000000000000001"


def test_outside_an_inclusion_a_route_is_its_own_effective_route() -> None:
    router = APIRouter()

    @router.get("/x")
    async def x() -> None:
        """A route."""

    route = router.routes[0]
    assert compat.effective_route(route) is route
    dependant = compat.route_dependant(route)
    assert isinstance(dependant, compat.Dependant) and dependant.call is x
