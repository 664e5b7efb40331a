"""Every table, in one MetaData. Derived values (counts) are columns the server maintains, never input."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    false,
)
from sqlalchemy.engine import Dialect

# String ids sort bytewise on every backend, so pages come in the same order on SQLite and PostgreSQL
# whatever the PostgreSQL database's default collation is.
IdString = String(64).with_variant(String(64, collation="C"), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every backend (SQLite keeps naive UTC text that sorts correctly)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


app = Table(
    "app",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

api_key = Table(
    "api_key",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    # SHA-256 of the whole raw key; the raw key itself is never stored.
    Column("key_hash", LargeBinary(32), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

consumer = Table(
    "consumer",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("identifier", String(320), nullable=False),
    Column("email", String(320), nullable=True),
    Column("name", String(200), nullable=True),
    Column("picture_url", Text, nullable=True),
    Column("email_verified", Boolean, nullable=False, default=False),
    Column("credits", BigInteger, nullable=False, default=0),
    Column("subscription_active", Boolean, nullable=False, default=False),
    Column("mode", String(64), nullable=False, default="default"),
    Column("is_anonymous", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # casefold() of name, email and identifier joined by \x1f (never in a search term: control characters are refused)
    Column("search_folded", Text, nullable=False, default=""),
    # Whether any session names this consumer: kept by db/counters.py with the app's "active_consumers"
    # counter, so all-time unique_consumers in analytics is one counter read, not a distinct count.
    Column("has_session", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_consumer_app_created", "app_id", "created_at", "id"),
    Index("ix_consumer_app_email", "app_id", "email"),
    Index("ix_consumer_app_identifier", "app_id", "identifier"),
)

session = Table(
    "session",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("consumer_id", Uuid, ForeignKey("consumer.id", ondelete="SET NULL"), nullable=True),
    Column("title", Text, nullable=True),
    Column("title_folded", Text, nullable=True),
    Column("source", String(16), nullable=False),
    Column("mode", String(64), nullable=False, default="default"),
    Column("is_bookmarked", Boolean, nullable=False, default=False),
    Column("is_multiplayer", Boolean, nullable=False, default=False),
    Column("message_count", Integer, nullable=False, default=0),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("last_activity_at", UTCDateTime, nullable=False),
    Index("ix_session_app_started", "app_id", "started_at", "id"),
    Index("ix_session_app_source_started", "app_id", "source", "started_at", "id"),
    Index("ix_session_app_consumer_started", "app_id", "consumer_id", "started_at", "id"),
)

message = Table(
    "message",
    metadata,
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("id", IdString, nullable=False),
    Column("session_id", Uuid, ForeignKey("session.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("model", String(200), nullable=True),
    Column("token_count", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("audio_url", Text, nullable=True),
    Column("audio_duration_ms", Integer, nullable=True),
    Column("tool_calls", JSON(none_as_null=True), nullable=True),
    Column("tool_results", JSON(none_as_null=True), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("app_id", "id"),
    Index("ix_message_session_created", "session_id", "created_at", "id"),
    Index("ix_message_session_role_created", "session_id", "role", "created_at", "id"),
    Index("ix_message_app_created", "app_id", "created_at"),
)

tag = Table(
    "tag",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("color", String(16), nullable=False),
    Column("usage_count", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_tag_app_created", "app_id", "created_at", "id"),
)

message_tag = Table(
    "message_tag",
    metadata,
    Column("app_id", Uuid, nullable=False),
    Column("message_id", IdString, nullable=False),
    Column("tag_id", Uuid, ForeignKey("tag.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("app_id", "message_id", "tag_id"),
    ForeignKeyConstraint(["app_id", "message_id"], ["message.app_id", "message.id"], ondelete="CASCADE"),
    Index("ix_message_tag_tag", "tag_id"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("id", IdString, nullable=False),
    Column("session_id", Uuid, nullable=False),
    # No foreign key: a rating outlives its message (then message_preview is null).
    Column("message_id", IdString, nullable=False),
    Column("consumer_id", Uuid, nullable=True),
    Column("rating", SmallInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("app_id", "id"),
    Index("ix_feedback_app_created", "app_id", "created_at", "id"),
    Index("ix_feedback_app_rating_created", "app_id", "rating", "created_at", "id"),
    Index("ix_feedback_app_session_created", "app_id", "session_id", "created_at", "id"),
    Index("ix_feedback_app_message_created", "app_id", "message_id", "created_at", "id"),
)

knowledge_source = Table(
    "knowledge_source",
    metadata,
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("id", IdString, nullable=False),
    Column("name", Text, nullable=False),
    Column("type", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("url", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("chunk_count", Integer, nullable=False, default=0),
    Column("file_size_bytes", BigInteger, nullable=True),
    Column("refresh_interval_hours", Integer, nullable=True),
    Column("last_refreshed_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("app_id", "id"),
    Index("ix_knowledge_source_app_created", "app_id", "created_at", "id"),
)

memory = Table(
    "memory",
    metadata,
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("id", IdString, nullable=False),
    Column("consumer_id", Uuid, nullable=True),
    Column("external_user_id", String(200), nullable=True),
    Column("content", Text, nullable=False),
    Column("memory_type", String(32), nullable=False),
    Column("memory_layer", String(32), nullable=False),
    Column("confidence", Float, nullable=False, default=0.0),
    Column("source_message_id", IdString, nullable=True),
    Column("session_id", Uuid, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("app_id", "id"),
    Index("ix_memory_app_created", "app_id", "created_at", "id"),
    Index("ix_memory_app_consumer_created", "app_id", "consumer_id", "created_at", "id"),
)

idempotency_key = Table(
    "idempotency_key",
    metadata,
    # Keys are scoped to the API key that sent them; revoking or deleting the key drops its records.
    Column("api_key_id", Uuid, ForeignKey("api_key.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    # SHA-256 of the endpoint and the canonical JSON body: a retry must send the same JSON value.
    Column("fingerprint", LargeBinary(32), nullable=False),
    # The first response. The row is claimed before the write and filled in after it, in the same
    # transaction, so other requests only ever see it complete; only 2xx responses are ever committed.
    Column("status_code", SmallInteger, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("api_key_id", "key"),
    Index("ix_idempotency_key_expires", "expires_at"),
)

server_secret = Table(
    "server_secret",
    metadata,
    # Per-deployment secrets generated on first use (e.g. the consumer-token signing key); never configured
    # by default, never exposed.
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

event = Table(
    "event",
    metadata,
    # The app's feed (SPEC section 11), written by server/writes/events.py in the transaction of the change.
    # `position` is the app's feed counter (app_counter row "feed_head") at the change: taken under that row's
    # lock, so positions follow commit order on PostgreSQL too. Thin: no content, only what changed.
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("type", String(32), nullable=False),
    Column("object_id", IdString, nullable=False),
    Column("session_id", Uuid, nullable=True),
    Column("occurred_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("app_id", "position"),
    Index("ix_event_occurred", "occurred_at"),
)

mirror_state = Table(
    "mirror_state",
    metadata,
    # `chipp-builder mirror` (docs/sync.md): this app is a copy of a remote app with the same id; `state` is
    # where its copy stands (the feed cursor to continue from, or that the source has no feed). Written only
    # after the changes it covers are committed, so an interrupted run continues from the last stored one.
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), primary_key=True),
    Column("source", Text, nullable=False),
    Column("state", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# --- Server-maintained summaries (db/counters.py, db/daily_rollups.py keep them exact in the writing transaction) ---

app_counter = Table(
    "app_counter",
    metadata,
    # Rows per app of each offset-listed resource (consumers, feedback, memories, knowledge_sources), so an
    # unfiltered list's exact total is one primary-key read instead of a count over the app's rows.
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("resource", String(32), nullable=False),
    Column("row_count", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("app_id", "resource"),
)

daily_session = Table(
    "daily_session",
    metadata,
    # Sessions started per app and UTC day: analytics reads these instead of the session rows.
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("day", Date, nullable=False),
    Column("session_count", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("app_id", "day"),
)

daily_consumer = Table(
    "daily_consumer",
    metadata,
    # One row per consumer per UTC day on which they started a session (with how many, so a replaced session
    # can be taken off exactly): distinct consumers over a range cannot be summed from daily counts.
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("day", Date, nullable=False),
    Column("consumer_id", Uuid, nullable=False),
    Column("session_count", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("app_id", "day", "consumer_id"),
)

daily_message = Table(
    "daily_message",
    metadata,
    # Messages and tokens per app, UTC day and model. A primary key cannot hold a NULL, so a message without
    # a model is stored as model '' with model_is_null true ('' is also a model name an import may carry).
    Column("app_id", Uuid, ForeignKey("app.id", ondelete="CASCADE"), nullable=False),
    Column("day", Date, nullable=False),
    Column("model_is_null", Boolean, nullable=False),
    Column("model", String(200), nullable=False),
    Column("message_count", BigInteger, nullable=False, default=0),
    Column("total_tokens", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("app_id", "day", "model_is_null", "model"),
)
