"""Per-day activity rollups (daily_session, daily_consumer, daily_message) kept exact in the writing
transaction: what analytics reads. Writers call these explicitly, for the reason db/counters.py gives."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Table, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.server.db.counters import add_increments, mark_active_consumers
from chipp_builder.server.db.days import utc_day
from chipp_builder.server.db.tables import daily_consumer, daily_message, daily_session, message, session


def day_of(at: datetime) -> date:
    """The UTC calendar day of an instant (a naive one is UTC)."""
    return (at if at.tzinfo is None else at.astimezone(UTC)).date()


async def add_activity(
    db: AsyncConnection,
    app_id: UUID,
    sessions: Iterable[tuple[datetime, UUID | None]] = (),
    messages: Iterable[tuple[datetime, str | None, int | None]] = (),
) -> None:
    """Count new rows into the rollups: sessions as (started_at, consumer_id), messages as
    (created_at, model, token_count). Only for rows that did not exist before (inserts, not replacements)."""
    per_day: Counter[date] = Counter()
    per_consumer: Counter[tuple[date, UUID]] = Counter()
    sessions = list(sessions)
    await mark_active_consumers(db, app_id, (cid for _, cid in sessions if cid is not None))
    for started_at, consumer_id in sessions:
        day = day_of(started_at)
        per_day[day] += 1
        if consumer_id is not None:
            per_consumer[(day, consumer_id)] += 1
    per_model: dict[tuple[date, str | None], list[int]] = {}
    for created_at, model, tokens in messages:
        counts = per_model.setdefault((day_of(created_at), model), [0, 0])
        counts[0] += 1
        counts[1] += tokens or 0
    await add_increments(
        db,
        daily_session,
        ("app_id", "day"),
        ("session_count",),
        [{"app_id": app_id, "day": day, "session_count": n} for day, n in per_day.items()],
    )
    await add_increments(
        db,
        daily_consumer,
        ("app_id", "day", "consumer_id"),
        ("session_count",),
        [
            {"app_id": app_id, "day": day, "consumer_id": cid, "session_count": n}
            for (day, cid), n in per_consumer.items()
        ],
    )
    await add_increments(
        db,
        daily_message,
        ("app_id", "day", "model_is_null", "model"),
        ("message_count", "total_tokens"),
        [
            {
                "app_id": app_id,
                "day": day,
                "model_is_null": model is None,
                "model": model or "",
                "message_count": n,
                "total_tokens": tokens,
            }
            for (day, model), (n, tokens) in per_model.items()
        ],
    )


def _day_ranges(days: Iterable[date], gap: int = 7) -> list[tuple[date, date]]:
    """Sorted days joined into inclusive ranges; days up to `gap` apart share one (recomputing the days
    between is harmless and saves statements)."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and (day - ranges[-1][1]).days <= gap:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


async def recompute_activity(db: AsyncConnection, app_id: UUID, days: Iterable[date] | None = None) -> None:
    """Rebuild the app's rollups for these UTC days (every day when None) from the session and message rows.

    Set-based: per run of days, one DELETE and one INSERT ... SELECT ... GROUP BY per rollup table, reading
    through the (app_id, started_at) and (app_id, created_at) indexes, so the cost follows the days touched.
    """
    dialect = db.dialect.name
    ranges: list[tuple[date | None, date | None]]
    ranges = [(None, None)] if days is None else list(_day_ranges(days))
    s_day, m_day = utc_day(session.c.started_at, dialect), utc_day(message.c.created_at, dialect)
    for first, last in ranges:
        s_where: list[Any] = [session.c.app_id == app_id]
        m_where: list[Any] = [message.c.app_id == app_id]
        r_where: dict[Table, list[Any]] = {t: [t.c.app_id == app_id] for t in _ROLLUPS}
        if first is not None and last is not None:
            lo = datetime(first.year, first.month, first.day, tzinfo=UTC)
            s_where.append(session.c.started_at >= lo)
            m_where.append(message.c.created_at >= lo)
            try:
                hi = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
                s_where.append(session.c.started_at < hi)
                m_where.append(message.c.created_at < hi)
            except OverflowError:  # the calendar's last day: nothing comes after it
                pass
            for table, where in r_where.items():
                where.extend((table.c.day >= first, table.c.day <= last))
        for table, where in r_where.items():
            await db.execute(delete(table).where(*where))
        app_value = literal(app_id, session.c.app_id.type)
        await db.execute(
            daily_session.insert().from_select(
                ["app_id", "day", "session_count"],
                select(app_value, s_day, func.count()).where(*s_where).group_by(s_day),
            )
        )
        await db.execute(
            daily_consumer.insert().from_select(
                ["app_id", "day", "consumer_id", "session_count"],
                select(app_value, s_day, session.c.consumer_id, func.count())
                .where(*s_where, session.c.consumer_id.is_not(None))
                .group_by(s_day, session.c.consumer_id),
            )
        )
        await db.execute(
            daily_message.insert().from_select(
                ["app_id", "day", "model_is_null", "model", "message_count", "total_tokens"],
                select(
                    app_value,
                    m_day,
                    message.c.model.is_(None),
                    func.coalesce(message.c.model, ""),
                    func.count(),
                    func.coalesce(func.sum(message.c.token_count), 0),
                )
                .where(*m_where)
                .group_by(m_day, message.c.model),
            )
        )


_ROLLUPS = (daily_session, daily_consumer, daily_message)
