"""HTTP routes for the event feed: GET /events (with its long poll) and GET /events/latest."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.responses import Response

from chipp_builder.errors import InvalidRequest
from chipp_builder.schemas.events import EVENT_KINDS, EVENT_TYPES, EventList, FeedPositionEnvelope
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.db.feed_signal import signal_of
from chipp_builder.server.deps import ReaderDep, require_any_read
from chipp_builder.server.pagination import decode_position, encode_position
from chipp_builder.server.params import FEED_PARAM_MESSAGES
from chipp_builder.server.resources.common import AppIdPath, app_router
from chipp_builder.server.resources.events import queries
from chipp_builder.server.responses import json_response

# No ETags on the feed: a long poll (`wait`) must wait for the next event, where a 304 would answer at once;
# and a feed reader's cursor already says what it has seen.
router = app_router("events", etags=False)
FeedKey = Annotated[KeyIdentity, Depends(require_any_read(tuple(dict.fromkeys(EVENT_KINDS.values()))))]
# How often a long poll re-reads the feed's head when no write of this process wakes it (writes of other
# workers and hosts): the longest delay a follower sees for them.
POLL_SECONDS = 0.1
After = Annotated[
    str | None,
    Query(max_length=512, description="Position to continue from (a `next_cursor`); absent: the oldest kept event."),
]
_TYPE = "(" + "|".join(EVENT_KINDS) + r")\.(created|updated|deleted)"
Types = Annotated[
    str | None,
    Query(max_length=1000, pattern=f"^{_TYPE}(,{_TYPE})*$", description="Comma-separated event types to show."),
]
Wait = Annotated[int, Query(ge=0, le=30, description="Seconds to hold the request when nothing is new (long poll).")]
TYPES_MESSAGE = FEED_PARAM_MESSAGES["types"] + ": " + ", ".join(EVENT_TYPES)


def _visible_types(key: KeyIdentity, types: str | None) -> tuple[str, ...] | None:
    """The event types this request shows: those asked for (all when none) that the key can read; None for
    every type."""
    if types is None:
        asked = list(EVENT_TYPES)
    else:
        asked = [part.strip() for part in types.split(",")]
        if not all(part in EVENT_TYPES for part in asked):
            raise InvalidRequest(TYPES_MESSAGE)
    shown = tuple(sorted({t for t in asked if key.can_read(EVENT_KINDS[t.partition(".")[0]])}))
    return None if len(shown) == len(EVENT_TYPES) else shown


@router.get("/events", response_model=EventList)
async def list_events(
    app_id: AppIdPath,
    request: Request,
    key: FeedKey,
    reader: ReaderDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Events per page (1-500).")] = 100,
    types: Types = None,
    wait: Wait = 0,
) -> Response:
    """List the app's changes in commit order, oldest first; `next_cursor` is never null."""
    shown = _visible_types(key, types)
    pruned, head = await queries.feed_marks(reader, key.app_id)
    position = pruned if after is None else decode_position(after, key.app_id)
    queries.check_position(position, pruned)
    deadline = time.monotonic() + wait
    while True:
        rows = [] if head <= position or shown == () else await queries.events_between(
            reader, key.app_id, position, head, limit + 1, shown
        )
        if rows:
            break
        # Nothing (visible) up to the head: continue from there, so the next poll reads only what is newer.
        position = max(position, head)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await signal_of(request.app.state.engine).wait(key.app_id, min(POLL_SECONDS, remaining))
        pruned, head = await queries.feed_marks(reader, key.app_id)
        queries.check_position(position, pruned)
    has_more = len(rows) > limit
    page = rows[:limit]
    next_position = int(page[-1]["position"]) if has_more else max(position, head)
    data = [
        {"id": row["id"], "type": row["type"], "object_id": row["object_id"], "session_id": row["session_id"],
         "occurred_at": row["occurred_at"]}
        for row in page
    ]
    pagination = {"has_more": has_more, "next_cursor": encode_position(key.app_id, next_position),
                  "limit": limit}
    return json_response({"data": data, "pagination": pagination})


@router.get("/events/latest", response_model=FeedPositionEnvelope)
async def latest_event(app_id: AppIdPath, key: FeedKey, reader: ReaderDep) -> Response:
    """The current end of the feed: list everything, then follow GET /events from this cursor."""
    _pruned, head = await queries.feed_marks(reader, key.app_id)
    return json_response({"data": {"cursor": encode_position(key.app_id, head)}})
