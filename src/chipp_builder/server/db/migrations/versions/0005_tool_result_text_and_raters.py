"""Data only: every stored tool result becomes text (a structured one its JSON text), and every rating
without a consumer takes its session's consumer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 04:10:00

Why a migration and not a conversion when reading: the messages page sends stored tool lists on as they are
(no parse, no re-encode, sessions/queries.py), so converting there would parse every tool list of every
read, forever, on the hottest route; converting the stored rows once keeps reads as they are, and leaves one
form in the database for exports, backups and the import's comparison of stored rows.
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000  # messages read and rewritten per round trip: memory stays flat on any size of database

_message = sa.table(
    "message",
    sa.column("app_id", sa.Uuid()),
    sa.column("id", sa.String()),
    sa.column("tool_results", sa.JSON(none_as_null=True)),
)


def _text(value: Any) -> str:
    # Frozen copy of schemas.sessions.tool_result_text (a migration must not change when the code does).
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _as_text(results: Any) -> Any:
    """The tool list with every result as text, or None when it needs no change."""
    if not isinstance(results, list):
        return None
    if all(not isinstance(item, dict) or isinstance(item.get("result"), str) for item in results):
        return None
    return [
        {**item, "result": _text(item.get("result"))} if isinstance(item, dict) and "result" in item else item
        for item in results
    ]


def upgrade() -> None:
    connection = op.get_bind()
    last: tuple[Any, str] | None = None
    while True:
        query = sa.select(_message.c.app_id, _message.c.id, _message.c.tool_results).where(
            _message.c.tool_results.is_not(None)
        )
        if last is not None:
            query = query.where(sa.tuple_(_message.c.app_id, _message.c.id) > sa.tuple_(*last))
        rows = connection.execute(query.order_by(_message.c.app_id, _message.c.id).limit(BATCH)).all()
        if not rows:
            break
        last = (rows[-1].app_id, rows[-1].id)
        changed = [
            {"a": row.app_id, "i": row.id, "results": fixed}
            for row in rows
            if (fixed := _as_text(row.tool_results)) is not None
        ]
        if changed:
            connection.execute(
                sa.update(_message)
                .where(_message.c.app_id == sa.bindparam("a"), _message.c.id == sa.bindparam("i"))
                .values(tool_results=sa.bindparam("results", type_=sa.JSON(none_as_null=True))),
                changed,
            )
    # A rating stored without a consumer was its session's consumer's, as new ones are; one in a session
    # without a consumer stays null (nobody to name).
    op.execute(
        "UPDATE feedback SET consumer_id = (SELECT session.consumer_id FROM session "
        "WHERE session.app_id = feedback.app_id AND session.id = feedback.session_id) "
        "WHERE consumer_id IS NULL"
    )


def downgrade() -> None:
    # Nothing to undo in the schema; the texts and the named consumers are valid data for 0004 as well.
    pass
