"""Soak run (issue 6): the real server, `chipp-builder serve --workers 2` on PostgreSQL with the rate limit
shared through Redis, held at a steady request rate of mixed reads and writes for a few minutes, while the
worker processes' memory is sampled. Prints the request count, errors by status (5xx must be 0), p50/p99
latency and each worker's RSS in the first and the last minute (growth %); exits 1 on any 5xx or failed
request, or when memory grew by more than --max-growth percent.

    python benchmarks/soak.py                      # 3 minutes at 80 requests/s
    python benchmarks/soak.py --minutes 5 --rate 100 --sessions 1000

It makes a scratch PostgreSQL database (dropped at the end) holding a demo app, so it needs PostgreSQL and
Redis: --database-url names the server (its database is only used to create and drop the scratch one).
Not part of the test suite: it runs only by this command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import make_url

from chipp_builder.server.db.engine import execute_outside_transaction, make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.db.tables import consumer, message, session
from chipp_builder.server.ingest.demo import generate_demo
from chipp_builder.server.resources.apps import queries as apps

READ_AND_WRITE = {
    "sessions": "write", "consumers": "read", "feedback": "write", "tags": "read", "knowledge_sources": "read",
    "memories": "read", "analytics": "read",
}
# (kind, weight): about one request in five writes.
MIX = [
    ("GET /sessions", 16), ("GET /sessions?search", 4), ("GET /sessions/{id}", 8),
    ("GET /sessions/{id}/messages", 14), ("GET /consumers", 6), ("GET /consumers/{id}", 4),
    ("GET /feedback", 6), ("GET /tags", 3), ("GET /knowledge-sources", 2), ("GET /memories", 3),
    ("GET /analytics/usage", 4), ("GET /analytics/token-usage", 3),
    ("POST /conversations/log (new)", 6), ("POST /conversations/log (append)", 12), ("POST /feedback", 9),
]


@dataclass
class Tally:
    """What the load generator saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # transport errors and timeouts, by type
    latencies: list[float] = field(default_factory=list)
    kind_latencies: dict[str, list[float]] = field(default_factory=dict)
    dropped: int = 0  # ticks skipped because every client slot was busy (the server fell behind)


@dataclass
class Data:
    """Ids of the demo app's rows to read and rate, and the sessions the soak itself opened."""

    sessions: list[str]
    consumers: list[str]
    messages: list[str]
    opened: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])



async def _prepare(url: str, sessions: int) -> tuple[str, str, Data]:
    """A demo app with `sessions` sessions and a key that reads everything and writes sessions and feedback."""
    engine = make_engine(url, timeout_seconds=30)
    try:
        app_id = await generate_demo(engine, sessions=sessions, seed=6)
        async with engine.begin() as db:
            key = await apps.create_key(db, app_id, "soak", READ_AND_WRITE)
            ids = []
            for table in (session, consumer, message):
                rows = await db.execute(select(table.c.id).where(table.c.app_id == app_id).limit(500))
                ids.append([str(row[0]) for row in rows])
    finally:
        await engine.dispose()
    return str(app_id), str(key["rawKey"]), Data(*ids)


