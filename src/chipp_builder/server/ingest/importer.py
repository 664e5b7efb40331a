"""The JSON Lines bulk import (SPEC section 10): validate every line (records.py) into a staging database
(staging.py), resolve references there, upsert in one transaction, then recompute the derived counts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chipp_builder.server.db.tables import (
    consumer,
    message,
    session,
    tag,
)
from chipp_builder.server.db.writelock import begin_immediate
from chipp_builder.server.ingest.records import ImportReport
from chipp_builder.server.ingest.staging import Staging, staging
from chipp_builder.server.resources.apps.queries import get_app
from chipp_builder.server.writes.imports import WRITE_ORDER, write_staged

_WRITE_CHUNK = 2000  # rows per executemany: big enough to amortise round trips, small enough for memory
_LOOKUP_CHUNK = 1000  # ids per IN list, well under SQLite's and asyncpg's bound-parameter limits
_PROGRESS_EVERY = 1000  # lines between progress callbacks


# ---------------------------------------------------------------------------------------------------------
# Looking up what the database holds (the writing is writes/imports.py's).

_OWNED = {"consumer": consumer, "session": session, "tag": tag}  # keyed by a UUID alone, across apps


async def _lookup(db: AsyncConnection, app_id: UUID, spool: Staging) -> None:
    """Copy into staging the owners of every UUID, the consumers of the app's sessions and the sessions of every
    message id the file defines or references, a chunk of ids at a time."""
    for kind, table in _OWNED.items():
        for chunk in spool.wanted(kind, _LOOKUP_CHUNK):
            query = select(table.c.id, table.c.app_id).where(table.c.id.in_([UUID(value) for value in chunk]))
            rows = await db.execute(query)
            spool.add_existing(kind, [(str(row.id), str(row.app_id), row.app_id == app_id) for row in rows])
    for chunk in spool.wanted("session", _LOOKUP_CHUNK):
        # A rating without a consumer_id takes its session's consumer (staging.py).
        query = select(session.c.id, session.c.consumer_id).where(
            session.c.app_id == app_id, session.c.id.in_([UUID(value) for value in chunk])
        )
        stored = await db.execute(query)
        spool.add_session_consumers(
            [(str(row.id), None if row.consumer_id is None else str(row.consumer_id)) for row in stored]
        )
    for chunk in spool.wanted("message", _LOOKUP_CHUNK):
        query = select(message.c.id, message.c.session_id).where(message.c.app_id == app_id, message.c.id.in_(chunk))
        rows = await db.execute(query)
        spool.add_existing("message", [(row.id, str(row.session_id), True) for row in rows])


async def _run(
    engine: AsyncEngine,
    app_id: UUID,
    numbered_lines: Iterable[tuple[int, str | bytes, int]],
    skip_invalid: bool,
    progress: Callable[[int], None] | None,
) -> ImportReport:
    """Parse every (line number, text, progress position) item, resolve, and write unless a line is bad."""
    with staging() as spool:
        position = 0
        for line_no, text, position in numbered_lines:
            spool.add(line_no, text)
            if progress is not None and line_no % _PROGRESS_EVERY == 0:
                progress(position)
        spool.flush()
        if progress is not None:
            progress(position)

        report = ImportReport(
            lines=spool.lines,
            inserted=dict.fromkeys(WRITE_ORDER, 0),
            updated=dict.fromkeys(WRITE_ORDER, 0),
            unchanged=dict.fromkeys(WRITE_ORDER, 0),
        )
        # One transaction: the lookups, every upsert and the recount commit together or not at all. The file is
        # parsed before it starts, so SQLite's write lock (taken first, so that what the lookups find stays true
        # until the commit) is held only for the lookups, the resolution and the writes.
        async with engine.begin() as db:
            await begin_immediate(db)
            await get_app(db, app_id)
            await _lookup(db, app_id, spool)
            spool.resolve()
            if not spool.has_errors() or skip_invalid:
                await write_staged(db, app_id, spool, report, chunk=_WRITE_CHUNK, lookup_chunk=_LOOKUP_CHUNK)
        report.errors = spool.errors()
    return report


async def import_lines(
    engine: AsyncEngine,
    app_id: UUID,
    lines: Iterable[str | bytes],
    *,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import JSON Lines given as strings (one record each); progress gets the number of lines read so far."""
    numbered = ((line_no, text, line_no) for line_no, text in enumerate(lines, start=1))
    return await _run(engine, app_id, numbered, skip_invalid, progress)


def _file_lines(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """(line number, raw bytes, bytes read so far) for each line of a file, streamed."""
    # Bytes, not text: orjson validates UTF-8 itself, so a bad byte is one bad line rather than a crash.
    done = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            done += len(raw)
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte order mark, as some editors write
            yield line_no, raw, done


async def import_file(
    engine: AsyncEngine,
    app_id: UUID,
    path: Path,
    *,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a JSON Lines file into an app (all or nothing unless skip_invalid).

    The file is read line by line; progress, when given, is called with the number of BYTES read so far
    (cumulative, so a progress bar's total is the file size), during reading and validation, which is most of
    the work; writing follows in one transaction. Raises NotFound when the app does not exist.
    """
    return await _run(engine, app_id, _file_lines(Path(path)), skip_invalid, progress)
