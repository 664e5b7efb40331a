"""The mirror's position (docs/sync.md): one row per app that `chipp-builder mirror` keeps as a copy of a
remote app.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mirror_state",
        sa.Column("app_id", sa.Uuid(),
                  sa.ForeignKey("app.id", name="fk_mirror_state_app_id_app", ondelete="CASCADE"), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("app_id", name="pk_mirror_state"),
    )


def downgrade() -> None:
    op.drop_table("mirror_state")
