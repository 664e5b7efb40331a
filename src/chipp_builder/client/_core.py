"""The transport-independent core shared by Client and AsyncClient: request descriptions, parameter and
body encoding, and turning a response into a model or the errors.py exception for its code."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx
from pydantic import BaseModel

from chipp_builder import __version__
from chipp_builder.errors import APIError, ConnectionFailed, RateLimited, TimedOut, TransportError, error_from_response
from chipp_builder.schemas.common import format_timestamp, utc_now

E = TypeVar("E", bound=BaseModel)

USER_AGENT = f"chipp-builder-python/{__version__}"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Methods that change nothing on the server, so repeating them after a failure is always safe.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

PageKind = Literal["cursor", "offset", "none"]


@dataclass(frozen=True)
class Call(Generic[E]):
    """One API request, described independently of sync or async transport; `envelope` parses its body."""

    method: str
    path: str
    envelope: type[E]
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # The least read timeout this request needs (a long poll holds its response for `wait` seconds); None:
    # the client's timeout as configured.
    min_read: float | None = None

    @property
    def retry_safe(self) -> bool:
        """Whether sending it twice cannot write twice: a read, or a write the server deduplicates by key."""
        return self.method in SAFE_METHODS or IDEMPOTENCY_HEADER in self.headers

    def with_params(self, params: dict[str, str]) -> Call[E]:
        """The same call with other query parameters (the next page of a list)."""
        return Call(self.method, self.path, self.envelope, params, self.body, self.headers, self.min_read)


@dataclass(frozen=True)
class ListCall(Call[E]):
    """A list request and how its pages chain: by `next_cursor`, by `offset`, or not at all."""

    kind: PageKind = "none"

    def with_params(self, params: dict[str, str]) -> ListCall[E]:
        """The same list call with other query parameters (the next page)."""
        return ListCall(self.method, self.path, self.envelope, params, self.body, self.headers, self.min_read,
                        self.kind)


def timeout_for(call: Call[Any], configured: httpx.Timeout) -> httpx.Timeout:
    """The client's timeout, its read part raised to what the call needs (a long poll's wait, and then some)."""
    if call.min_read is None or configured.read is None or configured.read >= call.min_read:
        return configured
    return httpx.Timeout(connect=configured.connect, read=call.min_read, write=configured.write,
                         pool=configured.pool)


def path_segment(value: object) -> str:
    """A path parameter, escaped so that any id (message ids are free-form strings) stays one segment."""
    return quote(str(value), safe="")


def encode_value(name: str, value: object) -> str:
    """One query value as the API reads it: datetimes RFC 3339 UTC, booleans true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        # A naive datetime is taken as UTC, as the server takes a timestamp without an offset.
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, UUID | int | float | str):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(encode_value(name, item) for item in value)
    raise TypeError(f"{name}: cannot send a {type(value).__name__} as a query parameter")


def encode_params(where: str, filters: Mapping[str, object], accepted: frozenset[str]) -> dict[str, str]:
    """Query parameters from keyword filters; None means absent, and an unknown name is an error here
    because the server silently ignores unknown parameters (a typo would return unfiltered data)."""
    unknown = sorted(set(filters) - accepted)
    if unknown:
        raise TypeError(f"{where}() got unexpected filter(s) {', '.join(unknown)}; accepted: "
                        f"{', '.join(sorted(accepted))}")
    return {name: encode_value(name, value) for name, value in filters.items() if value is not None}


def jsonable(value: Any) -> Any:
    """A request body value as JSON: models dumped, datetimes as RFC 3339 UTC, UUIDs and enums as strings."""
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(exclude_none=True))
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def compact(**fields: Any) -> dict[str, Any]:
    """A body object without its unset (None) optional fields."""
    return {name: jsonable(value) for name, value in fields.items() if value is not None}


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait: Retry-After as delta-seconds or an HTTP date; None when absent."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utc_now()).total_seconds())


def error_for(response: httpx.Response) -> APIError:
    """The errors.py exception a non-2xx response stands for, carrying its status, code and message."""
    try:
        body: object = response.json()
    except ValueError:
        body = None  # a proxy's HTML page, say: the status still picks the class
    wait = parse_retry_after(response.headers)
    retry_after = math.ceil(wait) if wait is not None else None
    error = error_from_response(response.status_code, body, retry_after)
    if isinstance(error, RateLimited):
        # The message says how long, so a log line of str(error) is enough to act on.
        error.message = f"{error.message} (retry after {error.retry_after} s)"
        error.args = (error.message,)
    return error


def decode(call: Call[E], response: httpx.Response) -> E:
    """The response's model for a 2xx, else raise its error."""
    if 200 <= response.status_code < 300:
        return call.envelope.model_validate_json(response.content)
    raise error_for(response)


def transport_error(exc: httpx.HTTPError, call: Call[Any]) -> TransportError:
    """The SDK error for a request that got no response: TimedOut or ConnectionFailed (the httpx exception
    stays chained as __cause__)."""
    if isinstance(exc, httpx.TimeoutException):
        return TimedOut(f"{call.method} {call.path} timed out: {type(exc).__name__}: {exc}")
    return ConnectionFailed(f"{call.method} {call.path} failed: {type(exc).__name__}: {exc}")
