"""Peak memory and speed of `chipp-builder import` (and `export all`) at several file sizes (issue 7).

    python benchmarks/bench_import.py                                   # 20,000 and 200,000 lines, SQLite
    python benchmarks/bench_import.py --sizes 20000,200000 --postgres postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/bench_import.py --sizes 20000,200000 --export     # also export the imported app

Writes synthetic JSON Lines files of all eight record types, with references between them, at each size
(cached in benchmarks/.data/import-N.jsonl), then runs `chipp-builder import` in a subprocess into a fresh
SQLite database (and, with --postgres, a scratch database chipp_bench_import_N next to the given one, dropped
at the end). Peak RSS is the child's own maximum resident set, from wait4(). With --export the imported app
is served (`chipp-builder serve`) and exported with `chipp-builder export all`, measured the same way. Prints
lines, seconds, lines/s and peak RSS per size, then the ratio of peak RSS between the largest and smallest,
and keeps them in benchmarks/.data/stream_results.json for the "Import and export memory" section of
benchmarks/RESULTS.md (benchmarks/run.py runs this script itself unless given --no-stream).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / ".data"
CLI = str(Path(sys.executable).with_name("chipp-builder"))
STREAM_RESULTS = DATA / "stream_results.json"  # read by benchmarks/run.py for RESULTS.md
WORDS = (
    "order refund shipping account password invoice delivery tracking the a to my is not when how can you "
    "please thanks help support update change cancel subscription plan price discount code error page login"
).split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def write_file(path: Path, lines: int, seed: int = 7) -> None:
    """About `lines` records of every type: tags and knowledge sources, then for each session a new consumer
    (sometimes), the session, its messages with their tags and feedback, and sometimes a memory."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    tags = [_uuid(rng) for _ in range(20)]
    out: list[dict[str, Any]] = []
    for n, tag_id in enumerate(tags):
        out.append({"type": "tag", "id": tag_id, "name": f"tag {n}", "color": f"#{rng.getrandbits(24):06x}",
                    "created_at": start.isoformat()})
    for n in range(50):
        out.append({"type": "knowledge_source", "id": f"ks-{n}", "name": f"Source {n}", "source_type": "url",
                    "status": "completed", "url": f"https://example.com/{n}", "chunk_count": n,
                    "created_at": start.isoformat()})
    consumers: list[str] = []
    with path.open("w") as handle:
        for record in out:
            handle.write(json.dumps(record) + "\n")
        written = len(out)
        number = 0
        while written < lines:
            number += 1
            if not consumers or rng.random() < 0.4:
                consumer_id = _uuid(rng)
                consumers.append(consumer_id)
                batch: list[dict[str, Any]] = [{
                    "type": "consumer", "id": consumer_id, "identifier": f"user{len(consumers)}@example.com",
                    "email": f"user{len(consumers)}@example.com", "name": f"User {len(consumers)}",
                    "credits": rng.randint(0, 500), "created_at": start.isoformat(),
                }]
            else:
                batch = []
            consumer_id = rng.choice(consumers)
            session_id = _uuid(rng)
            began = start + timedelta(minutes=rng.randint(0, 60 * 24 * 365))
            batch.append({"type": "session", "id": session_id, "consumer_id": consumer_id,
                          "title": _text(rng, 5), "source": "WIDGET", "started_at": began.isoformat()})
            for m in range(rng.randint(2, 12)):
                message_id = f"s{number}-m{m}"
                role = "user" if m % 2 == 0 else "assistant"
                batch.append({
                    "type": "message", "id": message_id, "session_id": session_id, "role": role,
                    "content": _text(rng, rng.randint(5, 60)), "model": None if role == "user" else "gpt-4o",
                    "token_count": rng.randint(10, 900), "created_at": (began + timedelta(seconds=m)).isoformat(),
                })
                if rng.random() < 0.15:
                    batch.append({"type": "message_tag", "message_id": message_id, "tag_id": rng.choice(tags)})
                if role == "assistant" and rng.random() < 0.1:
                    batch.append({"type": "feedback", "id": f"f-{message_id}", "session_id": session_id,
                                  "message_id": message_id, "consumer_id": consumer_id,
                                  "rating": rng.choice((-1, 1)), "created_at": began.isoformat()})
            if rng.random() < 0.2:
                batch.append({"type": "memory", "id": f"mem-{number}", "consumer_id": consumer_id,
                              "session_id": session_id, "content": _text(rng, 8), "created_at": began.isoformat()})
            for record in batch:
                handle.write(json.dumps(record) + "\n")
            written += len(batch)


