"""Demo data (SPEC section 10): one realistic app, generated in chunks, bulk-inserted, repeatable by seed.

demo_app.py draws the app and its fixed cast, demo_sessions.py the sessions, demo_draws.py the seeded ids and
choices, demo_content.py holds the vocabulary; this module writes them, chunk by chunk, transaction by
transaction."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chipp_builder.server.db.tables import app
from chipp_builder.server.ingest.demo_app import DemoApp
from chipp_builder.server.ingest.demo_sessions import DemoSessions
from chipp_builder.server.writes.bulk import insert_new, set_tag_usage

SESSIONS_PER_CHUNK = 1000  # sessions generated and inserted together (about 11,000 messages)
# A commit every 5,000 sessions keeps the SQLite WAL and PostgreSQL's transaction state modest.
CHUNKS_PER_TRANSACTION = 5


async def _large_cache(db: AsyncConnection) -> None:
    """Give SQLite a big page cache for this connection: inserts with random UUID keys touch pages all over
    every index, and the default 2 MB cache turns a large demo into disk reads."""
    if db.dialect.name == "sqlite":
        await db.exec_driver_sql("PRAGMA cache_size=-262144")  # KiB: 256 MB, allocated only as used


async def generate_demo(
    engine: AsyncEngine,
    *,
    sessions: int = 200,
    seed: int | None = None,
    app_name: str = "Demo app",
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> UUID:
    """Create one app full of realistic data with exactly `sessions` sessions; return its id.

    The same seed (and the same `now`, default the current second) gives the same data, ids included, so a
    seeded demo can be made once per database: a second run with that seed raises ValueError. `progress` is
    called with the number of sessions written so far after each chunk.
    """
    if sessions < 0:
        raise ValueError("sessions must be 0 or more")
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    cast = DemoApp(rng, moment, sessions)
    maker = DemoSessions(cast)

    async with engine.begin() as db:
        taken = (await db.execute(select(app.c.id).where(app.c.id == cast.app_id))).first()
        if taken is not None:
            raise ValueError(f"demo data for seed {seed} already exists in this database (app {cast.app_id})")
        await db.execute(app.insert().values(**cast.app_row(app_name)))
        await insert_new(db, cast.app_id, {"tag": cast.tag_rows(), "consumer": cast.consumer_rows(),
                                            "knowledge_source": cast.knowledge_rows()})

    done = 0
    while done < sessions:
        async with engine.begin() as db:
            await _large_cache(db)
            for _ in range(CHUNKS_PER_TRANSACTION):
                count = min(SESSIONS_PER_CHUNK, sessions - done)
                if count == 0:
                    break
                await insert_new(db, cast.app_id, maker.session_chunk(count))
                done += count
                if progress is not None:
                    progress(done)

    async with engine.begin() as db:
        await set_tag_usage(db, cast.app_id, dict(zip(cast.tag_ids, cast.tag_usage, strict=True)))
    if progress is not None and sessions == 0:
        progress(0)
    return cast.app_id
