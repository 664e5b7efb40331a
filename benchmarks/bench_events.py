"""The event feed's figures (issue 14): GET /events?limit=500 latency at several depths of a demo app's feed,
and the long-poll delay from a write to a waiting follower, against the real server.

    python benchmarks/bench_events.py                                     # SQLite in a temporary folder
    python benchmarks/bench_events.py --database-url postgresql://postgres@127.0.0.1:5432/bench --sessions 5000
    python benchmarks/bench_events.py --workers 2                          # follower and writer may meet
                                                                          # different workers (the 100 ms poll)

The delay is measured from the moment the writer SENDS its conversations/log request to the moment the follower
holds the event: an upper bound of the delay from commit to delivery (the commit happens inside that request).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_log import _free_port, _wait_until_serving  # noqa: E402

from chipp_builder.server.db.engine import make_engine  # noqa: E402
from chipp_builder.server.db.migrate import upgrade  # noqa: E402
from chipp_builder.server.ingest.demo import generate_demo  # noqa: E402
from chipp_builder.server.pagination import decode_position, encode_position  # noqa: E402
from chipp_builder.server.resources.apps import queries as apps  # noqa: E402


async def _fill(database_url: str, sessions: int) -> tuple[str, str]:
    engine = make_engine(database_url)
    try:
        app_id = await generate_demo(engine, sessions=sessions, seed=14)
        async with engine.begin() as db:
            key = await apps.create_key(db, app_id, "bench", {"sessions": "write"})
    finally:
        await engine.dispose()
    return str(app_id), str(key["rawKey"])


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(
    base: str, app_id: str, key: str, process: subprocess.Popen[bytes], args: argparse.Namespace
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    prefix = f"/api/v1/apps/{app_id}"
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        await _wait_until_serving(client, process)
        latest = (await client.get(prefix + "/events/latest")).json()["data"]["cursor"]
        position = decode_position(latest, uuid.UUID(app_id))  # the feed's length
        rng = random.Random(14)
        for label, starts in (("first page", [0]), ("middle", [position // 2]), ("random depth", None)):
            timings: list[float] = []
            for _ in range(args.requests):
                start = starts[0] if starts else rng.randrange(max(1, position - 500))
                params = {"after": encode_position(uuid.UUID(app_id), start), "limit": 500}
                began = time.perf_counter()
                response = await client.get(prefix + "/events", params=params)
                timings.append(time.perf_counter() - began)
                assert response.status_code == 200 and len(response.json()["data"]) == 500, response.text
            print(f"  GET /events?limit=500 {label:>12}: p50 {_p(timings, 0.5) * 1000:6.2f} ms, "
                  f"p99 {_p(timings, 0.99) * 1000:6.2f} ms over {len(timings)} requests")
        print(f"  feed length: {position:,} events")

        delays: list[float] = []
        cursor = (await client.get(prefix + "/events/latest")).json()["data"]["cursor"]
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as writer:
            for _ in range(args.polls):
                follower = asyncio.create_task(client.get(prefix + "/events", params={
                    "after": cursor, "wait": 25, "types": "session.created"}))
                await asyncio.sleep(rng.uniform(0.05, 0.3))  # the follower is waiting by now
                sent = time.perf_counter()
                posted = await writer.post(prefix + "/conversations/log",
                                           json={"messages": [{"role": "user", "content": "hi"}]})
                assert posted.status_code == 201, posted.text
                page = (await follower).json()
                delays.append(time.perf_counter() - sent)
                assert page["data"], page
                cursor = page["pagination"]["next_cursor"]
        print(f"  long-poll delay, write sent -> event held by the follower ({args.workers} worker(s)): "
              f"p50 {statistics.median(delays) * 1000:.1f} ms, p90 {_p(delays, 0.9) * 1000:.1f} ms, "
              f"max {max(delays) * 1000:.1f} ms over {len(delays)} writes")


def main() -> None:
    """Parse the options, fill a demo app, start the server, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--sessions", type=int, default=2000, help="demo sessions (default 2000)")
    parser.add_argument("--requests", type=int, default=100, help="GET /events requests per depth (default 100)")
    parser.add_argument("--polls", type=int, default=40, help="long-poll deliveries measured (default 40)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade(database_url)
        app_id, key = asyncio.run(_fill(database_url, args.sessions))
        port = _free_port()
        env = {**os.environ, "CHIPP_DATABASE_URL": database_url, "CHIPP_RATE_LIMIT": "100000000"}
        command = [sys.executable, "-m", "uvicorn", "chipp_builder.server.app:create_app", "--factory",
                   "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
                   "--log-level", "warning", "--no-access-log"]
        server = subprocess.Popen(command, env=env)
        try:
            print(f"event feed on {database_url.split(':', 1)[0]}, demo of {args.sessions} sessions:")
            asyncio.run(_measure(f"http://127.0.0.1:{port}", app_id, key, server, args))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
