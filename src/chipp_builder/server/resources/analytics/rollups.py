"""SQL for analytics from the daily rollups: whole UTC days from the rollup tables, the partial first and last
day of a range from the raw rows, so answers stay exact and cost follows days, not messages.

Read through the reader (db/fastread.py): every query is compiled once per combination of bounds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, select, union

from chipp_builder.server.db.counters import ACTIVE_CONSUMERS, read_counter
from chipp_builder.server.db.days import utc_day
from chipp_builder.server.db.fastread import Reader, ReadQuery
from chipp_builder.server.db.tables import daily_consumer, daily_message, daily_session, message, session

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


def _day_bounds(table: Any, first: bool, end: bool) -> list[Any]:
    conditions = [table.c.app_id == bindparam("app_id")]
    if first:
        conditions.append(table.c.day >= bindparam("first_day"))
    if end:
        conditions.append(table.c.day < bindparam("end_day"))
    return conditions


def _time_bounds(column: Any, after: bool, before: bool) -> list[Any]:
    conditions = []
    if after:
        conditions.append(column > bindparam("after", type_=column.type))
    if before:
        conditions.append(column < bindparam("before", type_=column.type))
    return conditions


@cache
def _whole_days(first: bool, end: bool) -> tuple[ReadQuery, ReadQuery, ReadQuery]:
    """Sessions per day, messages per day (summed over models) and (day, model) token rows, for whole days."""
    sessions = select(daily_session.c.day, daily_session.c.session_count).where(
        *_day_bounds(daily_session, first, end), daily_session.c.session_count > 0
    )
    messages = (
        select(daily_message.c.day, func.sum(daily_message.c.message_count).label("message_count"))
        .where(*_day_bounds(daily_message, first, end))
        .group_by(daily_message.c.day)
    )
    tokens = select(
        daily_message.c.day, daily_message.c.model_is_null, daily_message.c.model, daily_message.c.total_tokens,
        daily_message.c.message_count,
    ).where(*_day_bounds(daily_message, first, end), daily_message.c.message_count > 0)
    return ReadQuery(sessions, on_loop=True), ReadQuery(messages, on_loop=True), ReadQuery(tokens, on_loop=True)


@cache
def _raw_piece(after: bool, before: bool) -> tuple[ReadQuery, ReadQuery, ReadQuery]:
    """Sessions per day, messages per day and (day, model) token rows from the raw rows of a partial day."""

    def sessions(dialect: str) -> Any:
        day = utc_day(session.c.started_at, dialect).label("day")
        where = [session.c.app_id == bindparam("app_id"), *_time_bounds(session.c.started_at, after, before)]
        return select(day, func.count().label("session_count")).where(*where).group_by(day)

    def messages(dialect: str) -> Any:
        day = utc_day(message.c.created_at, dialect).label("day")
        where = [message.c.app_id == bindparam("app_id"), *_time_bounds(message.c.created_at, after, before)]
        return select(day, func.count().label("message_count")).where(*where).group_by(day)

    def tokens(dialect: str) -> Any:
        day = utc_day(message.c.created_at, dialect).label("day")
        where = [message.c.app_id == bindparam("app_id"), *_time_bounds(message.c.created_at, after, before)]
        return (
            select(
                day, message.c.model, func.coalesce(func.sum(message.c.token_count), 0).label("total_tokens"),
                func.count().label("message_count"),
            )
            .where(*where)
            .group_by(day, message.c.model)
        )

    return ReadQuery(sessions), ReadQuery(messages), ReadQuery(tokens)


@cache
def _unique_consumers(whole: bool, first: bool, end: bool, pieces: tuple[tuple[bool, bool], ...]) -> ReadQuery:
    """Distinct consumers over the whole days' consumer-days and the partial days' sessions (a bounded range)."""
    bounds = ("a", "b")

    def build(dialect: str) -> Any:
        sets: list[Any] = []
        if whole:
            sets.append(
                select(daily_consumer.c.consumer_id).where(
                    *_day_bounds(daily_consumer, first, end), daily_consumer.c.session_count > 0
                )
            )
        for n, (after, before) in enumerate(pieces):
            where = [session.c.app_id == bindparam("app_id"), session.c.consumer_id.is_not(None)]
            if after:
                where.append(session.c.started_at > bindparam(f"{bounds[n]}_after", type_=session.c.started_at.type))
            if before:
                where.append(session.c.started_at < bindparam(f"{bounds[n]}_before", type_=session.c.started_at.type))
            sets.append(select(session.c.consumer_id).where(*where))
        # UNION, not UNION ALL: a consumer seen on a whole day and on a partial one counts once.
        everyone: Any = sets[0].distinct() if len(sets) == 1 else union(*sets)
        return select(func.count().label("unique")).select_from(everyone.subquery())

    return ReadQuery(build)


def _bound_values(split: Split) -> dict[str, Any]:
    return {"first_day": split.first_day, "end_day": split.end_day}


async def usage_by_day(
    reader: Reader, app_id: UUID, after: datetime | None, before: datetime | None
) -> tuple[dict[date, dict[str, int]], int]:
    """Sessions (by started_at) and messages (by created_at) per UTC day, and the distinct consumers: from the
    rollups plus the raw partial days (tests/oracles/analytics.py holds the raw-row answer it must equal)."""
    split = split_range(after, before)
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: {"session_count": 0, "message_count": 0})
    first, end = split.first_day is not None, split.end_day is not None
    if split.whole:
        sessions, messages, _ = _whole_days(first, end)
        for row in await reader.fetch(sessions, app_id=app_id, **_bound_values(split)):
            per_day[row["day"]]["session_count"] += int(row["session_count"])
        for row in await reader.fetch(messages, app_id=app_id, **_bound_values(split)):
            if row["message_count"]:
                per_day[row["day"]]["message_count"] += int(row["message_count"])
    for lo, hi in split.raw:
        sessions, messages, _ = _raw_piece(lo is not None, hi is not None)
        for row in await reader.fetch(sessions, app_id=app_id, after=lo, before=hi):
            per_day[row["day"]]["session_count"] += int(row["session_count"])
        for row in await reader.fetch(messages, app_id=app_id, after=lo, before=hi):
            per_day[row["day"]]["message_count"] += int(row["message_count"])
    active = {day: counts for day, counts in per_day.items() if counts["session_count"] or counts["message_count"]}
    if after is None and before is None:
        # All time: the consumers any session names, a counter kept by every writer (db/counters.py).
        return active, await read_counter(reader, app_id, ACTIVE_CONSUMERS)
    # A bounded range: distinct consumers over the range's consumer-days (cost grows with the range's length).
    pieces = tuple((lo is not None, hi is not None) for lo, hi in split.raw)
    values: dict[str, Any] = {"app_id": app_id, **_bound_values(split)}
    for name, (lo, hi) in zip(("a", "b"), split.raw, strict=False):
        values[f"{name}_after"], values[f"{name}_before"] = lo, hi
    unique = await reader.fetch(_unique_consumers(split.whole, first, end, pieces), **values)
    return active, int(unique[0]["unique"])


async def tokens_by_day_and_model(
    reader: Reader, app_id: UUID, after: datetime | None, before: datetime | None
) -> list[tuple[date, str | None, int, int]]:
    """(day, model, total_tokens, message_count) for every day and model with messages in the range: from the
    rollups plus the raw partial days."""
    split = split_range(after, before)
    rows: list[tuple[date, str | None, int, int]] = []
    if split.whole:
        _, _, tokens = _whole_days(split.first_day is not None, split.end_day is not None)
        for row in await reader.fetch(tokens, app_id=app_id, **_bound_values(split)):
            model = None if row["model_is_null"] else row["model"]
            rows.append((row["day"], model, int(row["total_tokens"]), int(row["message_count"])))
    for lo, hi in split.raw:
        _, _, tokens = _raw_piece(lo is not None, hi is not None)
        for row in await reader.fetch(tokens, app_id=app_id, after=lo, before=hi):
            rows.append((row["day"], row["model"], int(row["total_tokens"]), int(row["message_count"])))
    return rows
