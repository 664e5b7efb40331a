"""The report: RESULTS.md from the measured rows (tables, ratios, the targets of issue 7 met or missed).

A row is one wrk run: dataset (backend, size), server (ours, floor, datasette), workers, case, connections,
and the figures load.wrk returns, plus the SQL floor of the case for our rows.
"""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Row = dict[str, Any]
CURSOR_CASES = ("sessions_first", "sessions_deep", "sessions_filtered", "sessions_search", "messages_long")
OFFSET_CASES = ("feedback_first", "consumers_first", "memories_first")
BIG = "large"


def machine() -> list[str]:
    """CPU model and count (/proc/cpuinfo), memory (free -m), kernel, Python, SQLite and PostgreSQL."""
    lines = []
    try:
        info = Path("/proc/cpuinfo").read_text()
        models = [x.split(":", 1)[1].strip() for x in info.splitlines() if x.startswith("model name")]
        mhz = [x.split(":", 1)[1].strip() for x in info.splitlines() if x.startswith("cpu MHz")]
        lines.append(f"CPU: {len(models)} x {models[0] if models else '?'}" + (f" ({mhz[0]} MHz)" if mhz else ""))
    except OSError:
        pass
    try:
        free = subprocess.run(["free", "-m"], capture_output=True, text=True).stdout.strip().splitlines()
        lines.append("Memory (free -m): " + " / ".join(" ".join(x.split()) for x in free[:2]))
    except OSError:
        pass
    import sqlite3

    lines.append(f"Kernel: {platform.release()}; Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}")
    try:
        pg = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-tAc", "show server_version"],
                            capture_output=True, text=True, timeout=10).stdout.strip()
        lines.append(f"PostgreSQL {pg}")
    except (OSError, subprocess.TimeoutExpired):
        pass
    lines.append(f"Load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return lines


def _find(rows: Iterable[Row], **match: Any) -> Row | None:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}" if abs(value) >= 1 else f"{value:.{digits + 1}f}"
    return str(value)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def _table(header: list[str], body: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in line) + " |" for line in body]
    return out


def dataset_section(ds: Row) -> list[str]:
    """Tables of one dataset: ours against the floors per case, the workers, Datasette."""
    rows, backend, size = ds["rows"], ds["backend"], ds["size"]
    out = [f"### {backend} / {size}", "",
           f"Measured {ds['measured_at']} ({ds['seconds']} s per run after a warm-up). "
           f"Deep cursor: {ds['targets']['deep_rows']:,} rows; longest session: {ds['targets']['long_session']}.", ""]
    body = []
    for case in ds["cases"]:
        for conns in case["conns"]:
            o = _find(rows, server="ours", workers=1, case=case["name"], conns=conns)
            f = _find(rows, server="floor", workers=1, case=case["name"], conns=conns)
            if o is None:
                continue
            body.append([case["name"], conns, o["rps"], o["p50_ms"], o["p99_ms"], o["server_cpu_ms"],
                         o["wrk_cpu_ms"], o["peak_mb"], f and f["rps"], _ratio(o["rps"], f and f["rps"]),
                         f and f["p50_ms"], ds["sql_ms"].get(case["name"]), o["non2xx"] + o["errors"]])
    out += _table(["case", "conns", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "wrk CPU ms/req",
                   "peak MB", "floor req/s", "ours/floor", "floor p50 ms", "SQL p50 ms", "errors"], body)
    out.append("")
    body = []
    for case in ds["cases"]:
        for conns in case["conns"]:
            one = _find(rows, server="ours", workers=1, case=case["name"], conns=conns)
            two = _find(rows, server="ours", workers=2, case=case["name"], conns=conns)
            if one and two:
                # Cores busy during the one-worker run: when server + database + wrk already come near the
                # machine's two, a second worker has little left to use.
                cores = [one["server_cpu_s"] / one["seconds"], one.get("db_cpu_s", 0.0) / one["seconds"],
                         one["wrk_cpu_s"] / one["seconds"]]
                body.append([case["name"], conns, one["rps"], two["rps"], _ratio(two["rps"], one["rps"]),
                             *cores, sum(cores), two["wrk_cpu_s"] / two["seconds"],
                             two["server_cpu_ms"], two["peak_mb"]])
    if body:
        out += ["Workers (the load tool and, on PostgreSQL, the database share the two cores: their CPU is shown "
                "as cores busy):", ""]
        out += _table(["case", "conns", "1 worker req/s", "2 workers req/s", "2/1", "server cores (1w)",
                       "database cores (1w)", "wrk cores (1w)", "cores busy (1w)", "wrk cores (2w)",
                       "server CPU ms/req (2w)", "peak MB per process (2w)"], body)
        out.append("")
    ds_rows = [r for r in rows if r["server"] == "datasette"]
    if ds.get("datasette_error"):
        out += [f"Datasette did not complete: {ds['datasette_error']}", ""]
    if ds_rows:
        threads = ds.get("datasette_threads")
        sweep = ", ".join(f"{t}: {v:,.0f}" for t, v in (ds.get("datasette_sweep") or {}).items())
        out += [f"Datasette 0.65.5, `-i`, num_sql_threads={threads} (sweep at c16, req/s: {sweep}):", ""]
        body = []
        for r in ds_rows:
            name = "sessions_first" if r["case"] == "sessions_first_counting" else r["case"]
            o = _find(ds.get("peer_ours_rows") or rows, server="ours", case=name, conns=r["conns"])
            body.append([r["case"], r["conns"], r["rps"], r["p50_ms"], r["p99_ms"], r["server_cpu_ms"], r["peak_mb"],
                         o and o["rps"], _ratio(o and o["rps"], r["rps"]), r["non2xx"] + r["errors"]])
        out += _table(["Datasette case", "conns", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "peak MB",
                       "ours req/s", "ours/Datasette", "errors"], body)
        out.append("")
    return out


