"""Write-side wire models: POST /conversations/log and POST /consumers/auth, their bodies and results."""

from __future__ import annotations

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
from chipp_builder.schemas.rules import (
    EMAIL,
    EMPTY_MEANS_ABSENT,
    MESSAGE_TEXT,
    NO_CONTROL_CHARACTERS,
    WEB_URL,
    Documented,
    email,
    integral,
    message_text,
    plain_text,
    web_url,
)

MAX_MESSAGES = 100
MAX_INT32 = 2**31 - 1

# Context keys the server passes to model_validate_json: its timestamp grammar (SPEC section 1) and the
# latest acceptable time (now plus the allowed clock skew). Without them (in the SDK) pydantic's own ISO
# parsing applies and nothing is checked against the clock.
PARSE_TIMESTAMP = "parse_timestamp"
NOT_AFTER = "not_after"


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


PlainText = Annotated[str, AfterValidator(plain_text), Documented(pattern=NO_CONTROL_CHARACTERS)]
Email = Annotated[str, Field(max_length=320), AfterValidator(email), Documented(pattern=EMAIL)]
Count = Annotated[int, Field(ge=0, le=MAX_INT32), BeforeValidator(integral)]
# Message and feedback ids: 1 to 64 characters without control characters.
MessageId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(plain_text),
                      Documented(pattern=NO_CONTROL_CHARACTERS)]
WriteTimestamp = Annotated[
    datetime | None, BeforeValidator(_timestamp_before), AfterValidator(_timestamp_after)
]


class WriteModel(BaseModel):
    """Base for request bodies: unknown fields are refused, so a misspelt field is an error, not data loss."""

    model_config = ConfigDict(extra="forbid")


class LogConsumer(WriteModel):
    """Who the conversation is with: matched by id, then email, then identifier, else created."""

    id: Annotated[UUID | None, EMPTY_MEANS_ABSENT] = None
    email: Annotated[Email | None, EMPTY_MEANS_ABSENT] = None
    name: Annotated[Annotated[PlainText, Field(max_length=200)] | None, EMPTY_MEANS_ABSENT] = None
    identifier: Annotated[Annotated[PlainText, Field(min_length=1, max_length=320)] | None, EMPTY_MEANS_ABSENT] = None

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
    """What a tool returned (any JSON value, stored and given back as text); extra fields are kept."""

    model_config = ConfigDict(extra="allow")

    tool_name: Annotated[PlainText, Field(min_length=1, max_length=200)]
    result: Any = Field(
        None, description="Text, or any JSON value, which is stored as its JSON text (the API gives `result` "
        "as a string)."
    )


class LogMessage(WriteModel):
    """One chat turn to store; the server assigns `id` and `created_at` when they are absent."""

    role: Role
    content: Annotated[str, AfterValidator(message_text), Documented(pattern=MESSAGE_TEXT)]
    created_at: Annotated[WriteTimestamp, EMPTY_MEANS_ABSENT] = None
    model: Annotated[Annotated[PlainText, Field(max_length=200)] | None, EMPTY_MEANS_ABSENT] = None
    token_count: Count | None = None
    latency_ms: Count | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_results: list[ToolResultIn] | None = None
    id: Annotated[MessageId | None, EMPTY_MEANS_ABSENT] = None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        return _drop_empty_strings(data, ("created_at", "model", "id"))


class ConversationLog(WriteModel):
    """Body of POST /conversations/log: 1 to 100 messages, for a new session or appended to `session_id`."""

    session_id: Annotated[UUID | None, EMPTY_MEANS_ABSENT] = None
    consumer: LogConsumer | None = None
    title: Annotated[Annotated[PlainText, Field(max_length=1000)] | None, EMPTY_MEANS_ABSENT] = None
    source: Annotated[Source | None, EMPTY_MEANS_ABSENT] = None
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

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
        for name in ("external_id", "email")
    ]})

    external_id: Annotated[
        Annotated[PlainText, Field(min_length=1, max_length=320)] | None, EMPTY_MEANS_ABSENT
    ] = None
    email: Annotated[Email | None, EMPTY_MEANS_ABSENT] = None
    name: Annotated[Annotated[PlainText, Field(max_length=200)] | None, EMPTY_MEANS_ABSENT] = None
    picture_url: Annotated[
        Annotated[str, Field(max_length=2048), AfterValidator(web_url), Documented(pattern=WEB_URL)] | None,
        EMPTY_MEANS_ABSENT,
    ] = None

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
