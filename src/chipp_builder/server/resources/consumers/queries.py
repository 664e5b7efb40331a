"""SQL for reading consumers (they are matched, created and erased in writes/consumers.py and writes/deletes.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select

from chipp_builder.server.db.fastread import Reader, ReadQuery
from chipp_builder.server.db.offset_list import OffsetList
from chipp_builder.server.db.tables import consumer
from chipp_builder.server.params import escape_like
from chipp_builder.server.writes.consumers import CONSUMER_COLUMNS

CONSUMER_LIST = OffsetList(
    consumer,
    CONSUMER_COLUMNS,
    (consumer.c.created_at.desc(), consumer.c.id.desc()),
    {
        "pattern": lambda: consumer.c.search_folded.like(bindparam("pattern"), escape="\\"),
        "with_email": lambda: consumer.c.email.is_not(None),
        "without_email": lambda: consumer.c.email.is_(None),
        "created_after": lambda: consumer.c.created_at > bindparam("created_after"),
        "created_before": lambda: consumer.c.created_at < bindparam("created_before"),
    },
    counter="consumers",
)


async def list_consumers(
    reader: Reader,
    app_id: UUID,
    *,
    limit: int,
    offset: int,
    search: str | None = None,
    has_email: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of consumers, newest first, and the total of the filtered set (unfiltered: the app's row counter)."""
    return await CONSUMER_LIST.fetch(
        reader, app_id, limit, offset,
        pattern=None if search is None else f"%{escape_like(search.casefold())}%",
        with_email=True if has_email is True else None,
        without_email=True if has_email is False else None,
        created_after=created_after, created_before=created_before,
    )


_CONSUMER_BY_ID = ReadQuery(
    select(*CONSUMER_COLUMNS).where(
        consumer.c.id == bindparam("consumer_id"), consumer.c.app_id == bindparam("app_id")
    ),
    on_loop=True,  # by primary key
)


async def get_consumer(reader: Reader, app_id: UUID, consumer_id: UUID) -> dict[str, Any] | None:
    """One consumer of this app, or None."""
    rows = await reader.fetch(_CONSUMER_BY_ID, consumer_id=consumer_id, app_id=app_id)
    return rows[0] if rows else None