def _p50(ds: Row | None, case: str, conns: int = 1) -> float | None:
    if ds is None:
        return None
    r = _find(ds["rows"], server="ours", workers=1, case=case, conns=conns)
    return r and r["p50_ms"]


def _rps(ds: Row | None, server: str, case: str, conns: int = 16, workers: int = 1) -> float | None:
    if ds is None:
        return None
    r = _find(ds["rows"], server=server, workers=workers, case=case, conns=conns)
    return r and r["rps"]


def _peer_ratio(ds: Row, case: str, conns: int = 16) -> float | None:
    """Ours / Datasette req/s, ours measured right after Datasette on the same request."""
    ours = _find(ds.get("peer_ours_rows") or ds["rows"], server="ours", workers=1, case=case, conns=conns)
    return _ratio(ours and ours["rps"], _rps(ds, "datasette", case, conns))


def ratios_and_targets(datasets: list[Row]) -> tuple[list[str], list[list[Any]]]:
    """The ratio table (per dataset) and the targets of issue 7 with their figures."""
    by = {(d["backend"], d["size"]): d for d in datasets}
    ratio_rows, targets = [], []
    for d in datasets:
        b, s = d["backend"], d["size"]
        small = by.get((b, "small"))
        ratio_rows.append([
            f"{b}/{s}",
            _peer_ratio(d, "sessions_first"),
            _peer_ratio(d, "sessions_filtered"),
            _ratio(_rps(d, "ours", "sessions_first"), _rps(d, "floor", "sessions_first")),
            _ratio(_rps(d, "ours", "mix"), _rps(d, "floor", "mix")),
            _ratio(_p50(d, "sessions_deep"), _p50(d, "sessions_first")),
            _ratio(_p50(d, "sessions_first"), _p50(small, "sessions_first")) if s != "small" else None,
            _ratio(_rps(d, "ours", "sessions_first", 16, 2), _rps(d, "ours", "sessions_first", 16, 1)),
            _ratio(_rps(d, "ours", "mix", 64, 2), _rps(d, "ours", "mix", 64, 1)),
        ])

    def target(name: str, where: str, figure: float | None, ok: bool | None, unit: str = "") -> None:
        shown = "not measured" if figure is None else f"{_fmt(figure, 2)}{unit}"
        targets.append([name, where, shown, "–" if ok is None else ("met" if ok else "MISSED")])

    for d in datasets:
        b, s = d["backend"], d["size"]
        where = f"{b}/{s}"
        if b == "sqlite":
            r = _peer_ratio(d, "sessions_first")
            target("sessions?limit=25 req/s >= 5x Datasette (c16)", where, r, r and r >= 5, "x")
        r = _ratio(_rps(d, "ours", "sessions_first"), _rps(d, "floor", "sessions_first"))
        target("sessions?limit=25 req/s >= 0.6x bytes floor (c16)", where, r, r and r >= 0.6, "x")
        r = _ratio(_p50(d, "sessions_deep"), _p50(d, "sessions_first"))
        target("deep cursor page p50 <= 1.2x first page (c1)", where, r, r and r <= 1.2, "x")
        small = by.get((b, "small"))
        if s == BIG:
            for case in CURSOR_CASES:
                r = _ratio(_p50(d, case), _p50(small, case))
                target(f"{case} p50 large <= 1.3x small (c1)", b, r, r and r <= 1.3, "x")
            v = _p50(d, "analytics_usage")
            target("analytics usage all time by day p50 < 5 ms (c1)", where, v, v is not None and v < 5, " ms")
            if b == "postgresql":
                v = _p50(d, "sessions_search")
                target("sessions search p50 < 15 ms (c1)", where, v, v is not None and v < 15, " ms")
            for case in OFFSET_CASES:
                v = _p50(d, case)
                target(f"{case} (exact total) p50 < 10 ms (c1)", where, v, v is not None and v < 10, " ms")
            peaks = [r["peak_mb"] for r in d["rows"] if r["server"] == "ours"]
            v = max(peaks) if peaks else None
            target("server process peak RSS < 200 MB", where, v, v is not None and v < 200, " MB")
        for case, conns in (("sessions_first", 16), ("mix", 64)):
            r = _ratio(_rps(d, "ours", case, conns, 2), _rps(d, "ours", case, conns, 1))
            target(f"2 workers >= 1.4x 1 worker, {case} c{conns}", where, r, r and r >= 1.4, "x")
    return ["dataset", "ours/Datasette first page", "ours/Datasette filtered", "ours/floor first page",
            "ours/floor mix", "deep/first p50", "this size/small p50 first page", "2w/1w first page c16",
            "2w/1w mix c64"], ratio_rows + [["__targets__"]] + targets


