"""Knowledge sources: the app's training data and its processing status."""

from __future__ import annotations

from enum import StrEnum

from chipp_builder.schemas.common import OffsetList, Timestamp, WireModel


class KnowledgeSourceStatus(StrEnum):
    """Processing state of a knowledge source."""

    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    deleting = "deleting"


class KnowledgeSourceType(StrEnum):
    """Kind of a knowledge source."""

    file = "file"
    url = "url"
    google_drive = "google_drive"
    notion = "notion"
    text = "text"
    qa = "qa"
    sitemap = "sitemap"
    youtube = "youtube"
    confluence = "confluence"


class KnowledgeSource(WireModel):
    """One knowledge source; storage paths are never exposed."""

    id: str
    name: str
    type: KnowledgeSourceType
    status: KnowledgeSourceStatus
    url: str | None
    error_message: str | None
    chunk_count: int
    file_size_bytes: int | None
    refresh_interval_hours: int | None
    last_refreshed_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class KnowledgeSourceList(OffsetList[KnowledgeSource]):
    """A page of knowledge sources."""
