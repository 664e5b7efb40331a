"""The peer: Datasette serving the same SQLite file, at its fastest settings.

Datasette opens the file immutable (`-i`: no locking, no change checks); its number of SQL threads
(`num_sql_threads`, default 3) is chosen by a short sweep on the first-page request at concurrency 16.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import load
from .cases import Case

THREADS = (1, 2, 3, 4)


def best_threads(path: Path, port: int, case: Case, seconds: float, log_dir: Path,
                 say: Callable[[str], None]) -> tuple[int, dict[int, float]]:
    """Try each thread count on the first page at concurrency 16; return the fastest and every figure."""
    assert case.path is not None
    seen: dict[int, float] = {}
    for threads in THREADS:
        server = load.datasette(path, port, threads, log_dir).start()
        try:
            load.wrk(server, case.path, 16, max(1.0, seconds / 3))  # warm-up
            seen[threads] = load.wrk(server, case.path, 16, seconds)["rps"]
            say(f"datasette num_sql_threads={threads}: {seen[threads]:,.0f} req/s")
        finally:
            server.stop()
    return max(seen, key=lambda t: seen[t]), seen


def start(path: Path, port: int, threads: int, log_dir: Path) -> Any:
    """Start Datasette with the chosen thread count."""
    return load.datasette(path, port, threads, log_dir).start()