def stream_section(stream: dict[str, Any] | None) -> tuple[list[str], list[list[Any]]]:
    """The import and export memory section (from bench_import.py's results) and its targets: memory flat when
    the file grows tenfold, i.e. peak RSS at the largest size at most 1.2x the smallest's."""
    if not stream:
        return ["Not measured yet: run `.venv/bin/python benchmarks/bench_import.py --export`.", ""], []
    runs: dict[tuple[str, str], list[list[Any]]] = {}
    for backend, action, lines, seconds, peak_mb in stream["rows"]:
        runs.setdefault((backend, action), []).append([lines, seconds, peak_mb])
    body, targets = [], []
    for (backend, action), rows in runs.items():
        rows.sort()
        for lines, seconds, peak_mb in rows:
            body.append([backend, action, lines, seconds, lines / seconds if seconds else None, peak_mb])
        (small_lines, _, small_mb), (large_lines, _, large_mb) = rows[0], rows[-1]
        ratio = _ratio(large_mb, small_mb)
        targets.append([f"{action} streams: peak RSS at {large_lines / small_lines:.0f}x the lines <= 1.2x",
                        backend, "not measured" if ratio is None else f"{_fmt(ratio, 2)}x",
                        "met" if ratio is not None and ratio <= 1.2 else "MISSED"])
    out = [f"Measured {stream['date']} with `{stream['command']}` (synthetic files of all eight record types; "
           "peak RSS of the `chipp-builder import` / `export all` process, from wait4()).", ""]
    out += _table(["backend", "action", "lines", "seconds", "lines/s", "peak RSS MB"], body)
    return out + [""], targets


