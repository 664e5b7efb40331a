"""Consumers: the people who chat with the app."""

from __future__ import annotations

from uuid import UUID

from chipp_builder.schemas.common import DataEnvelope, OffsetList, Timestamp, WireModel


class Consumer(WireModel):
    """One consumer; never any credential or token."""

    id: UUID
    identifier: str
    email: str | None
    name: str | None
    picture_url: str | None
    email_verified: bool
    credits: int
    subscription_active: bool
    mode: str
    is_anonymous: bool
    created_at: Timestamp
    updated_at: Timestamp


class ConsumerList(OffsetList[Consumer]):
    """A page of consumers."""


class ConsumerEnvelope(DataEnvelope[Consumer]):
    """One consumer."""
