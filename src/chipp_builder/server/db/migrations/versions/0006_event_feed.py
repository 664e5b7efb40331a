"""The event feed (SPEC section 11): the event table. The feed of existing data starts empty at this upgrade;
its position is the app_counter row "feed_head", written by server/writes/events.py.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("app_id", sa.Uuid(), sa.ForeignKey("app.id", name="fk_event_app_id_app", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("object_id", _ID, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("app_id", "position", name="pk_event"),
    )
    op.create_index("ix_event_occurred", "event", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_event_occurred", table_name="event")
    op.drop_table("event")
    op.execute("DELETE FROM app_counter WHERE resource IN ('feed_head', 'feed_pruned')")
