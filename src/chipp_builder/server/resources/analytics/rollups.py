"""SQL for analytics from the daily rollups: whole UTC days from the rollup tables, the partial first and last
day of a range from the raw rows, so answers stay exact and cost follows days, not messages."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.days import as_date
from chipp_builder.server.db.tables import daily_consumer, daily_message, daily_session, session
from chipp_builder.server.ingest.derived import ACTIVE_CONSUMERS, row_count
from chipp_builder.server.resources.analytics import queries as raw

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Split:
    """A range cut into whole UTC days [first_day, end_day) read from rollups and raw (after, before) pieces.

    Raw pieces use the raw queries' strict bounds; None is unbounded. With no whole days the range is one
    raw piece (then it spans at most two days, or is empty).
    """

    first_day: date | None
    end_day: date | None
    whole: bool
    raw: tuple[tuple[datetime | None, datetime | None], ...]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def split_range(after: datetime | None, before: datetime | None) -> Split:
    """Cut (after, before) into the whole days the rollups answer and the partial days left to the raw rows."""
    try:
        # `after` is exclusive, so even at midnight its own day is partial (the midnight instant is left out).
        first = None if after is None else after.astimezone(UTC).date() + timedelta(days=1)
    except OverflowError:  # after falls on the calendar's last day: no whole day follows
        return Split(None, None, False, ((after, before),))
    end = None if before is None else before.astimezone(UTC).date()
    if first is not None and end is not None and first >= end:
        return Split(None, None, False, ((after, before),))
    pieces: list[tuple[datetime | None, datetime | None]] = []
    if after is not None and first is not None:
        pieces.append((after, _midnight(first)))
    if before is not None and end is not None and before > _midnight(end):
        start = _midnight(end)
        # Just before midnight, as the raw bounds are strict; on the calendar's first day, unbounded is the same.
        pieces.append((start - _TICK if end > date.min else None, before))
    return Split(first, end, True, tuple(pieces))


def _days(table: Any, split: Split) -> list[Any]:
    conditions = []
    if split.first_day is not None:
        conditions.append(table.c.day >= split.first_day)
    if split.end_day is not None:
        conditions.append(table.c.day < split.end_day)
    return conditions


async def usage_by_day(
    db: AsyncConnection, app_id: UUID, after: datetime | None, before: datetime | None
) -> tuple[dict[date, dict[str, int]], int]:
    """The same answer as queries.usage_by_day, from the rollups plus the raw partial days."""
    split = split_range(after, before)
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: {"session_count": 0, "message_count": 0})
    consumer_sets: list[Any] = []
    if split.whole:
        where = [daily_session.c.app_id == app_id, *_days(daily_session, split)]
        for day, count in (
            await db.execute(select(daily_session.c.day, daily_session.c.session_count).where(*where))
        ).all():
            if count:
                per_day[as_date(day)]["session_count"] += int(count)
        m_day = daily_message.c.day
        query = (
            select(m_day, func.sum(daily_message.c.message_count))
            .where(daily_message.c.app_id == app_id, *_days(daily_message, split))
            .group_by(m_day)
        )
        for day, count in (await db.execute(query)).all():
            if count:
                per_day[as_date(day)]["message_count"] += int(count)
        consumer_sets.append(
            select(daily_consumer.c.consumer_id).where(
                daily_consumer.c.app_id == app_id, daily_consumer.c.session_count > 0, *_days(daily_consumer, split)
            )
        )
    for lo, hi in split.raw:
        piece, _ = await raw.usage_by_day(db, app_id, lo, hi, distinct=False)
        for day, counts in piece.items():
            for name, value in counts.items():
                per_day[day][name] += value
        consumer_sets.append(
            select(session.c.consumer_id).where(
                session.c.app_id == app_id,
                session.c.consumer_id.is_not(None),
                *raw.in_range(session.c.started_at, lo, hi),
            )
        )
    active = {day: counts for day, counts in per_day.items() if counts["session_count"] or counts["message_count"]}
    if after is None and before is None:
        # All time: the consumers any session names, a counter kept by every writer (ingest/derived.py).
        return active, await row_count(db, app_id, ACTIVE_CONSUMERS)
    # A bounded range: distinct consumers over the range's consumer-days (cost grows with the range's length).
    # UNION, not UNION ALL: a consumer seen on a whole day and on a partial one counts once.
    everyone: Any = consumer_sets[0].distinct()  # a consumer is on one row per day they started a session
    if len(consumer_sets) > 1:
        everyone = union(*consumer_sets)
    unique = (await db.execute(select(func.count()).select_from(everyone.subquery()))).scalar_one()
    return active, int(unique)


async def tokens_by_day_and_model(
    db: AsyncConnection, app_id: UUID, after: datetime | None, before: datetime | None
) -> list[tuple[date, str | None, int, int]]:
    """The same rows as queries.tokens_by_day_and_model, from the rollups plus the raw partial days."""
    split = split_range(after, before)
    rows: list[tuple[date, str | None, int, int]] = []
    if split.whole:
        query = select(
            daily_message.c.day,
            daily_message.c.model_is_null,
            daily_message.c.model,
            daily_message.c.total_tokens,
            daily_message.c.message_count,
        ).where(daily_message.c.app_id == app_id, daily_message.c.message_count > 0, *_days(daily_message, split))
        for day, is_null, model, tokens, count in (await db.execute(query)).all():
            rows.append((as_date(day), None if is_null else model, int(tokens), int(count)))
    for lo, hi in split.raw:
        rows.extend(await raw.tokens_by_day_and_model(db, app_id, lo, hi))
    return rows
