"""Sustained rate of POST /conversations/log: start the real server, drive it with concurrent httpx
requests for a bounded time, print requests/s and messages/s.

    python benchmarks/bench_log.py                                   # SQLite in a temporary folder
    python benchmarks/bench_log.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    python benchmarks/bench_log.py --seconds 20 --concurrency 32 --messages 4 --mode new --workers 2

`--mode append` (default): each client opens one session, then appends to it, as an automation tool
pushing a live conversation does. `--mode new`: every request creates a session.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.resources.apps import queries as apps


@dataclass
class Tally:
    """What the clients saw during the measured window."""

    requests: int = 0
    messages: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _make_key(database_url: str) -> tuple[str, str]:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as db:
            created = await apps.create_app(db, "bench_log")
            key = await apps.create_key(db, created["id"], "bench", {"sessions": "write"})
    finally:
        await engine.dispose()
    return str(created["id"]), str(key["rawKey"])


async def _wait_until_serving(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            await client.get("/openapi.json")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not start within 30 s")


async def _drive(
    args: argparse.Namespace, base: str, app_id: str, raw_key: str, process: subprocess.Popen[bytes]
) -> tuple[Tally, float]:
    path = f"/api/v1/apps/{app_id}/conversations/log"
    headers = {"Authorization": f"Bearer {raw_key}"}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    tally = Tally()
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        await _wait_until_serving(client, process)
        measuring = False
        stop_at = time.monotonic() + args.warmup + args.seconds

        async def client_loop(n: int) -> None:
            session_id: str | None = None
            turn = 0
            while time.monotonic() < stop_at:
                body: dict[str, object] = {
                    "messages": [
                        {
                            "role": "user" if i % 2 == 0 else "assistant",
                            "content": f"client {n} turn {turn} message {i}",
                            "model": None if i % 2 == 0 else "gpt-4o",
                            "token_count": 40 + i,
                        }
                        for i in range(args.messages)
                    ]
                }
                if args.mode == "append" and session_id is not None:
                    body["session_id"] = session_id
                turn += 1
                started = time.perf_counter()
                response = await client.post(path, json=body)
                elapsed = time.perf_counter() - started
                if response.status_code in (200, 201):
                    session_id = response.json()["data"]["session_id"]
                    if measuring:
                        tally.requests += 1
                        tally.messages += args.messages
                        tally.latencies.append(elapsed)
                elif measuring:
                    tally.errors[response.status_code] = tally.errors.get(response.status_code, 0) + 1

        loops = [asyncio.create_task(client_loop(n)) for n in range(args.concurrency)]
        await asyncio.sleep(args.warmup)
        measuring = True
        window_start = time.monotonic()
        await asyncio.gather(*loops)
        window = time.monotonic() - window_start
    return tally, window


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    """Parse the options, run the benchmark, print the rates."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured start (default 2)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--messages", type=int, default=2, help="messages per request, 1-100 (default 2)")
    parser.add_argument("--mode", choices=("append", "new"), default="append")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade(database_url)
        app_id, raw_key = asyncio.run(_make_key(database_url))
        port = _free_port()
        env = {**os.environ, "CHIPP_DATABASE_URL": database_url, "CHIPP_RATE_LIMIT": "100000000"}
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "chipp_builder.server.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        server = subprocess.Popen(command, env=env)
        try:
            tally, window = asyncio.run(_drive(args, f"http://127.0.0.1:{port}", app_id, raw_key, server))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)

    backend = database_url.split(":", 1)[0]
    print(
        f"conversations/log on {backend} ({args.mode}, {args.concurrency} clients, "
        f"{args.messages} messages/request, {args.workers} worker(s), {window:.1f} s measured):\n"
        f"  {tally.requests / window:,.1f} requests/s, {tally.messages / window:,.1f} messages/s; "
        f"latency p50 {_percentile(tally.latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {_percentile(tally.latencies, 0.99) * 1000:.1f} ms; errors {tally.errors or 0}"
    )


if __name__ == "__main__":
    main()
