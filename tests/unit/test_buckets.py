"""Analytics buckets (SPEC section 8): UTC days, Monday weeks, months; the range rule; the 3,700 limit."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from chipp_builder.errors import InvalidRequest
from chipp_builder.server.resources.analytics.buckets import (
    MAX_BUCKETS,
    bucket_range,
    bucket_start,
    next_bucket,
    sum_into_buckets,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("day", "monday"),
    [
        (date(2025, 6, 2), date(2025, 6, 2)),  # Monday
        (date(2025, 6, 4), date(2025, 6, 2)),  # Wednesday
        (date(2025, 6, 8), date(2025, 6, 2)),  # Sunday
        (date(2025, 6, 1), date(2025, 5, 26)),  # Sunday, in the previous week
        (date(2025, 1, 1), date(2024, 12, 30)),  # across a year
    ],
)
def test_a_week_starts_on_its_monday(day, monday):
    assert bucket_start(day, "week") == monday


def test_a_month_starts_on_its_first_day():
    assert bucket_start(date(2024, 2, 29), "month") == date(2024, 2, 1)


def test_a_day_is_its_own_bucket():
    assert bucket_start(date(2025, 6, 4), "day") == date(2025, 6, 4)


@pytest.mark.parametrize(
    ("start", "group_by", "following"),
    [
        (date(2025, 6, 30), "day", date(2025, 7, 1)),
        (date(2024, 2, 28), "day", date(2024, 2, 29)),
        (date(2025, 12, 29), "week", date(2026, 1, 5)),
        (date(2025, 1, 1), "month", date(2025, 2, 1)),
        (date(2025, 12, 1), "month", date(2026, 1, 1)),
    ],
)
def test_the_next_bucket(start, group_by, following):
    assert next_bucket(start, group_by) == following


def test_no_bounds_and_no_activity_give_no_buckets():
    assert bucket_range(None, None, [], "day") == []


def test_no_bounds_span_the_first_to_the_last_active_day():
    active = [date(2025, 6, 3), date(2025, 6, 1)]
    assert bucket_range(None, None, active, "day") == [date(2025, 6, 1), date(2025, 6, 2), date(2025, 6, 3)]


def test_one_active_day_is_one_bucket():
    assert bucket_range(None, None, [date(2025, 6, 1)], "month") == [date(2025, 6, 1)]


def test_the_lower_bound_is_the_bucket_of_its_instant():
    buckets = bucket_range(at("2025-06-01T23:59:59Z"), None, [date(2025, 6, 3)], "day")
    assert buckets == [date(2025, 6, 1), date(2025, 6, 2), date(2025, 6, 3)]


def test_the_upper_bound_is_the_bucket_of_the_instant_just_before_it():
    assert bucket_range(at("2025-06-01T00:00:00Z"), at("2025-06-03T00:00:00Z"), [], "day") == [
        date(2025, 6, 1),
        date(2025, 6, 2),
    ]
    assert bucket_range(at("2025-06-01T00:00:00Z"), at("2025-06-03T00:00:00.000001Z"), [], "day")[-1] == date(
        2025, 6, 3
    )


def test_bounds_are_read_in_utc():
    plus_two = at("2025-06-02T01:00:00+02:00")  # 2025-06-01T23:00Z
    assert bucket_range(plus_two, plus_two + timedelta(hours=2), [], "day") == [
        date(2025, 6, 1),
        date(2025, 6, 2),
    ]


def test_an_upper_bound_alone_starts_at_the_first_activity():
    assert bucket_range(None, at("2025-06-03T12:00:00Z"), [date(2025, 6, 2)], "day") == [
        date(2025, 6, 2),
        date(2025, 6, 3),
    ]


def test_an_empty_or_inverted_range_has_no_buckets():
    assert bucket_range(at("2025-06-02T00:00:00Z"), at("2025-06-02T00:00:00Z"), [], "day") == []
    assert bucket_range(at("2025-06-05T00:00:00Z"), at("2025-06-01T00:00:00Z"), [], "day") == []


def test_week_buckets_start_on_mondays():
    buckets = bucket_range(at("2025-06-04T00:00:00Z"), at("2025-06-17T00:00:00Z"), [], "week")
    assert buckets == [date(2025, 6, 2), date(2025, 6, 9), date(2025, 6, 16)]
    assert all(b.weekday() == 0 for b in buckets)


def test_month_buckets_start_on_the_first():
    buckets = bucket_range(at("2024-11-15T00:00:00Z"), at("2025-02-01T00:00:00Z"), [], "month")
    assert buckets == [date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1)]


START = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday


def months_after(months: int) -> datetime:
    total = 2000 * 12 + months
    return datetime(total // 12, total % 12 + 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("group_by", "before"),
    [
        ("day", START + timedelta(days=MAX_BUCKETS)),
        ("week", START + timedelta(weeks=MAX_BUCKETS)),
        ("month", months_after(MAX_BUCKETS)),
    ],
)
def test_exactly_3700_buckets_are_allowed(group_by, before):
    after = START if group_by != "month" else datetime(2000, 1, 1, tzinfo=UTC)
    assert len(bucket_range(after, before, [], group_by)) == MAX_BUCKETS == 3700


@pytest.mark.parametrize(
    ("group_by", "before"),
    [
        ("day", START + timedelta(days=MAX_BUCKETS + 1)),
        ("week", START + timedelta(weeks=MAX_BUCKETS + 1)),
        ("month", months_after(MAX_BUCKETS + 1)),
        ("day", datetime(9999, 12, 31, tzinfo=UTC)),
    ],
)
def test_more_than_3700_buckets_is_invalid_and_names_group_by(group_by, before):
    after = START if group_by != "month" else datetime(2000, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidRequest, match="group_by"):
        bucket_range(after, before, [], group_by)


def test_the_last_day_of_the_calendar_is_a_bucket():
    assert bucket_range(datetime(9999, 12, 31, tzinfo=UTC), None, [], "day") == [date(9999, 12, 31)]
    assert bucket_range(datetime(9999, 12, 31, tzinfo=UTC), None, [], "month") == [date(9999, 12, 1)]


def test_an_upper_bound_at_the_first_instant_there_is_has_no_buckets():
    assert bucket_range(None, datetime(1, 1, 1, tzinfo=UTC), [date(2025, 6, 1)], "day") == []


def test_sums_go_into_their_buckets_and_the_rest_are_zero():
    per_day = {
        date(2025, 6, 1): {"session_count": 1, "message_count": 2},
        date(2025, 6, 3): {"session_count": 2},
        date(2025, 6, 4): {"message_count": 5},
    }
    starts = [date(2025, 5, 26), date(2025, 6, 2), date(2025, 6, 9)]
    assert sum_into_buckets(per_day, starts, "week", ("session_count", "message_count")) == [
        {"period": date(2025, 5, 26), "session_count": 1, "message_count": 2},
        {"period": date(2025, 6, 2), "session_count": 2, "message_count": 5},
        {"period": date(2025, 6, 9), "session_count": 0, "message_count": 0},
    ]


def test_no_buckets_give_an_empty_series():
    assert sum_into_buckets({date(2025, 6, 1): {"x": 1}}, [], "day", ("x",)) == []
