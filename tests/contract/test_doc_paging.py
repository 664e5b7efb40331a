"""The paging loops of docs/paging.md, run as the page writes them (curl + jq, and JavaScript under Node),
against a local server that answers one 429 in the middle of a list: they wait its Retry-After, ask for the
same page again and return the whole list."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

DOC = Path(__file__).parents[2] / "docs" / "paging.md"
KEY = "chipp_" + "a" * 32
SECOND = "eyJpZCI6ImIifQ"  # base64url of {"id":"b"}: a cursor as the API writes them
PAGES = {
    None: {"data": [{"id": "a"}, {"id": "b"}], "pagination": {"has_more": True, "next_cursor": SECOND, "limit": 100}},
    SECOND: {"data": [{"id": "c"}], "pagination": {"has_more": False, "next_cursor": None, "limit": 100}},
}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


class _Stub(ThreadingHTTPServer):
    """Serves PAGES at /sessions; the first request for the second page gets a 429 with `Retry-After: 1`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[float, str | None, str | None]] = []  # (time, cursor, authorization)
        self.limited = False


class _Handler(BaseHTTPRequestHandler):
    server: _Stub

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        query = parse_qs(urlsplit(self.path).query)
        cursor = query.get("cursor", [None])[0]
        self.server.requests.append((time.monotonic(), cursor, self.headers.get("Authorization")))
        if cursor == SECOND and not self.server.limited:
            self.server.limited = True
            self._send(429, {"error": {"code": "rate_limited", "message": "Rate limit exceeded"}}, {"Retry-After": "1"})
        elif cursor in PAGES and query.get("limit") == ["100"]:
            self._send(200, PAGES[cursor])
        else:
            self._send(400, {"error": {"code": "invalid_request", "message": "Invalid cursor"}})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[_Stub]:
    server = _Stub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _assert_waited_and_resumed(stub: _Stub) -> None:
    cursors = [cursor for _, cursor, _ in stub.requests]
    assert cursors == [None, SECOND, SECOND]  # the limited page was asked for again, nothing else twice
    assert {auth for _, _, auth in stub.requests} == {f"Bearer {KEY}"}
    assert stub.requests[2][0] - stub.requests[1][0] >= 0.95  # it waited out Retry-After: 1


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_the_curl_loop_waits_out_a_429_and_returns_the_whole_list(stub: _Stub, tmp_path: Path) -> None:
    function, usage = _blocks("sh")[:2]
    assert "fetch_all()" in function and usage.startswith("fetch_all ")
    base = f"http://127.0.0.1:{stub.server_address[1]}"
    script = f'KEY={KEY}\nBASE={base}\n{function}\ncd "{tmp_path}"\n{usage}\ncat sessions.jsonl\n'

    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=30)

    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["id"] for line in run.stdout.splitlines()] == ["a", "b", "c"]
    assert "rate limited: waiting 1 s" in run.stderr
    _assert_waited_and_resumed(stub)


@pytest.mark.skipif(not shutil.which("node"), reason="needs Node 18 or later")
def test_the_javascript_loop_waits_out_a_429_and_returns_the_whole_list(stub: _Stub, tmp_path: Path) -> None:
    function, usage = _blocks("js")[:2]
    assert "async function fetchAll" in function and "fetchAll(" in usage
    base = f"http://127.0.0.1:{stub.server_address[1]}"
    script = tmp_path / "paging.mjs"
    script.write_text(
        f'const BASE = "{base}";\nconst API_KEY = "{KEY}";\n{function}\n{usage}\n'
        "console.log(JSON.stringify(sessions.map((session) => session.id)));\n"
    )

    run = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=30)

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["a", "b", "c"]
    _assert_waited_and_resumed(stub)
