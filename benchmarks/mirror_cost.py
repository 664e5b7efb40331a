"""What a mirror run costs (docs/sync.md): a full copy of a demo app, then a run after 100 changes, in requests
and seconds. The source is served in-process (httpx.ASGITransport), both databases are SQLite files.

    .venv/bin/python benchmarks/mirror_cost.py --sessions 10000
    .venv/bin/python benchmarks/mirror_cost.py --sessions 100000 --skip-full   # the copy made by copying the file

With --skip-full the copy is the source's file copied, with the mirror's position set to the feed's end: what a
full copy leaves (the same rows), without spending the full copy's hundred thousand requests.

Measured (2 shared cores, SQLite, December 2026): 10,000 sessions: full copy 10,172 requests in 141 s; after
100 changes 293 events, 129 requests, 2.3 s. 100,000 sessions (--skip-full): after 100 changes 279 events,
131 requests, 4.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from chipp_builder.client import AsyncClient
from chipp_builder.export.mirror import Mirror
from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.ingest.demo import generate_demo
from chipp_builder.server.ingest.mirror import CopyDatabase
from chipp_builder.server.resources.apps import queries as apps

SOURCE = "http://source.test"


class Counting(httpx.AsyncBaseTransport):
    """Counts the requests and the seconds the source spent answering them."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.requests, self.seconds = inner, 0, 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        started = time.perf_counter()
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.seconds += time.perf_counter() - started


class TimedStore(CopyDatabase):
    """The copy, timing its writes."""

    seconds: dict[str, float]

    async def upsert(self, records: Any) -> int:
        started = time.perf_counter()
        try:
            return await super().upsert(records)
        finally:
            self.seconds["upsert"] = self.seconds.get("upsert", 0.0) + time.perf_counter() - started

    async def delete(self, kind: str, ids: Any) -> int:
        started = time.perf_counter()
        try:
            return await super().delete(kind, ids)
        finally:
            self.seconds[f"delete {kind}"] = self.seconds.get(f"delete {kind}", 0.0) + time.perf_counter() - started


async def changes(client: AsyncClient, seed: int) -> int:
    """100 writes: 40 appends, 20 new sessions, 25 ratings, 10 consumers/auth, 4 session deletes, 1 erasure."""
    draw = random.Random(seed)
    sessions = [one async for one in client.sessions.list(limit=100)]  # drawn from all, old ones too
    consumers = (await client.consumers.list(limit=100)).data
    for one in draw.sample(sessions, 40):
        await client.conversations.log([{"role": "user", "content": "again"}, {"role": "assistant", "content": "ok"}],
                                       session_id=one.id)
    for n in range(20):
        await client.conversations.log([{"role": "user", "content": f"new {n}"}], consumer={"email": f"b{n}@x.io"})
    for one in draw.sample(sessions, 25):
        messages = (await client.sessions.messages(one.id)).data
        await client.feedback.create(draw.choice(messages).id, 1)
    for n in range(10):
        await client.consumers.auth(email=f"auth{n}@x.io")
    for one in draw.sample(sessions, 4):
        await client.sessions.delete(one.id)
    await client.consumers.erase(draw.choice([c for c in consumers if c.id not in {s.consumer_id for s in sessions}]
                                             or consumers).id)
    return 100


async def main(sessions: int, skip_full: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mirror-cost-"))
    source_url, copy_url = f"sqlite:///{folder / 'source.db'}", f"sqlite:///{folder / 'copy.db'}"
    upgrade(source_url)
    engine = make_engine(source_url)
    started = time.perf_counter()
    app_id = await generate_demo(engine, sessions=sessions, seed=7)
    async with engine.begin() as db:
        key = (await apps.create_key(db, app_id, "bench", {"sessions": "write", "consumers": "write",
                                                           "feedback": "write"}))["rawKey"]
    await engine.dispose()
    print(f"source: {sessions:,} sessions built in {time.perf_counter() - started:.0f} s")
    server = create_app(Settings(database_url=source_url, rate_limit=10**9))
    counting = Counting(httpx.ASGITransport(app=server))
    client = AsyncClient(SOURCE, key, app_id, transport=counting, timeout=120)
    if skip_full:
        shutil.copyfile(folder / "source.db", folder / "copy.db")
    upgrade(copy_url)
    copy_engine = make_engine(copy_url)
    store = TimedStore(copy_engine, app_id)
    store.seconds = {}
    if skip_full:
        await store.save_state(SOURCE, {"cursor": await client.events.latest()})
    else:
        started, before = time.perf_counter(), counting.requests
        outcome = await Mirror(client, store, SOURCE).run(await store.prepare(SOURCE))
        print(f"full copy: {counting.requests - before:,} requests, {time.perf_counter() - started:.1f} s, "
              f"{outcome.written:,} rows written")
    await changes(client, seed=1)
    store.seconds = {}
    started, before, answering = time.perf_counter(), counting.requests, counting.seconds
    state: Any = await store.prepare(SOURCE)
    outcome = await Mirror(client, store, SOURCE).run(state)
    print(f"after 100 changes: {outcome.events:,} events, {counting.requests - before:,} requests, "
          f"{time.perf_counter() - started:.2f} s, {outcome.written:,} rows written, {outcome.deleted:,} deleted")
    print(f"  of which the source answering: {counting.seconds - answering:.2f} s; the copy's writes: "
          + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in store.seconds.items()))
    await client.aclose()
    await copy_engine.dispose()
    await server.state.engine.dispose()
    shutil.rmtree(folder)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--skip-full", action="store_true", help="copy the source's file instead of a full copy")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.sessions, arguments.skip_full))
