"""Benchmark data: one big demo app plus 20 small ones per size, built once and cached.

SQLite files live in benchmarks/.data/<size>.db; PostgreSQL databases are named chipp_bench_<size> (plus
CHIPP_BENCH_PG_SUFFIX, when several checkouts share one server) next to the given admin database and are kept.
Each build writes a manifest, benchmarks/.data/<backend>-<size>.json, holding what was built (app ids, an API key
made with the project's own create_key, row counts, load times); a build with a manifest is reused. The server is
run with CHIPP_RATE_LIMIT raised so the key never sees 429.

    python -m harness.data --backend sqlite --size large      # from benchmarks/: build (or reuse) one
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from chipp_builder.server.db.engine import execute_outside_transaction, make_engine
from chipp_builder.server.db.migrate import upgrade_async
from chipp_builder.server.db.tables import consumer, feedback, message, session
from chipp_builder.server.ingest.demo import generate_demo
from chipp_builder.server.resources.apps.queries import create_key

BENCH_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BENCH_DIR / ".data"
SIZES = {"small": 10_000, "medium": 100_000, "large": 1_000_000}
SIDE_APPS, SIDE_SESSIONS = 20, 1_000
MAIN_SEED, SIDE_SEED = 7, 1_000
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
# Several checkouts on one PostgreSQL server each give theirs a suffix, so no build drops another's database.
PG_SUFFIX = os.environ.get("CHIPP_BENCH_PG_SUFFIX", "")
FORMAT = 1  # bump when the layout of the built data changes, to rebuild every cache


@dataclass
class Dataset:
    """What one build holds: where it is, the app to benchmark, its key, counts and load times."""

    backend: str
    size: str
    url: str
    app_id: str
    raw_key: str
    side_app_ids: list[str]
    counts: dict[str, int]
    load_seconds: dict[str, float]
    built_at: str
    commit: str
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None on PostgreSQL."""
        return Path(make_url(self.url).database or "") if self.backend == "sqlite" else None


def manifest_path(backend: str, size: str) -> Path:
    """Where the manifest of one build lives."""
    return DATA_DIR / f"{backend}-{size}.json"


def database_url(backend: str, size: str, pg_admin: str = DEFAULT_PG_ADMIN) -> str:
    """The URL of the benchmark database for a backend and size."""
    if backend == "sqlite":
        return f"sqlite:///{DATA_DIR / (size + '.db')}"
    return make_url(pg_admin).set(database=pg_database(size)).render_as_string(hide_password=False)


def pg_database(size: str) -> str:
    """The name of the PostgreSQL benchmark database of a size (with this checkout's CHIPP_BENCH_PG_SUFFIX)."""
    return f"chipp_bench_{size}{PG_SUFFIX}"


def load_cached(backend: str, size: str) -> Dataset | None:
    """The manifest of a finished build, or None when there is none (or it is of an older format)."""
    path = manifest_path(backend, size)
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    if raw.get("format") != FORMAT:
        return None
    return Dataset(**raw)