def data_file(lines: int) -> Path:
    """The cached file of about `lines` lines, written on first use."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"import-{lines}.jsonl"
    if not path.exists():
        partial = path.with_suffix(".partial")
        write_file(partial, lines)
        partial.replace(path)
    return path


@dataclass
class Run:
    """One measured child process."""

    seconds: float
    peak_mb: float
    output: str


def measure(args: list[str], env: dict[str, str] | None = None) -> Run:
    """Run a command to completion; its wall time and its own peak RSS (wait4's ru_maxrss, in KiB on Linux)."""
    started = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert child.stdout is not None
    output = child.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({child.returncode}):\n{output[-3000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, output)


def cli(*args: str) -> str:
    """A chipp-builder command's standard output (it must succeed)."""
    return subprocess.run([CLI, *args], check=True, capture_output=True, text=True).stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def export_run(url: str, app_id: str, folder: Path) -> Run:
    """Serve the database and export the app with `export all`, measuring the export process."""
    key = json.loads(cli("keys", "create", "--app", app_id, "--name", "bench", "--json",
                         "--database-url", url))
    port = _free_port()
    # The export pages through the API as fast as it can: lift the per-key rate limit, or it waits for it.
    server = subprocess.Popen([CLI, "serve", "--port", str(port), "--database-url", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "CHIPP_RATE_LIMIT": "100000000"})
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        env = {**os.environ, "CHIPP_BASE_URL": f"http://127.0.0.1:{port}", "CHIPP_API_KEY": key["rawKey"],
               "CHIPP_APP_ID": app_id}
        return measure([CLI, "export", "all", "--output", str(folder / "export.jsonl")], env)
    finally:
        server.terminate()
        server.wait()


def import_run(path: Path, url: str) -> tuple[str, Run]:
    """Create an app in the (migrated) database and import the file into it."""
    app_id = json.loads(cli("apps", "create", "--name", "bench import", "--json", "--database-url", url))["id"]
    run = measure([CLI, "import", str(path), "--app", app_id, "--database-url", url])
    return app_id, run


def _psql(admin_url: str, statement: str) -> None:
    url = make_url(admin_url)
    subprocess.run(
        ["psql", "-q", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres",
         "-d", url.database or "postgres", "-c", statement],
        check=True, capture_output=True,
    )


def bench(sizes: list[int], postgres: str | None, export: bool) -> None:
    """Import (and export) every size on every backend and print the table."""
    backends = ["sqlite"] + (["postgresql"] if postgres else [])
    results: dict[tuple[str, str], list[tuple[int, Run]]] = {}
    for backend in backends:
        for size in sizes:
            path = data_file(size)
            lines = sum(1 for _ in path.open("rb"))
            with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
                scratch = f"chipp_bench_import_{size}_{os.getpid()}"
                if backend == "sqlite":
                    url = f"sqlite:///{folder}/import.db"
                else:
                    assert postgres is not None
                    _psql(postgres, f"CREATE DATABASE {scratch}")
                    url = make_url(postgres).set(database=scratch).render_as_string(hide_password=False)
                try:
                    app_id, run = import_run(path, url)
                    results.setdefault((backend, "import"), []).append((lines, run))
                    print(f"{backend:10} import {lines:>9,} lines {run.seconds:7.1f} s {lines / run.seconds:8,.0f} "
                          f"lines/s  peak RSS {run.peak_mb:6.1f} MB", flush=True)
                    if export:
                        run = export_run(url, app_id, Path(folder))
                        results.setdefault((backend, "export"), []).append((lines, run))
                        print(f"{backend:10} export {lines:>9,} lines {run.seconds:7.1f} s "
                              f"{lines / run.seconds:8,.0f} lines/s  peak RSS {run.peak_mb:6.1f} MB", flush=True)
                finally:
                    if backend == "postgresql":
                        assert postgres is not None
                        _psql(postgres, f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")
    print()
    STREAM_RESULTS.write_text(json.dumps({
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_import.py", *sys.argv[1:]]),
        "rows": [[backend, action, lines, run.seconds, run.peak_mb]
                 for (backend, action), runs in results.items() for lines, run in runs],
    }, indent=1))
    for (backend, action), runs in results.items():
        (small_lines, small), (large_lines, large) = runs[0], runs[-1]
        print(f"{backend:10} {action}: peak RSS {large.peak_mb:.1f} MB at {large_lines:,} lines / "
              f"{small.peak_mb:.1f} MB at {small_lines:,} lines = {large.peak_mb / small.peak_mb:.2f}x "
              f"for {large_lines / small_lines:.1f}x the lines")


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,200000", help="comma-separated line counts (default 20000,200000)")
    parser.add_argument("--postgres", metavar="URL", help="also PostgreSQL: a scratch database next to this one")
    parser.add_argument("--export", action="store_true", help="also serve and export each imported app")
    options = parser.parse_args()
    sizes = sorted(int(size) for size in options.sizes.split(","))
    bench(sizes, options.postgres, options.export)


if __name__ == "__main__":
    main()
