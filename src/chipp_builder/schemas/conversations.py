"""Write-side wire models: POST /conversations/log and POST /consumers/auth, their bodies and results."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from chipp_builder.schemas.common import DataEnvelope, Role, Source, Timestamp, WireModel
from chipp_builder.schemas.consumers import Consumer

MAX_MESSAGES = 100
MAX_INT32 = 2**31 - 1

# Context keys the server passes to model_validate_json: its timestamp grammar (SPEC section 1) and the
# latest acceptable time (now plus the allowed clock skew). Without them (in the SDK) pydantic's own ISO
# parsing applies and nothing is checked against the clock.
PARSE_TIMESTAMP = "parse_timestamp"
NOT_AFTER = "not_after"


def _has_control_characters(text: str, allow_newlines: bool) -> bool:
    return any(unicodedata.category(c) == "Cc" and not (allow_newlines and c in "\t\n\r") for c in text)


def _plain_text(value: str) -> str:
    if _has_control_characters(value, allow_newlines=False):
        raise ValueError("control characters are not allowed")
    return value


def _message_text(value: str) -> str:
    if _has_control_characters(value, allow_newlines=True):
        raise ValueError("control characters other than tab and newline are not allowed")
    return value


def _printable_id(value: str) -> str:
    if not value.isprintable():
        raise ValueError("ids are printable characters")
    return value


def _email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    # Control characters too: NUL made PostgreSQL fail the insert (a 500), and SQLite stored it.
    if not at or not local or not domain or any(c.isspace() for c in value) \
            or _has_control_characters(value, allow_newlines=False):
        raise ValueError("not an email address")
    return value


def _web_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise ValueError("not an http(s) URL")
    return value


def _timestamp_before(value: Any, info: ValidationInfo) -> Any:
    """Parse text with the server's grammar when the server supplies it; refuse numbers (not timestamps)."""
    if isinstance(value, datetime) or value is None:
        return value
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    parse: Callable[[str], datetime] | None = (info.context or {}).get(PARSE_TIMESTAMP)
    return parse(value) if parse is not None else value


def _timestamp_after(value: datetime | None, info: ValidationInfo) -> datetime | None:
    """Naive means UTC; a time past the server's clock (plus its skew) is refused."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    not_after: datetime | None = (info.context or {}).get(NOT_AFTER)
    if not_after is not None and value > not_after:
        raise PydanticCustomError("chipp_rule", "must not be in the future")
    return value


def _drop_empty_strings(data: Any, fields: tuple[str, ...]) -> Any:
    """Automation tools send empty fields: an empty string in an optional field means absent."""
    if isinstance(data, dict) and any(data.get(name) == "" for name in fields):
        return {k: v for k, v in data.items() if not (k in fields and v == "")}
    return data


PlainText = Annotated[str, AfterValidator(_plain_text)]
WriteTimestamp = Annotated[
    datetime | None, BeforeValidator(_timestamp_before), AfterValidator(_timestamp_after)
]


class WriteModel(BaseModel):
    """Base for request bodies: unknown fields are refused, so a misspelt field is an error, not data loss."""

    model_config = ConfigDict(extra="forbid")


class LogConsumer(WriteModel):
    """Who the conversation is with: matched by id, then email, then identifier, else created."""

    id: UUID | None = None
    email: Annotated[str, Field(max_length=320), AfterValidator(_email)] | None = None
    name: Annotated[PlainText, Field(max_length=200)] | None = None
    identifier: Annotated[PlainText, Field(min_length=1, max_length=320)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        return _drop_empty_strings(data, ("id", "email", "name", "identifier"))


class ToolCallIn(BaseModel):
    """A tool the assistant invoked; extra fields are kept."""

    model_config = ConfigDict(extra="allow")

    tool_name: Annotated[PlainText, Field(min_length=1, max_length=200)]
    status: Annotated[PlainText, Field(max_length=64)]


class ToolResultIn(BaseModel):
    """What a tool returned (any JSON value); extra fields are kept."""

    model_config = ConfigDict(extra="allow")

    tool_name: Annotated[PlainText, Field(min_length=1, max_length=200)]
    result: Any = None


class LogMessage(WriteModel):
    """One chat turn to store; the server assigns `id` and `created_at` when they are absent."""

    role: Role
    content: Annotated[str, AfterValidator(_message_text)]
    created_at: WriteTimestamp = None
    model: Annotated[PlainText, Field(max_length=200)] | None = None
    token_count: Annotated[int, Field(ge=0, le=MAX_INT32)] | None = None
    latency_ms: Annotated[int, Field(ge=0, le=MAX_INT32)] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_results: list[ToolResultIn] | None = None
    id: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_printable_id)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        return _drop_empty_strings(data, ("created_at", "model", "id"))


class ConversationLog(WriteModel):
    """Body of POST /conversations/log: 1 to 100 messages, for a new session or appended to `session_id`."""

    session_id: UUID | None = None
    consumer: LogConsumer | None = None
    title: Annotated[PlainText, Field(max_length=1000)] | None = None
    source: Source | None = None
    messages: Annotated[list[LogMessage], Field(min_length=1, max_length=MAX_MESSAGES)]

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        return _drop_empty_strings(data, ("session_id", "title", "source"))


class ConversationLogged(WireModel):
    """What POST /conversations/log did: the session, its consumer and the new messages' ids, in order."""

    session_id: UUID
    consumer_id: UUID | None
    message_ids: list[str]


class ConsumerAuth(WriteModel):
    """Body of POST /consumers/auth: a site's own user, by its `external_id` and/or `email`."""

    external_id: Annotated[PlainText, Field(min_length=1, max_length=320)] | None = None
    email: Annotated[str, Field(max_length=320), AfterValidator(_email)] | None = None
    name: Annotated[PlainText, Field(max_length=200)] | None = None
    picture_url: Annotated[PlainText, Field(max_length=2048), AfterValidator(_web_url)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        return _drop_empty_strings(data, ("external_id", "email", "name", "picture_url"))

    @model_validator(mode="after")
    def _identified(self) -> ConsumerAuth:
        if self.external_id is None and self.email is None:
            raise PydanticCustomError("chipp_rule", "external_id or email is required")
        return self


class ConsumerToken(WireModel):
    """The consumer and a short-lived signed token naming the app and the consumer."""

    consumer: Consumer
    token: str
    expires_at: Timestamp


ConversationLoggedEnvelope = DataEnvelope[ConversationLogged]
ConsumerTokenEnvelope = DataEnvelope[ConsumerToken]
