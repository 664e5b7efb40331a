"""The floor: what each benchmarked request costs without our code in the way.

Two floors, for the same requests the load runs:

* the SQL floor: the app is run in-process (httpx over ASGI) once per case while a SQLAlchemy
  `before_cursor_execute` listener records every statement the request sends; those statements, with their
  parameters, are then run back to back directly on the driver (sqlite3, or asyncpg) and timed;
* the bytes floor: the response bytes captured the same way, served from memory by a benchmark-only app
  (`floor_app.py`: our create_app, middleware and uvicorn settings, plus one route that returns the bytes).

The in-process pass also discovers the request targets: the longest session, the 10,000-row-deep cursor.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.db.tables import session

from .cases import DEEP_ROWS, Case, Targets, api_prefix
from .data import Dataset


@dataclass
class Captured:
    """One case's response (status, bytes) and the statements it ran, with their parameters."""

    status: int
    body: bytes
    statements: list[tuple[str, Any]] = field(default_factory=list)


async def longest_session(engine: Any, app_id: str) -> UUID:
    """The app's session with the most messages (the newest of them on a tie): the messages_long case's."""
    async with engine.connect() as db:
        found: UUID = (await db.execute(
            select(session.c.id).where(session.c.app_id == UUID(app_id))
            .order_by(session.c.message_count.desc(), session.c.started_at.desc()).limit(1))).scalar_one()
    return found


async def discover(dataset: Dataset, client: httpx.AsyncClient) -> Targets:
    """Find the request targets: the longest session, a cursor DEEP_ROWS deep, the deep feedback offset."""
    headers = {"Authorization": f"Bearer {dataset.raw_key}"}
    prefix = api_prefix(dataset.app_id)
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    long_session = await longest_session(engine, dataset.app_id)
    depth = min(DEEP_ROWS, dataset.counts["sessions"] - 25)
    walked, cursor = 0, None
    while walked < depth:
        step = min(100, depth - walked)
        params = {"limit": step} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"{prefix}/sessions", params=params, headers=headers)).json()
        walked += len(page["data"])
        cursor = page["pagination"]["next_cursor"]
    feedback_offset = min(DEEP_ROWS, dataset.counts["feedback"] - 25)
    return Targets(long_session=str(long_session), deep_cursor=cursor or "", deep_rows=walked,
                   feedback_offset=feedback_offset)


def in_process_app(dataset: Dataset) -> Any:
    """Our app for this dataset, built in-process with the rate limit out of the way."""
    return create_app(Settings(database_url=dataset.url, rate_limit=10**9))


async def capture(dataset: Dataset, cases: list[Case], app: Any) -> dict[str, Captured]:
    """Run each case once in-process (after a warm-up) and keep its response and its statements."""
    headers = {"Authorization": f"Bearer {dataset.raw_key}"}
    recording: list[tuple[str, Any]] | None = None

    def listen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if recording is not None:
            recording.append((statement, parameters))

    # Checkouts before the reader was the only read road had a separate read engine.
    sync_engine = getattr(app.state, "read_engine", app.state.engine).sync_engine
    event.listen(sync_engine, "before_cursor_execute", listen)
    # The reader (db/fastread.py, when present) runs compiled statements on the driver itself, past
    # SQLAlchemy's events: record what its compiled statement's `arguments` hands to the driver.
    compiled = _compiled_read_class()
    original = compiled.arguments if compiled is not None else None

    def arguments(self: Any, values: dict[str, Any]) -> tuple[str, list[Any]]:
        sql, args = original(self, values)  # type: ignore[misc]
        if recording is not None:
            recording.append((sql, list(args)))
        return sql, args

    if compiled is not None:
        compiled.arguments = arguments
    out: dict[str, Captured] = {}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            for case in cases:
                if case.path is None:
                    continue
                await client.get(case.path, headers=headers)  # warm-up: connection, caches
                recording = []
                response = await client.get(case.path, headers=headers)
                out[case.name] = Captured(response.status_code, response.content, recording)
                recording = None
    finally:
        event.remove(sync_engine, "before_cursor_execute", listen)
        if compiled is not None:
            compiled.arguments = original
    return out


def _compiled_read_class() -> Any:
    """The reader's compiled-statement class (CompiledRead; ReadStatement in older checkouts), if any."""
    try:
        from chipp_builder.server.db import fastread
    except ImportError:
        return None
    for name in ("CompiledRead", "ReadStatement"):
        found = getattr(fastread, name, None)
        if hasattr(found, "arguments"):
            return found
    return None


def _p50_of(run: Any, budget_seconds: float, max_reps: int = 2000) -> float:
    """Median milliseconds of repeated calls of `run` within a time budget (at least 5 calls)."""
    run()
    times: list[float] = []
    deadline = time.perf_counter() + budget_seconds
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < max_reps):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def time_sql_sqlite(path: str, statements: list[tuple[str, Any]], budget: float) -> float:
    """p50 milliseconds of running the statements back to back on a plain sqlite3 connection."""
    conn = sqlite3.connect(path)
    try:
        def run() -> None:
            for sql, params in statements:
                conn.execute(sql, params or ()).fetchall()

        return _p50_of(run, budget)
    finally:
        conn.close()


async def time_sql_postgres(url: str, statements: list[tuple[str, Any]], budget: float) -> float:
    """p50 milliseconds of running the statements back to back on one asyncpg connection."""
    import asyncpg

    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                                 database=u.database)
    try:
        async def run_once() -> None:
            for sql, params in statements:
                await conn.fetch(sql, *(params or ()))

        await run_once()
        times: list[float] = []
        deadline = time.perf_counter() + budget
        while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 2000):
            start = time.perf_counter()
            await run_once()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        await conn.close()


async def measure(dataset: Dataset, build_cases: Any, budget: float = 1.0) -> tuple[Targets, list[Case],
                                                                                    dict[str, Captured],
                                                                                    dict[str, float | None]]:
    """Discover targets, build the cases, capture each case in-process and time its SQL on the driver."""
    app = in_process_app(dataset)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            targets = await discover(dataset, client)
        cases = build_cases(dataset, targets)
        captured = await capture(dataset, cases, app)
    finally:
        await app.state.engine.dispose()
    sql_ms: dict[str, float | None] = {}
    for name, cap in captured.items():
        if not cap.statements:
            sql_ms[name] = None
        elif dataset.backend == "sqlite":
            sql_ms[name] = await asyncio.to_thread(time_sql_sqlite, str(dataset.sqlite_path), cap.statements,
                                                   budget)
        else:
            sql_ms[name] = await time_sql_postgres(dataset.url, cap.statements, budget)
    return targets, cases, captured, sql_ms


async def check_postgres(url: str) -> None:
    """Fail early when the benchmark database cannot be reached."""
    app = create_app(Settings(database_url=url))
    try:
        async with app.state.engine.connect() as db:
            await db.execute(text("SELECT 1"))
    finally:
        await app.state.engine.dispose()
