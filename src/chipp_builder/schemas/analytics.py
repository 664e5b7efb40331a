"""Usage and token-usage analytics."""

from __future__ import annotations

from enum import StrEnum

from chipp_builder.schemas.common import DataEnvelope, PeriodText, WireModel


class GroupBy(StrEnum):
    """Bucket size of an analytics timeseries."""

    day = "day"
    week = "week"
    month = "month"


class UsageSummary(WireModel):
    """Totals over the range."""

    total_sessions: int
    unique_consumers: int
    total_messages: int


class UsagePoint(WireModel):
    """One bucket of the usage timeseries; `period` is the bucket's start with milliseconds."""

    period: PeriodText
    session_count: int
    message_count: int


class Usage(WireModel):
    """Sessions and messages over time."""

    summary: UsageSummary
    timeseries: list[UsagePoint]


class TokenSummary(WireModel):
    """Token totals over the range."""

    total_tokens: int
    message_count: int


class ModelTokens(WireModel):
    """Tokens of one model (`null` for messages without a model)."""

    model: str | None
    total_tokens: int
    message_count: int


class TokenPoint(WireModel):
    """One bucket of the token timeseries."""

    period: PeriodText
    total_tokens: int
    message_count: int


class TokenUsage(WireModel):
    """Token consumption, by model and over time."""

    summary: TokenSummary
    by_model: list[ModelTokens]
    timeseries: list[TokenPoint]


class UsageEnvelope(DataEnvelope[Usage]):
    """Usage analytics."""


class TokenUsageEnvelope(DataEnvelope[TokenUsage]):
    """Token-usage analytics."""
