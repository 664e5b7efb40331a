"""HTTP routes for usage and token-usage analytics."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.responses import Response

from chipp_builder.schemas.analytics import GroupBy, TokenUsageEnvelope, UsageEnvelope
from chipp_builder.schemas.common import format_period
from chipp_builder.server.auth import KeyIdentity
from chipp_builder.server.deps import ReaderDep, require
from chipp_builder.server.params import TimestampValue
from chipp_builder.server.resources.analytics import rollups
from chipp_builder.server.resources.analytics.buckets import bucket_range, sum_into_buckets
from chipp_builder.server.resources.common import AppIdPath, app_router
from chipp_builder.server.responses import json_response

router = app_router("analytics")
AnalyticsReadKey = Annotated[KeyIdentity, Depends(require("analytics"))]
After = Annotated[TimestampValue, Query(description="Count activity strictly after this time (default: all time).")]
Before = Annotated[TimestampValue, Query(description="Count activity strictly before this time.")]
Grouping = Annotated[GroupBy, Query(description="Bucket size: day (UTC), week (from Monday) or month.")]


def _period(day: date) -> str:
    return format_period(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _series(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "period": _period(row["period"])} for row in rows]


@router.get("/analytics/usage", response_model=UsageEnvelope)
async def get_usage(
    app_id: AppIdPath,
    key: AnalyticsReadKey,
    reader: ReaderDep,
    started_after: After = None,
    started_before: Before = None,
    group_by: Grouping = GroupBy.day,
) -> Response:
    """Sessions, unique consumers and messages over time."""
    per_day, unique = await rollups.usage_by_day(reader, key.app_id, started_after, started_before)
    starts = bucket_range(started_after, started_before, per_day.keys(), group_by.value)
    series = sum_into_buckets(per_day, starts, group_by.value, ("session_count", "message_count"))
    summary = {
        "total_sessions": sum(d["session_count"] for d in per_day.values()),
        "unique_consumers": unique,
        "total_messages": sum(d["message_count"] for d in per_day.values()),
    }
    return json_response({"data": {"summary": summary, "timeseries": _series(series)}})


@router.get("/analytics/token-usage", response_model=TokenUsageEnvelope)
async def get_token_usage(
    app_id: AppIdPath,
    key: AnalyticsReadKey,
    reader: ReaderDep,
    started_after: After = None,
    started_before: Before = None,
    group_by: Grouping = GroupBy.day,
) -> Response:
    """Token consumption by model and over time."""
    rows = await rollups.tokens_by_day_and_model(reader, key.app_id, started_after, started_before)
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: {"total_tokens": 0, "message_count": 0})
    per_model: dict[str | None, dict[str, int]] = defaultdict(lambda: {"total_tokens": 0, "message_count": 0})
    for day, model, tokens, count in rows:
        per_day[day]["total_tokens"] += tokens
        per_day[day]["message_count"] += count
        per_model[model]["total_tokens"] += tokens
        per_model[model]["message_count"] += count
    starts = bucket_range(started_after, started_before, per_day.keys(), group_by.value)
    series = sum_into_buckets(per_day, starts, group_by.value, ("total_tokens", "message_count"))
    # Most tokens first, then by model name, with messages without a model last.
    ordered = sorted(per_model.items(), key=lambda item: (-item[1]["total_tokens"], item[0] is None, item[0] or ""))
    by_model = [{"model": model, **counts} for model, counts in ordered]
    summary = {
        "total_tokens": sum(counts["total_tokens"] for counts in per_model.values()),
        "message_count": sum(counts["message_count"] for counts in per_model.values()),
    }
    return json_response({"data": {"summary": summary, "by_model": by_model, "timeseries": _series(series)}})
