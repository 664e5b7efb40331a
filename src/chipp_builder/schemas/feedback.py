"""Feedback: consumers' ratings of messages."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from chipp_builder.schemas.common import DataEnvelope, OffsetList, Timestamp, WireModel
from chipp_builder.schemas.rules import NO_CONTROL_CHARACTERS, Documented, integral
from chipp_builder.schemas.sessions import RATER, Rating


class Feedback(WireModel):
    """One rating of one message."""

    id: str
    session_id: UUID
    message_id: str
    consumer_id: Annotated[UUID | None, Field(description=RATER)]
    rating: Rating
    message_preview: str | None
    created_at: Timestamp


class FeedbackCreate(BaseModel):
    """Body of POST /feedback."""

    model_config = ConfigDict(extra="forbid")

    # No control characters: no message id holds one, and PostgreSQL refuses NUL in text (it was a 500).
    message_id: str = Field(min_length=1, max_length=64, pattern=NO_CONTROL_CHARACTERS)
    # Validated as an integer from -1 to 1 (a strict Literal would take `true` for 1); documented as the enum.
    rating: Annotated[int, BeforeValidator(integral), Documented(enum=[-1, 0, 1])] = Field(ge=-1, le=1)
    consumer_id: UUID | None = Field(
        None, description="The consumer giving the rating; absent: the rated message's session's consumer."
    )


class FeedbackList(OffsetList[Feedback]):
    """A page of feedback."""


class FeedbackEnvelope(DataEnvelope[Feedback]):
    """One rating."""