def git_commit() -> str:
    """The checkout's commit (with +dirty when the tree has changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=BENCH_DIR, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=BENCH_DIR).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"



async def _fresh_database(backend: str, size: str, pg_admin: str) -> str:
    url = database_url(backend, size, pg_admin)
    if backend == "sqlite":
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(str(DATA_DIR / (size + ".db")) + suffix).unlink(missing_ok=True)
    else:
        name = pg_database(size)
        await execute_outside_transaction(pg_admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await execute_outside_transaction(pg_admin, f"CREATE DATABASE {name}")
    await upgrade_async(url)
    return url


def _log(message: str) -> None:
    print(f"[data {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


async def build(backend: str, size: str, pg_admin: str = DEFAULT_PG_ADMIN) -> Dataset:
    """Build one dataset from scratch (dropping any previous one) and write its manifest."""
    sessions = SIZES[size]
    manifest_path(backend, size).unlink(missing_ok=True)
    url = await _fresh_database(backend, size, pg_admin)
    engine = make_engine(url)
    now = datetime.now(UTC).replace(microsecond=0)
    times: dict[str, float] = {}
    try:
        started = time.perf_counter()
        side = []
        for i in range(SIDE_APPS):
            side.append(str(await generate_demo(engine, sessions=SIDE_SESSIONS, seed=SIDE_SEED + i,
                                                app_name=f"Side app {i + 1}", now=now)))
        times["side_apps"] = time.perf_counter() - started
        _log(f"{backend}/{size}: {SIDE_APPS} side apps in {times['side_apps']:.1f}s")

        started, last = time.perf_counter(), [0.0]

        def progress(done: int) -> None:
            elapsed = time.perf_counter() - started
            if elapsed - last[0] > 30 or done == sessions:
                last[0] = elapsed
                _log(f"{backend}/{size}: {done:,}/{sessions:,} sessions, {elapsed:.0f}s, "
                     f"{done / max(elapsed, 1e-9):,.0f} sessions/s")

        app_id = await generate_demo(engine, sessions=sessions, seed=MAIN_SEED, app_name=f"Bench {size}",
                                     now=now, progress=progress)
        times["main_app"] = time.perf_counter() - started

        started = time.perf_counter()
        async with engine.begin() as db:
            key = await create_key(db, app_id, "Benchmark key")
        if backend == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
        else:
            # Datasette opens the file immutable (-i), which ignores the WAL: fold it into the file.
            async with engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        times["finish"] = time.perf_counter() - started
        times["total"] = times["side_apps"] + times["main_app"] + times["finish"]

        async with engine.connect() as db:
            counts = {}
            for name, table in (("sessions", session), ("messages", message), ("feedback", feedback),
                                ("consumers", consumer)):
                counts[name] = (await db.execute(
                    select(func.count()).select_from(table).where(table.c.app_id == app_id))).scalar_one()
    finally:
        await engine.dispose()
    dataset = Dataset(
        backend=backend, size=size, url=url, app_id=str(app_id), raw_key=key["rawKey"], side_app_ids=side,
        counts=counts, load_seconds={k: round(v, 1) for k, v in times.items()},
        built_at=datetime.now(UTC).isoformat(timespec="seconds"), commit=git_commit(),
        extra={"now": now.isoformat()},
    )
    manifest_path(backend, size).write_text(json.dumps(asdict(dataset), indent=2))
    _log(f"{backend}/{size}: built in {times['total']:.0f}s: {counts}")
    return dataset


def _migrate_sqlite(url: str) -> None:
    """Alembic upgrade on a plain sqlite3 connection with foreign keys off.

    SQLite alters a table by copying it and dropping the original; with foreign keys on (our engine turns them
    on) that DROP runs the ON DELETE actions of every referencing row (session.consumer_id SET NULL), which
    both destroys data and takes minutes at the medium size. Alembic's documentation asks for them off.
    """
    from alembic import command
    from sqlalchemy import create_engine

    from chipp_builder.server.db.migrate import alembic_config

    engine = create_engine(url)  # pysqlite without our pragmas: foreign keys stay off
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for (name,) in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '\\_alembic\\_tmp\\_%' ESCAPE '\\'"
            ).fetchall():
                conn.exec_driver_sql(f'DROP TABLE "{name}"')  # left by an interrupted batch migration
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    finally:
        engine.dispose()


async def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        async with engine.connect() as db:
            return (await db.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    finally:
        await engine.dispose()


async def _intact(dataset: Dataset) -> bool:
    """Whether the data still looks as built: the main app's sessions still name their consumers."""
    engine = make_engine(dataset.url)
    try:
        async with engine.connect() as db:
            named = (await db.execute(select(func.count()).select_from(
                select(session.c.id).where(session.c.app_id == UUID(dataset.app_id),
                                           session.c.consumer_id.is_not(None)).limit(100).subquery()))).scalar_one()
    finally:
        await engine.dispose()
    return named == 100


async def migrate(dataset: Dataset) -> float:
    """Bring a cached dataset to the checkout's schema (before any server starts on it); return the seconds."""
    started = time.perf_counter()
    before = await _revision(dataset.url)
    if dataset.backend == "sqlite":
        await asyncio.to_thread(_migrate_sqlite, dataset.url)
    else:
        await upgrade_async(dataset.url)
    after = await _revision(dataset.url)
    took = time.perf_counter() - started
    if before != after:
        _log(f"{dataset.backend}/{dataset.size}: migrated {before} -> {after} in {took:.1f}s")
    return took


async def ensure(backend: str, size: str, pg_admin: str = DEFAULT_PG_ADMIN, rebuild: bool = False) -> Dataset:
    """The cached dataset for backend and size, migrated to the current schema; built first when missing,
    damaged (see _migrate_sqlite) or when rebuild is set."""
    cached = None if rebuild else load_cached(backend, size)
    if cached is not None:
        await migrate(cached)
        if await _intact(cached):
            return cached
        _log(f"{backend}/{size}: sessions lost their consumers (a migration run with foreign keys on?): rebuilding")
    return await build(backend, size, pg_admin)


def main() -> None:
    """Build (or reuse) datasets from the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), required=True)
    parser.add_argument("--size", choices=tuple(SIZES), required=True)
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    dataset = asyncio.run(ensure(args.backend, args.size, args.pg_admin, args.rebuild))
    print(json.dumps({"app_id": dataset.app_id, "counts": dataset.counts, "load_seconds": dataset.load_seconds}))


if __name__ == "__main__":
    main()
