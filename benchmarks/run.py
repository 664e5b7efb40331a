"""The benchmark harness of issue 7, in one command (off the default test run).

    .venv/bin/python benchmarks/run.py                                   # small,medium,large x sqlite,postgresql
    .venv/bin/python benchmarks/run.py --sizes small --backends sqlite --quick

For each backend and size: build or reuse the data (harness/data.py), capture every case's response and SQL
in-process and time the SQL on the bare driver (harness/floor.py), start our server with one and two
workers, the bytes-from-memory floor and (SQLite) Datasette side by side, load each with wrk in turn
(harness/load.py, harness/peer.py). Then measure the import's and the export's memory at two file sizes
(bench_import.py; skip with --no-stream), and write benchmarks/RESULTS.md (harness/report.py). Results of
datasets not run this time are kept from earlier runs (benchmarks/.data/results.json) and say when they
were measured; --report-only rewrites RESULTS.md from them without running anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import data, load, peer, report  # noqa: E402
from harness.cases import Case, build_cases, datasette_cases  # noqa: E402
from harness.floor import measure  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_JSON = data.DATA_DIR / "results.json"
STREAM_JSON = data.DATA_DIR / "stream_results.json"  # written by bench_import.py
PORT = 18400


def say(message: str) -> None:
    """One progress line on standard error."""
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _paths(case: Case, by_name: dict[str, Case], floor: bool) -> str | list[str]:
    if case.mix:
        return [f"/__floor/{n}" if floor else by_name[n].path or "" for n in case.mix]
    return f"/__floor/{case.name}" if floor else case.path or ""


def _record(
    rows: list[dict[str, Any]],
    server: load.Server,
    kind: str,
    workers: int,
    case: Case,
    conns: int,
    path: str | list[str],
    auth: str,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    load.wrk(server, path, conns, warmup, auth)
    result = load.wrk(server, path, conns, seconds, auth)
    row = {"server": kind, "workers": workers, "case": case.name, "conns": conns, **result, "peak_mb": server.peak_mb()}
    rows.append(row)
    say(
        f"  {kind:<9} w{workers} {case.name:<24} c{conns:<3} {row['rps']:>8,.0f} req/s  p50 {row['p50_ms']:7.2f} ms"
        f"  p99 {row['p99_ms']:7.2f} ms  cpu {row['server_cpu_ms'] or 0:.2f} ms/req"
        + (f"  NON-2XX {row['non2xx']}" if row["non2xx"] else "")
        + (f"  ERRORS {row['errors']}" if row["errors"] else "")
    )
    return row


def run_dataset(backend: str, size: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """Every measurement of one dataset, as a dict for the report."""
    dataset = asyncio.run(data.ensure(backend, size, args.pg_admin))
    say(f"{backend}/{size}: app {dataset.app_id}, {dataset.counts}")
    targets, cases, captured, sql_ms = asyncio.run(measure(dataset, build_cases, budget=args.sql_budget))
    for name, cap in captured.items():
        if cap.status != 200:
            say(f"  WARNING: {name} answered {cap.status} in-process: {cap.body[:200]!r}")
    by_name = {c.name: c for c in cases}
    bodies = Path(tempfile.mkstemp(suffix=".json", dir=log_dir)[1])
    bodies.write_text(json.dumps({n: c.body.decode("latin-1") for n, c in captured.items()}))
    auth = f"Bearer {dataset.raw_key}"
    rows: list[dict[str, Any]] = []
    servers = {
        "ours1": load.ours(dataset.url, PORT, 1, log_dir),
        "ours2": load.ours(dataset.url, PORT + 1, 2, log_dir),
        "floor": load.floor_server(dataset.url, PORT + 2, bodies, log_dir),
    }
    try:
        for server in servers.values():
            server.start()
        # Every case's single-connection (latency) runs come before any run at 16 or 64: measured right after 64
        # connections had closed, the deep page's c1 p50 read up to 1.4x the first page's, against 0.99 to 1.11
        # when the two alternate on their own.
        runs = sorted(((conns, each) for each in cases for conns in each.conns), key=lambda pair: pair[0])
        for conns, case in runs:
            if args.quick and conns == 1 and case.name == "mix":
                continue
            w = (args.seconds, args.warmup)
            _record(rows, servers["ours1"], "ours", 1, case, conns, _paths(case, by_name, False), auth, *w)
            _record(rows, servers["floor"], "floor", 1, case, conns, _paths(case, by_name, True), auth, *w)
            if case.workers_too and conns > 1:
                _record(rows, servers["ours2"], "ours", 2, case, conns, _paths(case, by_name, False), auth, *w)
    finally:
        for server in servers.values():
            server.stop()
    result: dict[str, Any] = {
        "backend": backend,
        "size": size,
        "rows": rows,
        "sql_ms": sql_ms,
        "targets": asdict(targets),
        "seconds": args.seconds,
        "cases": [{"name": c.name, "title": c.title, "path": c.path, "conns": list(c.conns)} for c in cases],
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if backend == "sqlite" and not args.no_datasette:
        try:
            _run_peer(dataset, args, log_dir, by_name, auth, rows, result)
        except (RuntimeError, OSError) as error:  # the peer failing must not lose our figures
            say(f"  Datasette failed: {error}")
            result["datasette_error"] = str(error)
    bodies.unlink(missing_ok=True)
    return result


def _run_peer(
    dataset: data.Dataset,
    args: argparse.Namespace,
    log_dir: Path,
    by_name: dict[str, Case],
    auth: str,
    rows: list[dict[str, Any]],
    result: dict[str, Any],
) -> None:
    """Datasette on the same file, each request followed by ours on the nearest one."""
    ds_cases = datasette_cases(dataset)
    assert dataset.sqlite_path is not None
    threads, sweep = peer.best_threads(dataset.sqlite_path, PORT + 3, ds_cases[0], args.seconds / 2, log_dir, say)
    result["datasette_threads"], result["datasette_sweep"] = threads, sweep
    ours = load.ours(dataset.url, PORT, 1, log_dir).start()
    peer_server = peer.start(dataset.sqlite_path, PORT + 3, threads, log_dir)
    try:
        for case in ds_cases:
            for conns in case.conns:
                assert case.path is not None
                # Side by side: Datasette, then ours on the nearest request, so the ratio is from one moment.
                # Default counting is slow: a longer run, so it completes enough requests to count.
                seconds = args.seconds if "counting" not in case.name else max(2 * args.seconds, 10)
                _record(rows, peer_server, "datasette", 1, case, conns, case.path, "", seconds, args.warmup)
                if case.name in by_name:
                    _record(
                        rows,
                        ours,
                        "ours_vs_peer",
                        1,
                        by_name[case.name],
                        conns,
                        by_name[case.name].path or "",
                        auth,
                        args.seconds,
                        args.warmup,
                    )
    finally:
        peer_server.stop()
        ours.stop()


def main() -> None:
    """Parse the options, run every dataset asked for, write RESULTS.md and print the headline tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,medium,large", help="comma list of small, medium, large")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma list of sqlite, postgresql")
    parser.add_argument("--duration", dest="seconds", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up before each wrk run")
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 s warm-up (a smoke run)")
    parser.add_argument("--no-datasette", action="store_true", help="skip the Datasette peer")
    parser.add_argument("--sql-budget", type=float, default=1.0, help="seconds of SQL timing per case")
    parser.add_argument(
        "--pg-admin",
        default=data.DEFAULT_PG_ADMIN,
        help="an existing PostgreSQL database; chipp_bench_<size> are created next to it",
    )
    parser.add_argument("--build-only", action="store_true", help="build (or reuse) the data, then stop")
    parser.add_argument("--no-stream", action="store_true",
                        help="skip the import/export memory run (bench_import.py); keep its last figures")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rewrite RESULTS.md from the kept results")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = 2.0, 1.0
    sizes = [s for s in args.sizes.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    for s in sizes:
        if s not in data.SIZES:
            parser.error(f"unknown size {s}")
    for b in backends:
        if b not in ("sqlite", "postgresql"):
            parser.error(f"unknown backend {b}")
    if args.build_only:
        for b in backends:
            for s in sizes:
                started = time.perf_counter()
                asyncio.run(data.ensure(b, s, args.pg_admin))
                say(f"{b}/{s}: ready in {time.perf_counter() - started:.0f}s")
        return

    log_dir = data.DATA_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/run.py", *sys.argv[1:]])
    for b in backends if not args.report_only else []:
        for s in sizes:
            say(f"=== {b}/{s}")
            previous[f"{b}/{s}"] = run_dataset(b, s, args, log_dir)
            previous["_command"] = command  # what --report-only names as the command of the kept runs
            RESULTS_JSON.write_text(json.dumps(previous, indent=1))
    if args.report_only:
        command = previous.get("_command", command)
    if not (args.no_stream or args.report_only):
        say("=== import and export memory (bench_import.py)")
        stream_command = [sys.executable, str(BENCH_DIR / "bench_import.py"), "--export"]
        if "postgresql" in backends:
            stream_command += ["--postgres", args.pg_admin]
        subprocess.run(stream_command, check=True)
    stream = json.loads(STREAM_JSON.read_text()) if STREAM_JSON.exists() else None

    order = [f"{b}/{s}" for b in ("sqlite", "postgresql") for s in data.SIZES]
    datasets = [_with_peer_rows(previous[k]) for k in order if k in previous]
    data_rows = []
    for b in ("sqlite", "postgresql"):
        for s in data.SIZES:
            m = data.load_cached(b, s)
            if m is not None:
                data_rows.append(
                    [
                        b,
                        s,
                        m.counts["sessions"],
                        m.counts["messages"],
                        m.counts["feedback"],
                        m.counts["consumers"],
                        m.load_seconds.get("side_apps"),
                        m.load_seconds.get("main_app"),
                        m.load_seconds.get("total"),
                        m.built_at,
                    ]
                )
    headline = report.write(BENCH_DIR / "RESULTS.md", datasets, command, data.git_commit(), data_rows, stream)
    print(headline)


def _with_peer_rows(ds: dict[str, Any]) -> dict[str, Any]:
    """Ours-vs-Datasette rows measured side by side replace ours in the Datasette comparison only."""
    rows = ds["rows"]
    peer_rows = [dict(r, server="ours") for r in rows if r["server"] == "ours_vs_peer"]
    if not peer_rows:
        return ds
    others = [r for r in rows if r["server"] != "ours_vs_peer"]
    return {**ds, "rows": others, "peer_ours_rows": peer_rows}


if __name__ == "__main__":
    main()
