"""The objects that show another object's fields (Part one's nested and derived fields), so that a change of the
one records an event for each of the others: a session shows its consumer's name and email, a message its tags'
names and colors and its newest rating, a rating its message's text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import null, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.tables import feedback, message, message_tag, session
from chipp_builder.server.writes.events import UPDATED, Change

_CHUNK = 1000  # ids per IN list, well under SQLite's and asyncpg's bound-parameter limits


async def messages_changed(db: AsyncConnection, app_id: UUID, message_ids: Sequence[str]) -> list[Change]:
    """message.updated for these messages of the app, each with its session."""
    changes: list[Change] = []
    wanted = list(dict.fromkeys(message_ids))
    for start in range(0, len(wanted), _CHUNK):
        query = select(message.c.id, message.c.session_id).where(
            message.c.app_id == app_id, message.c.id.in_(wanted[start : start + _CHUNK])
        )
        changes.extend(Change("message", UPDATED, row.id, row.session_id) for row in await db.execute(query))
    return changes


def _showing(app_id: UUID, kind: str, ids: list[Any]) -> tuple[Any, str]:
    """The query for the objects showing these objects of `kind`, and the kind of what it finds."""
    if kind == "consumer":
        query = select(session.c.id, null()).where(session.c.app_id == app_id, session.c.consumer_id.in_(ids))
        return query, "session"
    if kind == "tag":
        query = (
            select(message.c.id, message.c.session_id)
            .join(message_tag, (message_tag.c.app_id == message.c.app_id) & (message_tag.c.message_id == message.c.id))
            .where(message_tag.c.app_id == app_id, message_tag.c.tag_id.in_(ids))
        )
        return query, "message"
    if kind == "message":
        query = select(feedback.c.id, feedback.c.session_id).where(
            feedback.c.app_id == app_id, feedback.c.message_id.in_(ids)
        )
        return query, "feedback"
    raise ValueError(f"nothing shows a {kind}")


async def rows_showing(db: AsyncConnection, app_id: UUID, kind: str, ids: Sequence[Any]) -> list[Change]:
    """An `updated` change for every object that shows one of these (consumers, tags or messages)."""
    changes: list[Change] = []
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), _CHUNK):
        query, shown_in = _showing(app_id, kind, wanted[start : start + _CHUNK])
        for row in await db.execute(query):
            session_id = None if shown_in == "session" else row[1]
            changes.append(Change(shown_in, UPDATED, str(row[0]), session_id))
    return changes
