"""Calendar buckets for analytics: UTC days, Monday weeks, months; sums of days, zero-filled."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta

from chipp_builder.errors import InvalidRequest

MAX_BUCKETS = 3700


def bucket_start(day: date, group_by: str) -> date:
    """The first day of the bucket that holds `day`."""
    if group_by == "week":
        return day - timedelta(days=day.weekday())
    if group_by == "month":
        return day.replace(day=1)
    return day


def next_bucket(start: date, group_by: str) -> date:
    """The first day of the bucket after the one starting at `start`."""
    if group_by == "week":
        return start + timedelta(days=7)
    if group_by == "month":
        return date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def bucket_range(
    after: datetime | None, before: datetime | None, active_days: Iterable[date], group_by: str
) -> list[date]:
    """Every bucket start from the first to the last bucket of the range, ascending.

    A given bound fixes its end (the exclusive upper bound by the instant just before it); a missing one
    falls back to the first or last day with activity; no bounds and no activity give no buckets.
    """
    days = sorted(active_days)
    first_day = after.astimezone(UTC).date() if after is not None else (days[0] if days else None)
    if before is not None:
        try:
            last_day: date | None = (before.astimezone(UTC) - timedelta(microseconds=1)).date()
        except OverflowError:  # the upper bound is the first instant there is: nothing comes before it
            return []
    else:
        last_day = days[-1] if days else first_day
    if first_day is None or last_day is None or last_day < first_day:
        return []
    first, last = bucket_start(first_day, group_by), bucket_start(last_day, group_by)
    # Never above the true count (a month has at most 31 days): only a range that is too long fails here.
    estimate = (last - first).days // {"day": 1, "week": 7, "month": 31}[group_by] + 1
    if estimate > MAX_BUCKETS + 2:
        raise InvalidRequest(
            f"The range holds more than {MAX_BUCKETS} {group_by} buckets; use a coarser group_by or a shorter range"
        )
    starts = []
    current = first
    while current <= last:
        starts.append(current)
        try:
            current = next_bucket(current, group_by)
        except (OverflowError, ValueError):  # the calendar ends (year 9999): this was the last bucket
            break
    if len(starts) > MAX_BUCKETS:
        raise InvalidRequest(
            f"The range holds more than {MAX_BUCKETS} {group_by} buckets; use a coarser group_by or a shorter range"
        )
    return starts


def sum_into_buckets(
    per_day: Mapping[date, Mapping[str, int]], starts: list[date], group_by: str, fields: tuple[str, ...]
) -> list[dict[str, int | date]]:
    """Sum per-day counts into the given buckets; buckets without activity are zeros."""
    totals: dict[date, dict[str, int]] = {start: dict.fromkeys(fields, 0) for start in starts}
    for day, counts in per_day.items():
        bucket = totals.get(bucket_start(day, group_by))
        if bucket is None:
            continue
        for field in fields:
            bucket[field] += int(counts.get(field, 0))
    return [{"period": start, **totals[start]} for start in starts]
