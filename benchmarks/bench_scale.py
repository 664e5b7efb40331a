"""Analytics and offset-list totals at scale: rollups and counters against the raw-row queries.

    python benchmarks/bench_scale.py                                        # SQLite in a temporary folder
    python benchmarks/bench_scale.py --database-url postgresql://postgres@127.0.0.1:5432/test --sessions 20000
    python benchmarks/bench_scale.py --database-url URL --app APP_ID    # an existing app, e.g. benchmarks/.data's

Builds one demo app with N sessions (generate_demo), then times in-process, with many repetitions, the
query functions the routes call: GET /analytics/usage and /analytics/token-usage over all time by day (rollup
path vs raw path, and a range with partial first and last days), and the unfiltered consumers and feedback
totals (app counter vs count(*)). Prints the p50 of each. On PostgreSQL a scratch database is created next
to the given one and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from chipp_builder.server.db.counters import read_counter
from chipp_builder.server.db.engine import execute_outside_transaction, make_engine
from chipp_builder.server.db.fastread import make_reader
from chipp_builder.server.db.migrate import upgrade_async
from chipp_builder.server.db.tables import consumer, feedback, message, session
from chipp_builder.server.ingest.demo import generate_demo
from chipp_builder.server.resources.analytics import rollups
from chipp_builder.server.resources.analytics.buckets import bucket_range, sum_into_buckets

# The raw-row analytics oracle lives with the tests (tests/oracles/): importable from the checkout's root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.oracles import analytics as raw  # noqa: E402


async def _p50(function: Callable[[], Awaitable[Any]], repetitions: int) -> float:
    """Median milliseconds of `repetitions` calls, after one warm-up call."""
    await function()
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        await function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def _run(url: str, sessions: int, repetitions: int, existing_app: str | None = None) -> None:
    await upgrade_async(url)
    engine = make_engine(url)
    reader = make_reader(engine, url, 30.0)  # what the routes read the rollups through
    try:
        started = time.perf_counter()
        if existing_app is None:
            app_id = await generate_demo(engine, sessions=sessions, seed=None)
        else:
            app_id = uuid.UUID(existing_app)
        built = time.perf_counter() - started
        async with engine.connect() as db:
            sessions = (await db.execute(select(func.count()).where(session.c.app_id == app_id))).scalar_one()
            messages = (await db.execute(select(func.count()).where(message.c.app_id == app_id))).scalar_one()
            print(f"backend {engine.dialect.name}: {sessions} sessions, {messages} messages, built in {built:.1f}s")

            def usage(module: Any, after: datetime | None = None, before: datetime | None = None) -> Any:
                source = reader if module is rollups else db

                async def call() -> Any:
                    per_day, unique = await module.usage_by_day(source, app_id, after, before)
                    starts = bucket_range(after, before, per_day.keys(), "day")
                    return sum_into_buckets(per_day, starts, "day", ("session_count", "message_count")), unique

                return call

            def tokens(module: Any) -> Any:
                source = reader if module is rollups else db

                async def call() -> Any:
                    return await module.tokens_by_day_and_model(source, app_id, None, None)

                return call

            def counter(resource: str) -> Any:
                async def call() -> Any:
                    return await read_counter(reader, app_id, resource)

                return call

            def count_rows(table: Any) -> Any:
                async def call() -> Any:
                    return (await db.execute(select(func.count()).where(table.c.app_id == app_id))).scalar_one()

                return call

            # The same answers first: the benchmark compares equal work.
            assert await usage(rollups)() == await usage(raw)()
            assert await counter("consumers")() == await count_rows(consumer)()
            assert await counter("feedback")() == await count_rows(feedback)()
            now = datetime.now(UTC)
            after, before = now - timedelta(days=30, hours=5), now - timedelta(hours=7)
            assert await usage(rollups, after, before)() == await usage(raw, after, before)()

            slow = max(5, repetitions // 10)
            cases = [
                ("usage, all time by day", usage(rollups), usage(raw)),
                ("token-usage, all time by day", tokens(rollups), tokens(raw)),
                ("usage, 30 days, partial end days", usage(rollups, after, before), usage(raw, after, before)),
                ("consumers total (unfiltered)", counter("consumers"), count_rows(consumer)),
                ("feedback total (unfiltered)", counter("feedback"), count_rows(feedback)),
            ]
            print(f"{'p50 ms':<36}{'rollup/counter':>16}{'raw/count(*)':>16}{'speed-up':>10}")
            for name, fast, reference in cases:
                fast_ms = await _p50(fast, repetitions)
                raw_ms = await _p50(reference, slow)
                print(f"{name:<36}{fast_ms:>16.3f}{raw_ms:>16.3f}{raw_ms / fast_ms:>9.1f}x")
    finally:
        await engine.dispose()


async def main() -> None:
    """Parse arguments, make a scratch database, run, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: an SQLite file in a temporary folder")
    parser.add_argument("--sessions", type=int, default=20000)
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--app", default=None, help="measure this existing app of --database-url (no scratch data)")
    args = parser.parse_args()
    if args.app is not None:
        await _run(args.database_url, args.sessions, args.repetitions, args.app)
        return
    if args.database_url is None or args.database_url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
            await _run(url, args.sessions, args.repetitions)
        return
    name = f"bench_scale_{uuid.uuid4().hex[:8]}"
    await execute_outside_transaction(args.database_url, f'CREATE DATABASE "{name}"')
    try:
        url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
        await _run(url, args.sessions, args.repetitions)
    finally:
        await execute_outside_transaction(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
