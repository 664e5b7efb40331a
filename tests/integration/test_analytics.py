"""GET /analytics/usage and /analytics/token-usage (SPEC section 8): sums, UTC buckets, zero fill, bounds."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from tests.factories import (
    assert_error,
    consumer_record,
    get,
    make_app,
    message_record,
    session_record,
    uid,
)

C1, C2, C3 = uid(2, 1), uid(2, 2), uid(2, 3)
A = {n: uid(1, n) for n in range(1, 6)}

# 2025-06-01 is a Sunday, so it belongs to the week of Monday 2025-05-26; 2025-06-02 starts the next week.
RECORDS = [
    consumer_record(C1, "c1", "2025-05-01T00:00:00Z"),
    consumer_record(C2, "c2", "2025-05-01T00:00:00Z"),
    consumer_record(C3, "c3", "2025-05-01T00:00:00Z"),
    session_record(A[1], "2025-06-01T23:59:59Z", consumer_id=C1),
    session_record(A[2], "2025-06-02T00:00:00Z", consumer_id=C1),
    session_record(A[3], "2025-06-02T12:00:00Z", consumer_id=C2),
    session_record(A[4], "2025-06-05T08:00:00Z"),
    session_record(A[5], "2025-07-01T00:00:00Z", consumer_id=C3),
    message_record("a1m1", A[1], "2025-06-01T23:59:59.500000Z", token_count=50),
    message_record("a1m2", A[1], "2025-06-02T00:00:01Z", role="assistant", model="gpt-4o", token_count=100),
    message_record("a2m1", A[2], "2025-06-02T00:00:00Z"),
    message_record("a2m2", A[2], "2025-06-02T00:00:02Z", role="assistant", model="claude-3", token_count=100),
    message_record(
        "a3m1", A[3], "2025-06-02T12:00:01Z", role="assistant", model="gpt-4o-mini", token_count=50
    ),
    message_record("a4m1", A[4], "2025-06-05T08:00:01Z", role="assistant", model="gpt-4o", token_count=30),
    message_record("a4m2", A[4], "2025-06-05T08:00:02Z", role="assistant", model="claude-3", token_count=30),
    message_record("a5m1", A[5], "2025-07-01T00:00:01Z", role="assistant", model="zeta"),
]

PERIOD_RE = re.compile(r"\d{4}-\d{2}-\d{2}T00:00:00\.000Z")


def period(day: date | str) -> str:
    return f"{day}T00:00:00.000Z"


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@pytest.fixture
async def app(server):
    return await make_app(server, RECORDS)


async def usage(api, app, **params) -> dict:
    response = await get(api, app, "/analytics/usage", params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["data"]
    assert list(body["data"]) == ["summary", "timeseries"]
    assert list(body["data"]["summary"]) == ["total_sessions", "unique_consumers", "total_messages"]
    assert all(list(b) == ["period", "session_count", "message_count"] for b in body["data"]["timeseries"])
    return body["data"]


async def tokens(api, app, **params) -> dict:
    response = await get(api, app, "/analytics/token-usage", params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["data"]
    assert list(body["data"]) == ["summary", "by_model", "timeseries"]
    assert list(body["data"]["summary"]) == ["total_tokens", "message_count"]
    assert all(list(m) == ["model", "total_tokens", "message_count"] for m in body["data"]["by_model"])
    assert all(list(b) == ["period", "total_tokens", "message_count"] for b in body["data"]["timeseries"])
    return body["data"]


def series(data: dict, *fields: str) -> dict[str, tuple]:
    """Non-zero buckets as {period: (field values)}."""
    return {b["period"]: tuple(b[f] for f in fields) for b in data["timeseries"] if any(b[f] for f in fields)}


async def test_usage_summary_over_all_time(api, app):
    data = await usage(api, app)
    assert data["summary"] == {"total_sessions": 5, "unique_consumers": 3, "total_messages": 8}


async def test_usage_by_day_is_zero_filled_from_first_to_last_activity(api, app):
    data = await usage(api, app)
    assert [b["period"] for b in data["timeseries"]] == [
        period(d) for d in days(date(2025, 6, 1), date(2025, 7, 1))
    ]
    assert series(data, "session_count", "message_count") == {
        period("2025-06-01"): (1, 1),
        period("2025-06-02"): (2, 4),
        period("2025-06-05"): (1, 2),
        period("2025-07-01"): (1, 1),
    }


async def test_usage_timeseries_sums_to_the_summary(api, app):
    data = await usage(api, app)
    assert sum(b["session_count"] for b in data["timeseries"]) == data["summary"]["total_sessions"]
    assert sum(b["message_count"] for b in data["timeseries"]) == data["summary"]["total_messages"]


async def test_periods_are_utc_midnights_with_milliseconds(api, app):
    for group_by in ("day", "week", "month"):
        data = await usage(api, app, group_by=group_by)
        assert data["timeseries"]
        assert all(PERIOD_RE.fullmatch(b["period"]) for b in data["timeseries"])


async def test_usage_by_week_starts_weeks_on_monday(api, app):
    data = await usage(api, app, group_by="week")
    assert [(b["period"], b["session_count"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2025-05-26"), 1, 1),
        (period("2025-06-02"), 3, 6),
        (period("2025-06-09"), 0, 0),
        (period("2025-06-16"), 0, 0),
        (period("2025-06-23"), 0, 0),
        (period("2025-06-30"), 1, 1),
    ]


async def test_usage_by_month(api, app):
    data = await usage(api, app, group_by="month")
    assert [(b["period"], b["session_count"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2025-06-01"), 4, 7),
        (period("2025-07-01"), 1, 1),
    ]


async def test_usage_bounds_are_strict_on_sessions_and_messages(api, app):
    data = await usage(api, app, started_after="2025-06-02T00:00:00Z", started_before="2025-06-05T08:00:01Z")
    # A2 (exactly at the lower bound) and a4m1 (exactly at the upper bound) are out.
    assert data["summary"] == {"total_sessions": 2, "unique_consumers": 1, "total_messages": 3}
    assert [(b["period"], b["session_count"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2025-06-02"), 1, 3),
        (period("2025-06-03"), 0, 0),
        (period("2025-06-04"), 0, 0),
        (period("2025-06-05"), 1, 0),
    ]


async def test_unique_consumers_counts_distinct_consumers_who_started_a_session_in_range(api, app):
    data = await usage(api, app, started_before="2025-06-02T06:00:00Z")
    # A1 and A2 both belong to C1.
    assert data["summary"] == {"total_sessions": 2, "unique_consumers": 1, "total_messages": 4}


async def test_an_exclusive_upper_bound_at_midnight_ends_with_the_day_before(api, app):
    data = await usage(api, app, started_after="2025-06-01", started_before="2025-06-03")
    assert [b["period"] for b in data["timeseries"]] == [period("2025-06-01"), period("2025-06-02")]


async def test_the_lower_bound_fixes_the_first_bucket_and_the_last_activity_the_last(api, app):
    data = await usage(api, app, started_after="2025-06-30T00:00:00Z")
    assert [(b["period"], b["session_count"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2025-06-30"), 0, 0),
        (period("2025-07-01"), 1, 1),
    ]


async def test_the_upper_bound_fixes_the_last_bucket_and_the_first_activity_the_first(api, app):
    data = await usage(api, app, started_before="2025-06-04T12:00:00Z")
    assert [(b["period"], b["session_count"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2025-06-01"), 1, 1),
        (period("2025-06-02"), 2, 4),
        (period("2025-06-03"), 0, 0),
        (period("2025-06-04"), 0, 0),
    ]


async def test_bounds_without_activity_give_zero_filled_buckets(api, app):
    data = await usage(api, app, started_after="2024-01-01", started_before="2024-01-04")
    assert data["summary"] == {"total_sessions": 0, "unique_consumers": 0, "total_messages": 0}
    assert [(b["period"], b["session_count"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2024-01-01"), 0, 0),
        (period("2024-01-02"), 0, 0),
        (period("2024-01-03"), 0, 0),
    ]


async def test_a_week_range_starts_at_the_monday_of_the_lower_bound(api, app):
    data = await usage(api, app, group_by="week", started_after="2025-06-04", started_before="2025-06-10")
    assert [b["period"] for b in data["timeseries"]] == [period("2025-06-02"), period("2025-06-09")]
    assert [b["session_count"] for b in data["timeseries"]] == [1, 0]


async def test_a_month_range_starts_on_the_first_of_the_month(api, app):
    data = await usage(api, app, group_by="month", started_after="2025-06-15", started_before="2025-08-02")
    assert [b["period"] for b in data["timeseries"]] == [
        period("2025-06-01"),
        period("2025-07-01"),
        period("2025-08-01"),
    ]
    assert [b["session_count"] for b in data["timeseries"]] == [0, 1, 0]


async def test_buckets_are_utc_days_whatever_the_offset_of_the_bounds(api, app):
    # 2025-06-02T01:00:00+02:00 is 2025-06-01T23:00:00Z: the first bucket is June 1st (UTC).
    data = await usage(
        api, app, started_after="2025-06-02T01:00:00+02:00", started_before="2025-06-02T03:00:00+02:00"
    )
    assert [(b["period"], b["session_count"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2025-06-01"), 1, 1),
        (period("2025-06-02"), 1, 3),
    ]


async def test_no_bounds_and_no_data_give_an_empty_timeseries(api, server):
    app = await make_app(server)
    data = await usage(api, app)
    assert data == {
        "summary": {"total_sessions": 0, "unique_consumers": 0, "total_messages": 0},
        "timeseries": [],
    }


async def test_token_usage_with_no_data_is_all_zero(api, server):
    app = await make_app(server)
    data = await tokens(api, app)
    assert data == {"summary": {"total_tokens": 0, "message_count": 0}, "by_model": [], "timeseries": []}


async def test_token_usage_summary_over_all_time(api, app):
    data = await tokens(api, app)
    assert data["summary"] == {"total_tokens": 360, "message_count": 8}


async def test_by_model_is_sorted_by_tokens_then_name_with_null_last(api, app):
    data = await tokens(api, app)
    assert data["by_model"] == [
        {"model": "claude-3", "total_tokens": 130, "message_count": 2},
        {"model": "gpt-4o", "total_tokens": 130, "message_count": 2},
        {"model": "gpt-4o-mini", "total_tokens": 50, "message_count": 1},
        {"model": None, "total_tokens": 50, "message_count": 2},
        {"model": "zeta", "total_tokens": 0, "message_count": 1},
    ]


async def test_by_model_sums_to_the_summary(api, app):
    data = await tokens(api, app)
    assert sum(m["total_tokens"] for m in data["by_model"]) == data["summary"]["total_tokens"]
    assert sum(m["message_count"] for m in data["by_model"]) == data["summary"]["message_count"]


async def test_token_timeseries_by_day_counts_null_tokens_as_zero(api, app):
    data = await tokens(api, app)
    assert [b["period"] for b in data["timeseries"]] == [
        period(d) for d in days(date(2025, 6, 1), date(2025, 7, 1))
    ]
    assert series(data, "total_tokens", "message_count") == {
        period("2025-06-01"): (50, 1),
        period("2025-06-02"): (250, 4),
        period("2025-06-05"): (60, 2),
        period("2025-07-01"): (0, 1),
    }


async def test_token_timeseries_sums_to_the_summary(api, app):
    for group_by in ("day", "week", "month"):
        data = await tokens(api, app, group_by=group_by)
        assert sum(b["total_tokens"] for b in data["timeseries"]) == data["summary"]["total_tokens"]
        assert sum(b["message_count"] for b in data["timeseries"]) == data["summary"]["message_count"]


async def test_token_usage_by_week(api, app):
    data = await tokens(api, app, group_by="week")
    assert [(b["period"], b["total_tokens"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2025-05-26"), 50, 1),
        (period("2025-06-02"), 310, 6),
        (period("2025-06-09"), 0, 0),
        (period("2025-06-16"), 0, 0),
        (period("2025-06-23"), 0, 0),
        (period("2025-06-30"), 0, 1),
    ]


async def test_token_usage_by_month(api, app):
    data = await tokens(api, app, group_by="month")
    assert [(b["period"], b["total_tokens"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2025-06-01"), 360, 7),
        (period("2025-07-01"), 0, 1),
    ]


async def test_token_usage_bounds_are_strict(api, app):
    data = await tokens(api, app, started_after="2025-06-02T00:00:00Z", started_before="2025-06-05T08:00:01Z")
    assert data["summary"] == {"total_tokens": 250, "message_count": 3}
    assert data["by_model"] == [
        {"model": "claude-3", "total_tokens": 100, "message_count": 1},
        {"model": "gpt-4o", "total_tokens": 100, "message_count": 1},
        {"model": "gpt-4o-mini", "total_tokens": 50, "message_count": 1},
    ]
    assert [(b["period"], b["total_tokens"], b["message_count"]) for b in data["timeseries"]] == [
        (period("2025-06-02"), 250, 3),
        (period("2025-06-03"), 0, 0),
        (period("2025-06-04"), 0, 0),
        (period("2025-06-05"), 0, 0),
    ]


async def test_null_model_messages_alone_are_reported_under_null(api, app):
    data = await tokens(api, app, started_before="2025-06-01T23:59:59.600000Z")
    assert data["by_model"] == [{"model": None, "total_tokens": 50, "message_count": 1}]


# Bucket limits: 3,700 buckets are allowed, one more is a 400 that suggests a coarser group_by.
START = date(2000, 1, 3)  # a Monday, so week counts are exact


def month_after(start: date, months: int) -> date:
    total = start.year * 12 + start.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


@pytest.mark.parametrize(
    ("group_by", "before"),
    [
        ("day", START + timedelta(days=3700)),
        ("week", START + timedelta(weeks=3700)),
        ("month", month_after(date(2000, 1, 1), 3700)),
    ],
)
@pytest.mark.parametrize("endpoint", ["/analytics/usage", "/analytics/token-usage"])
async def test_3700_buckets_are_allowed(api, app, endpoint, group_by, before):
    after = START if group_by != "month" else date(2000, 1, 1)
    response = await get(
        api, app, endpoint, {"group_by": group_by, "started_after": after, "started_before": before}
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["timeseries"]) == 3700


@pytest.mark.parametrize(
    ("group_by", "before"),
    [
        ("day", START + timedelta(days=3701)),
        ("week", START + timedelta(weeks=3701)),
        ("month", month_after(date(2000, 1, 1), 3701)),
    ],
)
@pytest.mark.parametrize("endpoint", ["/analytics/usage", "/analytics/token-usage"])
async def test_more_than_3700_buckets_is_400_suggesting_a_coarser_group_by(
    api, app, endpoint, group_by, before
):
    after = START if group_by != "month" else date(2000, 1, 1)
    response = await get(
        api, app, endpoint, {"group_by": group_by, "started_after": after, "started_before": before}
    )
    message = assert_error(response, 400, "invalid_request")
    assert "group_by" in message and "3700" in message


async def test_a_huge_range_without_an_upper_bound_is_measured_to_the_last_activity(api, app):
    response = await get(api, app, "/analytics/usage", {"started_after": "1900-01-01"})
    assert_error(response, 400, "invalid_request")
    data = await usage(api, app, started_after="1900-01-01", group_by="month")
    assert len(data["timeseries"]) == (2025 - 1900) * 12 + 7


@pytest.mark.parametrize(
    "params",
    [
        {"started_after": "9999-12-31"},
        {"started_after": "9999-12-31T23:59:59Z", "group_by": "month"},
        {"started_before": "0001-01-01T00:00:00Z"},
        {"started_after": "0001-01-01T00:00:00Z", "started_before": "0001-01-03T00:00:00Z"},
    ],
)
@pytest.mark.parametrize("endpoint", ["/analytics/usage", "/analytics/token-usage"])
async def test_bounds_at_the_ends_of_the_calendar_are_not_server_errors(api, app, endpoint, params):
    response = await get(api, app, endpoint, params)
    assert response.status_code in (200, 400), response.text


async def test_periods_of_early_years_have_four_digit_years(api, app):
    data = await usage(api, app, started_after="0001-01-01T00:00:00Z", started_before="0001-01-03T00:00:00Z")
    assert [b["period"] for b in data["timeseries"]] == [
        "0001-01-01T00:00:00.000Z",
        "0001-01-02T00:00:00.000Z",
    ]
