"""SQL for listing feedback (ratings are recorded in writes/feedback.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam

from chipp_builder.server.db.fastread import Reader
from chipp_builder.server.db.offset_list import OffsetList
from chipp_builder.server.db.tables import feedback
from chipp_builder.server.writes.feedback import FEEDBACK_COLUMNS, FEEDBACK_FROM

FEEDBACK_LIST = OffsetList(
    feedback,
    FEEDBACK_COLUMNS,
    (feedback.c.created_at.desc(), feedback.c.id.desc()),
    {
        "rating": lambda: feedback.c.rating == bindparam("rating"),
        "session_id": lambda: feedback.c.session_id == bindparam("session_id"),
        "created_after": lambda: feedback.c.created_at > bindparam("created_after"),
        "created_before": lambda: feedback.c.created_at < bindparam("created_before"),
    },
    counter="feedback",
    select_from=FEEDBACK_FROM,
)


async def list_feedback(
    reader: Reader,
    app_id: UUID,
    *,
    limit: int,
    offset: int,
    rating: int | None = None,
    session_id: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of feedback, newest first, with each rated message's preview, and the filtered total (unfiltered:
    the app's row counter, not a count(*))."""
    return await FEEDBACK_LIST.fetch(
        reader, app_id, limit, offset, rating=rating, session_id=session_id, created_after=created_after,
        created_before=created_before,
    )
