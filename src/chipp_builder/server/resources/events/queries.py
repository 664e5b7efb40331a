"""SQL for reading the event feed: the feed's marks (head, pruned) and a page of events after a position."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, bindparam, func, or_, select

from chipp_builder.errors import CursorExpired
from chipp_builder.server.db.fastread import Reader, ReadQuery
from chipp_builder.server.db.tables import app_counter, event
from chipp_builder.server.writes.events import FEED_PRUNED, event_id

EXPIRED = "Cursor is older than the kept events; list again and continue from GET /events/latest"

_NEWEST = select(func.max(event.c.position)).where(event.c.app_id == bindparam("app_id")).scalar_subquery()
_PRUNED = (
    select(app_counter.c.row_count)
    .where(app_counter.c.app_id == bindparam("app_id"), app_counter.c.resource == FEED_PRUNED)
    .scalar_subquery()
)
_MARKS = ReadQuery(
    select(
        func.coalesce(_PRUNED, 0, type_=BigInteger).label("pruned"),
        func.coalesce(_NEWEST, 0, type_=BigInteger).label("head"),
    ),
    on_loop=True,
)


async def feed_marks(reader: Reader, app_id: UUID) -> tuple[int, int]:
    """(pruned, head): every event at or before `pruned` is gone; `head` is the newest committed position (the
    app's newest event: pruning keeps it).

    Read before the events themselves: every event at or before the head it gives has committed (positions
    are taken in commit order, writes/events.py), so a page read afterwards up to that head misses none.
    """
    (marks,) = await reader.fetch(_MARKS, app_id=app_id)
    return int(marks["pruned"]), int(marks["head"])


@lru_cache(maxsize=256)
def _page_query(types: tuple[str, ...] | None) -> ReadQuery:
    """Events after a position up to a head, oldest first; only `types` when given (a fixed list per query:
    the types a key may read and asked for, a few combinations per deployment)."""
    query = select(event.c.position, event.c.type, event.c.object_id, event.c.session_id, event.c.occurred_at).where(
        event.c.app_id == bindparam("app_id"),
        event.c.position > bindparam("after"),
        event.c.position <= bindparam("head"),
    )
    if types is not None:
        # Equalities with fixed values, not IN: the reader allows one expanding list, and only as the last
        # parameter (the limit is).
        query = query.where(or_(*(event.c.type == bindparam(f"type_{n}", value) for n, value in enumerate(types))))
    return ReadQuery(query.order_by(event.c.position).limit(bindparam("limit")), on_loop=True)


async def events_between(
    reader: Reader, app_id: UUID, after: int, head: int, limit: int, types: tuple[str, ...] | None
) -> list[dict[str, Any]]:
    """Up to `limit` events in (after, head], as wire objects each with its `position`."""
    rows = await reader.fetch(_page_query(types), app_id=app_id, after=after, head=head, limit=limit)
    for row in rows:
        row["id"] = event_id(app_id, int(row["position"]))
    return rows


def check_position(position: int, pruned: int) -> None:
    """410 for a position whose following events were pruned. (A position past the head is not refused: a
    replica behind the primary, or an erasure's cursor read back from one, is simply not there yet.)"""
    if position < pruned:
        raise CursorExpired(EXPIRED)
