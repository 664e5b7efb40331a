"""Load: server processes (ours, the bytes floor, Datasette) and wrk runs against them.

Each server runs as its own process tree on loopback. Around every wrk run the harness reads the CPU time
(utime + stime from /proc/<pid>/stat) of every process of the server's tree, and afterwards its peak
memory (VmHWM from /proc/<pid>/status); wrk's own CPU comes from wait4()'s resource usage. Latency
percentiles come from a Lua done() hook that prints one JSON line.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = BENCH_DIR.parent / ".venv" / "bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")

_LUA = """
local paths = {PATHS}
wrk.headers["Authorization"] = "{AUTH}"
{HEADERS}
if #paths > 0 then
  local i = 0
  request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
  end
end
done = function(s, latency, requests)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    s.requests, s.duration, s.bytes, s.errors.connect, s.errors.read, s.errors.write, s.errors.status,
    s.errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _children(pid: int) -> list[int]:
    """Every descendant of a process (through /proc/<pid>/task/*/children)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            for child in map(int, text):
                found.append(child)
                found.extend(_children(child))
    except OSError:
        pass
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def postgres_cpu_seconds() -> float:
    """CPU seconds of the PostgreSQL server on this machine: the database's share of a run (it shares the two
    cores with the server and the load tool).

    Every live `postgres` process's own time, plus the time of the ones that have exited (backends closed by a
    pool, autovacuum workers), which the kernel adds to the postmaster's children's time when it reaps them.
    """
    total = 0.0
    for entry in os.listdir("/proc"):
        fields = _stat_fields(int(entry)) if entry.isdigit() and _comm(entry) == "postgres" else None
        if fields is None:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        if _comm(fields[1]) != "postgres":  # fields[1] is the parent's pid: this is the postmaster
            total += (int(fields[13]) + int(fields[14])) / CLK_TCK  # cutime, cstime: exited children
    return total


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of one process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Server:
    """A server process tree listening on 127.0.0.1:port."""

    name: str
    command: list[str]
    port: int
    env: dict[str, str]
    log_path: Path
    ready_path: str = "/"  # a cheap path that answers once the server is up
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300.0) -> Server:
        """Start the process and wait until it answers HTTP."""
        with socket.socket() as probe:
            # A server left over from an interrupted run would answer in this one's place.
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise RuntimeError(f"port {self.port} is already taken: stop whatever listens there first")
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=BENCH_DIR,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=10).close()
                return self
            except urllib.error.HTTPError:
                return self  # any HTTP answer (ours: 404) means it is up
            except OSError:
                time.sleep(0.2)
        # Stop it, or it would hold the port (and a core) through the rest of the run.
        self.stop()
        raise RuntimeError(f"{self.name} did not start in {timeout}s: see {self.log_path}")

    def pids(self) -> list[int]:
        """The server's main process and every descendant (uvicorn's workers)."""
        assert self.process is not None
        return [self.process.pid, *_children(self.process.pid)]

    def cpu(self) -> float:
        """Total CPU seconds of the tree so far."""
        return sum(cpu_seconds(pid) for pid in self.pids())

    def peak_mb(self) -> float:
        """The largest VmHWM of any process of the tree, in MB."""
        return max(vm_hwm_mb(pid) for pid in self.pids())

    def stop(self) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, 15)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()


def ours(url: str, port: int, workers: int, log_dir: Path) -> Server:
    """Our server as a user runs it: `chipp-builder serve`, rate limit raised out of the way."""
    return Server(
        f"ours-w{workers}",
        [
            str(VENV_BIN / "chipp-builder"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--database-url",
            url,
        ],
        port,
        {"CHIPP_RATE_LIMIT": str(10**9)},
        log_dir / f"ours-w{workers}.log",
    )


def floor_server(url: str, port: int, bodies_file: Path, log_dir: Path, workers: int = 1) -> Server:
    """The bytes floor: floor_app served by uvicorn with the settings `chipp-builder serve` uses."""
    return Server(
        f"floor-w{workers}",
        [
            str(VENV_BIN / "python"),
            "-m",
            "uvicorn",
            "harness.floor_app:create",
            "--factory",
            "--app-dir",
            str(BENCH_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-server-header",
            "--no-proxy-headers",
        ],
        port,
        {"CHIPP_DATABASE_URL": url, "CHIPP_BENCH_FLOOR": str(bodies_file)},
        log_dir / f"floor-w{workers}.log",
    )


def datasette(path: Path, port: int, threads: int, log_dir: Path) -> Server:
    """Datasette serving the same SQLite file, immutable, with `threads` SQL threads."""
    return Server(
        f"datasette-t{threads}",
        [
            str(VENV_BIN / "datasette"),
            "serve",
            "-i",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--setting",
            "num_sql_threads",
            str(threads),
        ],
        port,
        {},
        log_dir / f"datasette-t{threads}.log",
        ready_path="/-/versions.json",
    )


def _lua(auth: str, paths: list[str], headers: dict[str, str] | None = None) -> str:
    quoted = ", ".join(json.dumps(p) for p in paths)
    extra = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items())
    return _LUA.replace("{PATHS}", "{" + quoted + "}").replace("{AUTH}", auth).replace("{HEADERS}", extra)


def wrk(server: Server, path: str | list[str], conns: int, seconds: float, auth: str = "",
        headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Load `server` with wrk (one thread) at `conns` connections; return throughput, latency, CPU, errors.

    `path` is one request path, or a list of paths that each connection takes in turn (the mix); `headers`
    are sent on every request besides Authorization (If-None-Match, Accept-Encoding).
    """
    paths = path if isinstance(path, list) else []
    url = f"http://127.0.0.1:{server.port}" + ("/" if paths else path)
    with (
        tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script,
        tempfile.NamedTemporaryFile("w+", suffix=".out", delete=False) as out,
    ):
        script.write(_lua(auth, paths, headers))
        script.flush()
        cpu_before, db_before = server.cpu(), postgres_cpu_seconds()
        process = subprocess.Popen(
            ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", script.name, url],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu_after, db_after = server.cpu(), postgres_cpu_seconds()
        out.seek(0)
        text = out.read()
    os.unlink(script.name)
    os.unlink(out.name)
    line = next((x for x in text.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result for {url}: {text[-500:]}")
    raw = json.loads(line[len("BENCH_JSON ") :])
    requests = raw["requests"]
    per = (lambda total: total * 1000 / requests) if requests else (lambda _total: None)
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "requests": raw["requests"],
        "bytes_per_req": raw["bytes"] / requests if requests else None,
        "non2xx": raw["status"],
        "errors": errors,
        "server_cpu_ms": per(cpu_after - cpu_before),
        "wrk_cpu_ms": per(usage.ru_utime + usage.ru_stime),
        "server_cpu_s": cpu_after - cpu_before,
        "wrk_cpu_s": usage.ru_utime + usage.ru_stime,
        "db_cpu_s": db_after - db_before,
        "seconds": raw["duration_us"] / 1e6,
    }
