"""The raw-row analytics oracle: what GET /analytics/usage and /analytics/token-usage must answer, counted
straight from the session and message rows through the engine. resources/analytics/rollups.py (whole days from
the rollups, partial days from the raw rows) must equal it: tests/integration/test_rollups.py checks that on
random data and ranges, and benchmarks/bench_scale.py times the two."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.days import utc_day
from chipp_builder.server.db.tables import message, session


def in_range(column: Any, after: datetime | None, before: datetime | None) -> list[Any]:
    """Strict bounds on a timestamp column; None is unbounded."""
    conditions = []
    if after is not None:
        conditions.append(column > after)
    if before is not None:
        conditions.append(column < before)
    return conditions


async def usage_by_day(
    db: AsyncConnection, app_id: UUID, after: datetime | None, before: datetime | None, *, distinct: bool = True
) -> tuple[dict[date, dict[str, int]], int]:
    """Sessions (by started_at) and messages (by created_at) per UTC day, and the distinct consumers (0
    when not `distinct`)."""
    dialect = db.dialect.name
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: {"session_count": 0, "message_count": 0})
    s_day = utc_day(session.c.started_at, dialect).label("day")
    session_where = [session.c.app_id == app_id, *in_range(session.c.started_at, after, before)]
    for row in (await db.execute(select(s_day, func.count()).where(*session_where).group_by(s_day))).all():
        per_day[row[0]]["session_count"] = row[1]
    m_day = utc_day(message.c.created_at, dialect).label("day")
    message_where = [message.c.app_id == app_id, *in_range(message.c.created_at, after, before)]
    for row in (await db.execute(select(m_day, func.count()).where(*message_where).group_by(m_day))).all():
        per_day[row[0]]["message_count"] = row[1]
    if not distinct:
        return dict(per_day), 0
    unique = (
        await db.execute(select(func.count(func.distinct(session.c.consumer_id))).where(*session_where))
    ).scalar_one()
    return dict(per_day), unique


async def tokens_by_day_and_model(
    db: AsyncConnection, app_id: UUID, after: datetime | None, before: datetime | None
) -> list[tuple[date, str | None, int, int]]:
    """(day, model, total_tokens, message_count) for every day and model with messages in the range."""
    m_day = utc_day(message.c.created_at, db.dialect.name)
    query = (
        select(m_day.label("day"), message.c.model, func.coalesce(func.sum(message.c.token_count), 0), func.count())
        .where(message.c.app_id == app_id, *in_range(message.c.created_at, after, before))
        .group_by(m_day, message.c.model)
    )
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in (await db.execute(query)).all()]
