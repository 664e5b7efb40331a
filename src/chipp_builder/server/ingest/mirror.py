"""The copy database of `chipp-builder mirror` (docs/sync.md): the app row under the source's id, the mirror's
stored position, and every write of the copy through the server's own roads: objects through the JSON Lines
import (import records, one transaction a batch), deletions through writes/deletes.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from chipp_builder.errors import NotFound
from chipp_builder.schemas.common import utc_now
from chipp_builder.server.db.engine import checkpoint_wal
from chipp_builder.server.db.tables import (
    consumer,
    feedback,
    knowledge_source,
    memory,
    message,
    mirror_state,
    session,
    tag,
)
from chipp_builder.server.db.writelock import begin_immediate
from chipp_builder.server.ingest.importer import import_lines
from chipp_builder.server.resources.apps.queries import create_app, get_app
from chipp_builder.server.writes import deletes

_CHUNK = 500  # ids per IN list
_TABLES = {
    "consumer": consumer, "session": session, "message": message, "feedback": feedback, "tag": tag,
    "knowledge_source": knowledge_source, "memory": memory,
}
_UUID_KINDS = frozenset({"consumer", "session", "tag"})


class NotACopy(ValueError):
    """The database holds the app already, but not as a mirror's copy: the mirror will not write over it."""


class ImportRejected(ValueError):
    """The import refused records the source sent (their reasons joined)."""


class CopyDatabase:
    """One app of a local database kept as a copy of a remote app (the store `export/mirror.py` writes to)."""

    def __init__(self, engine: AsyncEngine, app_id: UUID) -> None:
        self.engine = engine
        self.app_id = app_id

    async def prepare(self, source: str) -> dict[str, Any] | None:
        """Create the copy's app under the source's id when the database lacks it; the stored state, or None
        for a first run. NotACopy when the app exists and no mirror made it."""
        async with self.engine.begin() as db:
            await begin_immediate(db)
            row = (await db.execute(select(mirror_state.c.state).where(
                mirror_state.c.app_id == self.app_id))).first()
            if row is not None:
                return dict(row.state) if row.state else None
            try:
                await get_app(db, self.app_id)
            except NotFound:
                await create_app(db, f"Mirror of {self.app_id}", self.app_id)
            else:
                raise NotACopy(
                    f"the database already holds app {self.app_id}, and not as a mirror's copy: mirror into "
                    "another database (a copy is written only by the mirror)"
                ) from None
            await self._write_state(db, source, {})
        return None

    async def save_state(self, source: str, state: dict[str, Any]) -> None:
        """Store where the copy stands, in a transaction of its own (after the changes it covers committed)."""
        async with self.engine.begin() as db:
            await begin_immediate(db)
            await self._write_state(db, source, state)

    async def _write_state(self, db: Any, source: str, state: dict[str, Any]) -> None:
        dialect = {"sqlite": sqlite, "postgresql": postgresql}[db.dialect.name]
        values = {"app_id": self.app_id, "source": source, "state": state, "updated_at": utc_now()}
        stmt = dialect.insert(mirror_state).values(**values)
        await db.execute(stmt.on_conflict_do_update(
            index_elements=["app_id"], set_={"source": source, "state": state, "updated_at": values["updated_at"]}))

    async def upsert(self, records: Sequence[dict[str, Any]]) -> int:
        """Write import records (docs/import-format.md) in one transaction; the number of rows that changed.
        ImportRejected, writing nothing, when a record is refused."""
        if not records:
            return 0
        lines = [json.dumps(record, ensure_ascii=False) for record in records]
        report = await import_lines(self.engine, self.app_id, lines)
        if report.errors:
            reasons = "; ".join(f"{lines[line - 1][:120]}: {reason}" for line, reason in report.errors[:5])
            raise ImportRejected(f"{len(report.errors)} records were refused: {reasons}")
        return sum(report.inserted.values()) + sum(report.updated.values())

    async def delete(self, kind: str, ids: Sequence[str]) -> int:
        """Delete objects of a kind (a session with its messages and ratings; a consumer erased with everything
        theirs; anything else with what depends on it), in one transaction; how many of them were here."""
        if not ids:
            return 0
        gone = 0
        async with self.engine.begin() as db:
            await begin_immediate(db)
            if kind == "session":
                for object_id in ids:
                    gone += await deletes.delete_session(db, self.app_id, UUID(object_id)) is not None
            elif kind == "consumer":
                for object_id in ids:
                    gone += await deletes.erase_consumer(db, self.app_id, UUID(object_id)) is not None
            else:
                removed = await deletes.delete_objects(db, self.app_id, kind, ids)
                gone = len(ids) if removed.head is not None else 0
        if kind == "consumer" and gone:
            await checkpoint_wal(self.engine)  # as the server does after an erasure: no bytes of it left behind
        return gone

    async def existing(self, kind: str, ids: Iterable[str]) -> set[str]:
        """Which of these ids of a kind the copy holds."""
        table = _TABLES[kind]
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        async with self.engine.connect() as db:
            for start in range(0, len(wanted), _CHUNK):
                chunk: list[Any] = wanted[start : start + _CHUNK]
                if kind in _UUID_KINDS:
                    chunk = [UUID(value) for value in chunk]
                rows = await db.execute(select(table.c.id).where(table.c.app_id == self.app_id,
                                                                 table.c.id.in_(chunk)))
                found.update(str(value) for value in rows.scalars())
        return found

    async def sort_times(self, kind: str, ids: Iterable[str]) -> dict[str, datetime]:
        """The time each of these objects sorts by in its list (a session's started_at, else created_at), for
        those the copy holds."""
        table = _TABLES[kind]
        column = table.c.started_at if kind == "session" else table.c.created_at
        wanted = list(dict.fromkeys(ids))
        found: dict[str, datetime] = {}
        async with self.engine.connect() as db:
            for start in range(0, len(wanted), _CHUNK):
                chunk: list[Any] = wanted[start : start + _CHUNK]
                if kind in _UUID_KINDS:
                    chunk = [UUID(value) for value in chunk]
                rows = await db.execute(select(table.c.id, column).where(table.c.app_id == self.app_id,
                                                                         table.c.id.in_(chunk)))
                found.update((str(row[0]), row[1]) for row in rows)
        return found

    async def ids(self, kind: str, session_id: str | None = None) -> set[str]:
        """Every id of a kind the copy holds (only this session's, for messages and feedback)."""
        table = _TABLES[kind]
        if session_id is None:
            query = select(table.c.id).where(table.c.app_id == self.app_id)
        elif kind == "message":
            # By session alone (a session is one app's): with app_id too, SQLite's planner takes the
            # (app_id, created_at) index and scans every message of the app (writes/derived.py says the same).
            query = select(table.c.id).where(table.c.session_id == UUID(session_id))
        else:
            query = select(table.c.id).where(table.c.app_id == self.app_id, table.c.session_id == UUID(session_id))
        async with self.engine.connect() as db:
            return {str(value) for value in (await db.execute(query)).scalars()}
