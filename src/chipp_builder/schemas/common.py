"""Envelopes, pagination blocks, enums and the timestamp type every resource shares."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from chipp_builder.errors import InvalidRequest

T = TypeVar("T")


def format_timestamp(value: datetime) -> str:
    """Render a timestamp as the API writes it: UTC, `Z`, six fraction digits only when there is a fraction."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def format_period(value: datetime) -> str:
    """Render an analytics bucket start with milliseconds, as `2025-06-01T00:00:00.000Z`."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # isoformat, not strftime: strftime's %Y drops the leading zeros of years before 1000 on some platforms.
    return value.isoformat(timespec="milliseconds") + "Z"


DATE_TIME_SCHEMA = {"type": "string", "format": "date-time"}
# Parsed by pydantic from any ISO form (the SDK gets aware datetimes); written in the API's form, which the
# document states as an RFC 3339 date-time (typed clients parse it into their date type).
Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema(DATE_TIME_SCHEMA),
]
# An analytics bucket's start as the API writes it (`2025-06-01T00:00:00.000Z`): kept as text by the SDK.
PeriodText = Annotated[str, WithJsonSchema(DATE_TIME_SCHEMA)]


class WireModel(BaseModel):
    """Base for wire models: unknown fields from a newer server are kept, not rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Source(StrEnum):
    """The channel a session came from."""

    APP = "APP"
    API = "API"
    WHATSAPP = "WHATSAPP"
    SLACK = "SLACK"
    EMAIL = "EMAIL"
    VOICE = "VOICE"
    WIDGET = "WIDGET"
    ACP = "ACP"


class Role(StrEnum):
    """Who wrote a message."""

    user = "user"
    assistant = "assistant"
    system = "system"
    tool = "tool"


class CursorPagination(WireModel):
    """Pagination block of a cursor list."""

    has_more: bool
    next_cursor: str | None
    limit: int


class OffsetPagination(WireModel):
    """Pagination block of an offset list."""

    has_more: bool
    total: int
    limit: int
    offset: int


class CursorList(WireModel, Generic[T]):
    """A page of a cursor-paginated list."""

    data: list[T]
    pagination: CursorPagination


class OffsetList(WireModel, Generic[T]):
    """A page of an offset-paginated list."""

    data: list[T]
    pagination: OffsetPagination


class DataEnvelope(WireModel, Generic[T]):
    """A single resource."""

    data: T


class ErrorBody(BaseModel):
    """The body of every error."""

    code: str
    message: str


class ErrorEnvelope(BaseModel):
    """Every non-2xx response: `{"error": {"code", "message"}}`."""

    error: ErrorBody


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


_DURATION_RE = re.compile(r"(\d{1,7})([smhd]?)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 86400}


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `12h`, `90d`, or a bare number of days (a key's lifetime, the event feed's retention)."""
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise InvalidRequest(f"Invalid duration {text!r}: use a positive number with s, m, h or d (e.g. 90d)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
