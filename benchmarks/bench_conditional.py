"""SPEC section 12's figures over HTTP, on the harness's data and servers, for each backend: the 304 against the
200 and the bytes floor for `GET /sessions?limit=25`; the response cache (CHIPP_RESPONSE_CACHE_MB) on a repeated
page against the floor, and on cold pages (each asked once) against the cache off; the bytes on the wire and
the server CPU of a 100-row messages page with and without gzip. Writes its section of RESULTS.md.

    .venv/bin/python benchmarks/bench_conditional.py [--backends sqlite,postgresql] [--size small] [--duration 5]

Servers: `chipp-builder serve` (one worker) with the cache on (16 MB), the same with it off, and the harness's
bytes floor (the same stack serving the captured bytes from memory); wrk at 16 connections, one thread. Each
case runs its servers back to back, twice, in alternating order, and keeps the best of each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import tempfile
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from harness import data, load, report  # noqa: E402
from harness.cases import api_prefix  # noqa: E402
from harness.floor import longest_session  # noqa: E402

from chipp_builder.server.db.engine import make_engine  # noqa: E402

PORT = 8790
CONNS = 16


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers.items()), response.read()


async def _longest_session(dataset: data.Dataset) -> str:
    """The app's longest session (the harness's messages_long case), read from its database."""
    engine = make_engine(dataset.url)
    try:
        return str(await longest_session(engine, dataset.app_id))
    finally:
        await engine.dispose()


def measure(backend: str, size: str, seconds: float, pg_admin: str, log_dir: Path) -> dict[str, Any]:
    """Every case of one backend: {case: {server: wrk result}}, plus the pages' sizes."""
    dataset = asyncio.run(data.ensure(backend, size, pg_admin))
    prefix = api_prefix(dataset.app_id)
    auth_value = f"Bearer {dataset.raw_key}"
    cached = load.ours(dataset.url, PORT, 1, log_dir)
    cached.env["CHIPP_RESPONSE_CACHE_MB"] = "16"
    uncached = load.ours(dataset.url, PORT + 1, 1, log_dir)
    uncached.env["CHIPP_RESPONSE_CACHE_MB"] = "0"
    uncached.log_path = log_dir / "ours-nocache.log"
    servers = [cached.start(), uncached.start()]
    try:
        base = f"http://127.0.0.1:{uncached.port}{prefix}"
        auth = {"Authorization": auth_value}
        status, headers, sessions_body = _get(f"{base}/sessions?limit=25", auth)
        assert status == 200, status
        etag = headers["etag"]
        long_session = asyncio.run(_longest_session(dataset))
        messages_path = f"{prefix}/sessions/{long_session}/messages?limit=100&include=tool_details"
        _, _, messages_body = _get(f"http://127.0.0.1:{uncached.port}{messages_path}", auth)
        bodies = Path(tempfile.mkstemp(suffix=".json", dir=log_dir)[1])
        bodies.write_text(json.dumps({"sessions": sessions_body.decode("latin-1")}))
        floor = load.floor_server(dataset.url, PORT + 2, bodies, log_dir).start()
        servers.append(floor)
        sessions_path = f"{prefix}/sessions?limit=25"
        # Cold pages: each path once (a distinct started_before per request, so a distinct ETag and no hit).
        cold = [f"{sessions_path}&started_before=2031-01-01T00:00:{n // 1000 % 60:02d}.{n % 1000:03d}Z"
                for n in range(40_000)]
        identity = {"Accept-Encoding": "identity"}
        gzip = {"Accept-Encoding": "gzip"}
        cases: dict[str, list[tuple[str, load.Server, str | list[str], dict[str, str]]]] = {
            "sessions 200 / 304 / floor": [
                ("200", uncached, sessions_path, identity),
                ("304", uncached, sessions_path, {**identity, "If-None-Match": etag}),
                ("floor", floor, "/__floor/sessions", identity),
            ],
            "response cache, repeated page": [
                ("cache on", cached, sessions_path, identity),
                ("cache off", uncached, sessions_path, identity),
                ("floor", floor, "/__floor/sessions", identity),
            ],
            "response cache, cold pages": [
                ("cache on", cached, cold, identity),
                ("cache off", uncached, cold, identity),
            ],
            "messages 100 rows, gzip": [
                ("identity", uncached, messages_path, identity),
                ("gzip", uncached, messages_path, gzip),
            ],
        }
        results: dict[str, Any] = {"sessions_bytes": len(sessions_body), "messages_bytes": len(messages_body),
                                   "messages_rows": len(json.loads(messages_body)["data"])}
        for case, runs in cases.items():
            best: dict[str, dict[str, Any]] = {}
            for order in (runs, runs[::-1]):
                for name, server, path, extra in order:
                    load.wrk(server, path, CONNS, 1, auth_value, extra)  # warm-up
                    got = load.wrk(server, path, CONNS, seconds, auth_value, extra)
                    if name not in best or got["rps"] > best[name]["rps"]:
                        best[name] = got
                    print(f"[{backend}] {case:<32} {name:<9} {got['rps']:>8,.0f} req/s  "
                          f"cpu {got['server_cpu_ms'] or 0:.3f} ms/req  {got['bytes_per_req'] or 0:,.0f} B/req"
                          + (f"  NON-2XX {got['non2xx']}" if got["non2xx"] else ""), file=sys.stderr, flush=True)
            results[case] = best
        bodies.unlink(missing_ok=True)
        return results
    finally:
        for server in servers:
            server.stop()


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def section(measured: dict[str, dict[str, Any]], command: str) -> str:
    """The RESULTS.md section: one table per figure the issue asks for, a row per backend."""
    out = ["### HTTP: 304s, the response cache, gzip (SPEC section 12)", "",
           f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M UTC} with `{command}`: `chipp-builder serve`, one "
           f"worker, wrk at {CONNS} connections (best of two alternating runs each); one run, so read the "
           "ratios.", "",
           "| backend | 200 req/s | 304 req/s | floor req/s | 304 / 200 (target >= 2x on SQLite) "
           "| 304 / floor (target >= 0.8) |", "|---|---|---|---|---|---|"]
    for backend, r in measured.items():
        c = r["sessions 200 / 304 / floor"]
        out.append(f"| {backend} | {c['200']['rps']:,.0f} | {c['304']['rps']:,.0f} | {c['floor']['rps']:,.0f} | "
                   f"{_ratio(c['304']['rps'], c['200']['rps'])} | {_ratio(c['304']['rps'], c['floor']['rps'])} |")
    out += ["", "| backend | repeated page, cache on | cache off | floor | cache on / floor (target >= 0.8) "
            "| cold pages, cache on | cold, cache off | cold on / off (target about 1) |",
            "|---|---|---|---|---|---|---|---|"]
    for backend, r in measured.items():
        rep, cold = r["response cache, repeated page"], r["response cache, cold pages"]
        out.append(
            f"| {backend} | {rep['cache on']['rps']:,.0f} | {rep['cache off']['rps']:,.0f} | "
            f"{rep['floor']['rps']:,.0f} | {_ratio(rep['cache on']['rps'], rep['floor']['rps'])} | "
            f"{cold['cache on']['rps']:,.0f} | {cold['cache off']['rps']:,.0f} | "
            f"{_ratio(cold['cache on']['rps'], cold['cache off']['rps'])} |")
    out += ["", "| backend | messages page (limit=100, the app's longest session) "
            "| bytes on the wire, identity | gzip | server CPU ms/req, "
            "identity | gzip | req/s identity | gzip |", "|---|---|---|---|---|---|---|---|"]
    for backend, r in measured.items():
        g = r["messages 100 rows, gzip"]
        out.append(
            f"| {backend} | {r['messages_rows']} rows, {r['messages_bytes']:,} B body | "
            f"{g['identity']['bytes_per_req']:,.0f} | "
            f"{g['gzip']['bytes_per_req']:,.0f} | {g['identity']['server_cpu_ms']:.3f} | "
            f"{g['gzip']['server_cpu_ms']:.3f} | {g['identity']['rps']:,.0f} | {g['gzip']['rps']:,.0f} |")
    out += ["", "Bytes on the wire are per response, headers included (wrk's count). Cold pages: 40,000 distinct "
            "`started_before` values, each asked once, so every request misses the cache and stores its page."]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--size", default="small", choices=list(data.SIZES))
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--pg-admin", default=data.DEFAULT_PG_ADMIN)
    parser.add_argument("--no-write", action="store_true", help="print the section; leave RESULTS.md alone")
    args = parser.parse_args()
    log_dir = data.DATA_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    measured = {b: measure(b, args.size, args.duration, args.pg_admin, log_dir) for b in args.backends.split(",")}
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench_conditional.py", *sys.argv[1:]])
    text = section(measured, command)
    (data.DATA_DIR / "conditional.json").write_text(json.dumps(measured, indent=1))
    if not args.no_write:
        report.put_section(BENCH_DIR / "RESULTS.md", "http", text)
    print(text)


if __name__ == "__main__":
    main()