def write(path: Path, datasets: list[Row], command: str, commit: str, data_rows: list[list[Any]],
          stream: dict[str, Any] | None = None) -> str:
    """Write RESULTS.md and return the headline tables (ratios and targets) as text for the terminal."""
    header, mixed = ratios_and_targets(datasets)
    split = mixed.index(["__targets__"])
    ratio_rows, targets = mixed[:split], mixed[split + 1:]
    stream_md, stream_targets = stream_section(stream)
    targets = targets + stream_targets
    ratio_md = _table(header, ratio_rows)
    target_md = _table(["target", "where", "figure", ""], targets)
    out = ["# Benchmark results", "",
           "Regenerated by `benchmarks/run.py` (see docs/benchmarks.md for what each column means). "
           "Figures from one machine shared with other work: read the ratios, which come from servers "
           "measured side by side in the same run, rather than the absolute numbers.", "",
           f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}", f"- Commit: {commit}", f"- Command: `{command}`"]
    out += [f"- {line}" for line in machine()]
    out += ["", "## Data", ""]
    out += _table(["backend", "size", "sessions", "messages", "feedback", "consumers", "load s (side apps)",
                   "load s (main app)", "load s (total)", "built"], data_rows)
    out += ["", "## Targets", ""] + target_md + ["", "## Ratios", ""] + ratio_md
    out += ["", "## Import and export memory", ""] + stream_md + ["## Per dataset", ""]
    for d in datasets:
        out += dataset_section(d)
    out += ["## Notes", "",
            "- `ours`: `chipp-builder serve --workers N` (uvicorn, its access log on, as a user runs it); "
            "`floor`: the same stack (create_app, middleware, uvicorn settings) returning the captured bytes "
            "of the same request from memory (benchmarks/harness/floor_app.py), no database and no key lookup; "
            "`SQL p50`: the statements the request ran, captured with SQLAlchemy's before_cursor_execute, run "
            "back to back in-process on the bare driver (sqlite3 / asyncpg), key lookup included.",
            "- Concurrency: the sessions first page and the mix run at 1, 16 and 64 connections; every other "
            "case at 1 (latency targets) and 16 (throughput). Two workers: the first page and the mix at 16 and 64.",
            "- wrk runs one thread; its CPU per request is in `wrk CPU ms/req` (it shares the two cores).",
            "- Datasette serves the `session` table (no consumer join, its default `arrays` shape); "
            "PostgreSQL has no Datasette, so there the comparison is with the floor only.",
            ""]
    kept = kept_sections(path.read_text()) if path.exists() else []
    if kept:
        out += ["## Part two (sections written by their own benchmarks)", "", *kept]
    path.write_text("\n".join(out))
    return "\n".join(["Targets:", *target_md, "", "Ratios:", *ratio_md])


# A Part-two benchmark (bench_http.py, ...) writes its figures into RESULTS.md between these two markers, and a
# regeneration of the rest by run.py keeps them: each section belongs to the benchmark that measures it.
_BEGIN, _END = "<!-- section: {} -->", "<!-- end of section: {} -->"
_SECTION = re.compile(r"<!-- section: (?P<name>[\w-]+) -->\n.*?<!-- end of section: (?P=name) -->\n?", re.S)


def kept_sections(text: str) -> list[str]:
    """The benchmark-owned sections of a RESULTS.md, markers included, in order."""
    return [m.group(0).rstrip("\n") + "\n" for m in _SECTION.finditer(text)]


def put_section(path: Path, name: str, markdown: str) -> None:
    """Write one benchmark's section into RESULTS.md: replaced where it is, else added at the end."""
    block = f"{_BEGIN.format(name)}\n{markdown.rstrip()}\n{_END.format(name)}\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    for found in _SECTION.finditer(text):
        if found.group("name") == name:
            path.write_text(text[:found.start()] + block + text[found.end():])
            return
    if "## Part two" not in text:
        text = text.rstrip("\n") + "\n\n## Part two (sections written by their own benchmarks)\n"
    path.write_text(text.rstrip("\n") + "\n\n" + block)
