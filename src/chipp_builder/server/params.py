"""Query parameters: the timestamp parser, shared declarations with their documented constraints, and
the one message per parameter that a 400 names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import Query
from pydantic import BeforeValidator

from chipp_builder.errors import InvalidRequest

# RFC 3339 and its common relatives: T or space, 1-9 fraction digits, Z/z or ±HH:MM / ±HHMM, or a bare date.
_TIMESTAMP_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.(?P<frac>\d{1,9}))?)?)"
    r"(?P<tz>[Zz]|[+\- ]\d{2}:?\d{2})?)?"
)

TIMESTAMP_HELP = "an RFC 3339 timestamp such as 2025-06-01T00:00:00Z or a date such as 2025-06-01"


def parse_timestamp(text: str) -> datetime:
    """Parse a timestamp parameter into an aware UTC datetime; ValueError when it is not one."""
    match = _TIMESTAMP_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError("not a timestamp")
    date, clock, frac, tz = match.group("date", "time", "frac", "tz")
    if clock is None:
        return datetime.fromisoformat(date).replace(tzinfo=UTC)
    if len(clock) == 5:
        clock += ":00"
    else:
        clock = clock.split(".")[0]
    micro = (frac or "").ljust(6, "0")[:6]
    offset = "+00:00"
    if tz and tz not in ("Z", "z"):
        # An unencoded '+' in a query string arrives as a space.
        sign = "+" if tz[0] == " " else tz[0]
        digits = tz[1:].replace(":", "")
        offset = f"{sign}{digits[:2]}:{digits[2:]}"
    value = datetime.fromisoformat(f"{date}T{clock}.{micro}{offset}")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-02:00: no such UTC instant
        raise ValueError("timestamp out of range") from None


def _timestamp(value: object) -> object:
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    return parse_timestamp(value)


def _uuid(value: object) -> object:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(str(value))


# What a 400 says for each parameter; the same name means the same thing on every endpoint.
SOURCES = ("APP", "API", "WHATSAPP", "SLACK", "EMAIL", "VOICE", "WIDGET", "ACP")
PARAM_MESSAGES: dict[str, str] = {
    "limit": "limit must be an integer between 1 and 100",
    "offset": "offset must be an integer between 0 and 1000000",
    "cursor": "Invalid cursor",
    "source": "source must be one of " + ", ".join(SOURCES),
    "role": "role must be one of user, assistant, system, tool",
    "include": "include must be a comma-separated list of: tool_details",
    "rating": "rating must be one of -1, 0, 1",
    "has_email": "has_email must be true or false",
    "status": "status must be one of pending, processing, completed, failed, deleting",
    "type": "type must be one of file, url, google_drive, notion, text, qa, sitemap, youtube, confluence",
    "memory_type": "memory_type must be one of preference, background, fact, insight, topic, query",
    "memory_layer": "memory_layer must be one of episodic, fact",
    "group_by": "group_by must be one of day, week, month",
    "search": "search must be text of at most 200 characters without control characters",
    "consumer_id": "consumer_id must be a UUID",
    "session_id": "session_id must be a UUID",
}
for _name in ("started_after", "started_before", "created_after", "created_before"):
    PARAM_MESSAGES[_name] = f"{_name} must be {TIMESTAMP_HELP}"


# The event feed's parameters differ from the lists' (a page of up to 500 events; a long poll's wait).
FEED_PARAM_MESSAGES: dict[str, str] = {
    "limit": "limit must be an integer between 1 and 500",
    "wait": "wait must be an integer between 0 and 30",
    "after": "Invalid cursor",
    "types": "types must be a comma-separated list of event types",
}


def message_for(name: str, path: str = "") -> str:
    """The 400 message for a bad value of the named parameter (of the request path's endpoint)."""
    if path.endswith("/events"):
        return FEED_PARAM_MESSAGES.get(name, f"{name} is invalid")
    return PARAM_MESSAGES.get(name, f"{name} is invalid")


TimestampValue = Annotated[datetime | None, BeforeValidator(_timestamp)]
UUIDValue = Annotated[UUID | None, BeforeValidator(_uuid)]


def timestamp_query(description: str) -> object:
    """A documented timestamp query parameter."""
    return Query(None, description=f"{description}; {TIMESTAMP_HELP} (no offset means UTC)")


Limit = Annotated[int, Query(ge=1, le=100, description="Results per page (1-100).")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Number of results to skip (0-1,000,000).")]
Cursor = Annotated[str | None, Query(max_length=512, description="Pagination cursor from the previous page.")]
# No control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F), as has_control_characters says.
NO_CONTROL_CHARACTERS = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
Search = Annotated[
    str | None,
    Query(max_length=200, pattern=NO_CONTROL_CHARACTERS,
          description="Case-insensitive substring without control characters; `%`, `_` and `\\` are literal."),
]


def escape_like(text: str) -> str:
    """Escape LIKE's metacharacters so that they match themselves (used with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def fold(text: str | None) -> str | None:
    """The casefolded copy that searches compare against."""
    return None if text is None else text.casefold()


def invalid(name: str) -> InvalidRequest:
    """The 400 for a parameter."""
    return InvalidRequest(message_for(name))
