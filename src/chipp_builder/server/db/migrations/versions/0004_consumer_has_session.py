"""consumer.has_session and the per-app "active_consumers" counter (all-time unique consumers), backfilled.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases (SQLite allows it with a constant default): no table copy, so it takes
    # seconds on a million rows and no foreign key sees the consumer table dropped.
    op.add_column("consumer", sa.Column("has_session", sa.Boolean(), server_default=sa.false(), nullable=False))
    # Plain SQL, frozen here (see 0003): a consumer is active when any session names it.
    op.execute(
        "UPDATE consumer SET has_session = EXISTS (SELECT 1 FROM session "
        "WHERE session.app_id = consumer.app_id AND session.consumer_id = consumer.id)"
    )
    op.execute(
        "INSERT INTO app_counter (app_id, resource, row_count) "
        "SELECT app_id, 'active_consumers', count(*) FROM consumer WHERE has_session GROUP BY app_id"
    )


def downgrade() -> None:
    op.execute("DELETE FROM app_counter WHERE resource = 'active_consumers'")
    with op.batch_alter_table("consumer") as batch:
        batch.drop_column("has_session")