def _children(pid: int) -> list[int]:
    """Every process descended from pid (uvicorn's workers are its children), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current:
                found.append(child)
                frontier.append(child)
    return found


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _workers(server_pid: int) -> list[int]:
    """uvicorn's worker processes: the descendants that run the app (not multiprocessing's helpers)."""
    workers = []
    for pid in _children(server_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in command:
            workers.append(pid)
    return workers


Samples = list[tuple[float, dict[int, int]]]  # (seconds since the start, RSS in KiB by worker pid)


async def _sample_memory(server_pid: int, every: float, stop: asyncio.Event, samples: Samples, started: float) -> None:
    while not stop.is_set():
        rss = {pid: kib for pid in _workers(server_pid) if (kib := _rss_kib(pid)) is not None}
        samples.append((time.monotonic() - started, rss))
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


def _request(kind: str, base: str, data: Data, rng: random.Random) -> tuple[str, str, dict[str, Any] | None]:
    """(method, url, JSON body) for one request of this kind."""
    pick = rng.choice
    if kind == "GET /sessions":
        return "GET", f"{base}/sessions?limit={pick([10, 25, 50])}", None
    if kind == "GET /sessions?search":
        return "GET", f"{base}/sessions?search={pick(['order', 'refund', 'help', 'zz'])}", None
    if kind == "GET /sessions/{id}":
        return "GET", f"{base}/sessions/{pick(data.sessions)}", None
    if kind == "GET /sessions/{id}/messages":
        return "GET", f"{base}/sessions/{pick(data.sessions)}/messages?include=tool_details", None
    if kind == "GET /consumers":
        return "GET", f"{base}/consumers?offset={rng.randrange(0, 50)}", None
    if kind == "GET /consumers/{id}":
        return "GET", f"{base}/consumers/{pick(data.consumers)}", None
    if kind == "GET /feedback":
        return "GET", f"{base}/feedback?rating={pick(['-1', '1'])}", None
    if kind == "GET /analytics/usage":
        return "GET", f"{base}/analytics/usage?group_by={pick(['day', 'week', 'month'])}", None
    if kind == "GET /analytics/token-usage":
        return "GET", f"{base}/analytics/token-usage?group_by={pick(['day', 'week'])}", None
    if kind.startswith("GET "):
        return "GET", base + kind.removeprefix("GET "), None
    if kind == "POST /feedback":
        return "POST", f"{base}/feedback", {"message_id": pick(data.messages), "rating": pick([-1, 0, 1])}
    turns = [
        {"role": "user", "content": f"soak question {rng.random():.6f}"},
        {"role": "assistant", "content": "soak answer " + "lorem ipsum " * rng.randrange(1, 40), "model": "gpt-4o",
         "token_count": rng.randrange(10, 900), "latency_ms": rng.randrange(100, 4000)},
    ]
    body: dict[str, Any] = {"messages": turns, "source": "API"}
    if kind.endswith("(append)") and data.opened:
        body["session_id"] = pick(data.opened[-200:])
    else:
        body["title"] = f"Soak {uuid.uuid4().hex[:8]}"
        body["consumer"] = {"email": f"soak{rng.randrange(0, 300)}@example.com"}
    return "POST", f"{base}/conversations/log", body


async def _drive(args: argparse.Namespace, client: httpx.AsyncClient, base: str, data: Data, tally: Tally) -> None:
    """Open-loop: one request every 1/rate seconds, whatever the answers' pace (up to --concurrency at once)."""
    rng = random.Random(6)
    kinds, weights = zip(*MIX, strict=True)
    slots = asyncio.Semaphore(args.concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def one(kind: str) -> None:
        method, url, body = _request(kind, base, data, rng)
        started = time.perf_counter()
        try:
            response = await client.request(method, url, json=body)
        except httpx.HTTPError as exc:
            tally.failures[type(exc).__name__] += 1
            return
        finally:
            slots.release()
        elapsed = time.perf_counter() - started
        tally.latencies.append(elapsed)
        tally.kind_latencies.setdefault(kind, []).append(elapsed)
        tally.statuses[response.status_code] += 1
        tally.by_kind[kind] += 1
        if response.status_code == 201 and kind.startswith("POST /conversations/log"):
            data.opened.append(response.json()["data"]["session_id"])

    interval = 1 / args.rate
    start = time.monotonic()
    end = start + args.minutes * 60
    tick = 0
    while (due := start + tick * interval) < end:
        tick += 1
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if slots.locked():
            tally.dropped += 1
            continue
        await slots.acquire()
        task = asyncio.create_task(one(rng.choices(kinds, weights)[0]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def _memory_report(samples: Samples, total_seconds: float) -> tuple[list[str], float]:
    """Each worker's mean RSS in the first and the last minute, and the largest growth in percent."""
    first = [s for s in samples if s[0] <= 60]
    last = [s for s in samples if s[0] >= total_seconds - 60]
    lines, worst = [], 0.0
    pids = sorted({pid for _, rss in samples for pid in rss})
    for pid in [*pids, "all"]:
        def mean(window: Samples, pid: Any = pid) -> float:
            values = [sum(rss.values()) if pid == "all" else rss[pid]
                      for _, rss in window if pid == "all" or pid in rss]
            return statistics.fmean(values) / 1024 if values else float("nan")

        before, after = mean(first), mean(last)
        growth = (after - before) / before * 100
        worst = max(worst, growth)
        name = "workers together" if pid == "all" else f"worker {pid}"
        lines.append(f"  {name:<18} first minute {before:7.1f} MiB   last minute {after:7.1f} MiB   "
                     f"growth {growth:+5.1f}%")
    return lines, worst


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="How long to hold the rate (default 3).")
    parser.add_argument("--rate", type=float, default=80.0, help="Requests per second (default 80).")
    parser.add_argument("--sessions", type=int, default=500, help="Demo sessions in the scratch database.")
    parser.add_argument("--workers", type=int, default=2, help="Server worker processes (default 2).")
    parser.add_argument("--concurrency", type=int, default=64, help="Most requests in flight at once.")
    parser.add_argument("--sample-seconds", type=float, default=3.0, help="Memory sampling interval.")
    parser.add_argument("--max-growth", type=float, default=10.0, help="Allowed RSS growth, percent.")
    parser.add_argument("--database-url", default=os.environ.get("CHIPP_SOAK_POSTGRES_URL",
                                                                "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-url", default=os.environ.get("CHIPP_SOAK_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if args.minutes * 60 < 120:
        parser.error("--minutes must be at least 2, so that the first and the last minute do not overlap")

    name = f"chipp_soak_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    await execute_outside_transaction(args.database_url, f'CREATE DATABASE "{name}"')
    process: subprocess.Popen[bytes] | None = None
    log_path = Path(f"/tmp/{name}.log")
    try:
        upgrade(url)
        prepared_at = time.monotonic()
        app_id, raw_key, data = await _prepare(url, args.sessions)
        print(f"scratch database {name}: demo app with {args.sessions} sessions in "
              f"{time.monotonic() - prepared_at:.1f} s", flush=True)

        port = _free_port()
        env = {**os.environ, "CHIPP_REDIS_URL": args.redis_url, "CHIPP_REDIS_PREFIX": f"chipp:{name}:",
               # Far above the offered rate: the soak measures the server, not the limiter's 429s.
               "CHIPP_RATE_LIMIT": str(int(args.rate * 60 * 10))}
        command = [str(Path(sys.executable).parent / "chipp-builder"), "serve", "--workers", str(args.workers),
                   "--port", str(port), "--no-access-log", "--database-url", url]
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}"
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        headers = {"Authorization": f"Bearer {raw_key}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start; its log: {log_path}")
                try:
                    if (await client.get("/openapi.json")).status_code == 200 and len(_workers(process.pid)) >= \
                            args.workers:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)

            print(f"serving on {base_url} with {args.workers} workers {_workers(process.pid)}, Redis {args.redis_url}; "
                  f"{args.rate:g} requests/s for {args.minutes:g} min", flush=True)
            tally, stop = Tally(), asyncio.Event()
            samples: Samples = []
            started = time.monotonic()
            sampler = asyncio.create_task(_sample_memory(process.pid, args.sample_seconds, stop, samples, started))
            await _drive(args, client, f"/api/v1/apps/{app_id}", data, tally)
            elapsed = time.monotonic() - started
            stop.set()
            await sampler
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        await execute_outside_transaction(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    total = sum(tally.statuses.values())
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    errors = {status: n for status, n in sorted(tally.statuses.items()) if status >= 400}
    writes = sum(n for kind, n in tally.by_kind.items() if kind.startswith("POST"))
    memory, worst = _memory_report(samples, elapsed)
    print(f"requests     {total} in {elapsed:.1f} s ({total / elapsed:.1f}/s of {args.rate:g}/s offered; "
          f"{writes} writes, {total - writes} reads)")
    print(f"statuses     {dict(sorted(tally.statuses.items()))}")
    print(f"errors       {errors or 'none'} (4xx and 5xx); 5xx: {server_errors}; "
          f"failed requests: {dict(tally.failures) or 0}; ticks dropped (server behind): {tally.dropped}")
    print(f"latency      p50 {_percentile(tally.latencies, 0.5) * 1000:.1f} ms   "
          f"p99 {_percentile(tally.latencies, 0.99) * 1000:.1f} ms   max {max(tally.latencies) * 1000:.1f} ms")
    for kind, values in sorted(tally.kind_latencies.items()):
        print(f"  {kind:<34} {len(values):6d} requests   p50 {_percentile(values, 0.5) * 1000:7.1f} ms   "
              f"p99 {_percentile(values, 0.99) * 1000:7.1f} ms")
    print(f"memory (RSS, {len(samples)} samples every {args.sample_seconds:g} s):")
    print("\n".join(memory))
    log_tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
    print(f"server log   {log_path} (last lines: {log_tail})")
    failed = server_errors > 0 or sum(tally.failures.values()) > 0 or worst > args.max_growth
    verdict = "FAIL" if failed else "PASS"
    print(f"verdict      {verdict} (zero 5xx, zero failed requests, growth <= {args.max_growth:g}%)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
