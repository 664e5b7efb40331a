"""`chipp-builder export` against the server in-process (Starlette's TestClient as the SDK's sync transport):
every resource in every format, resume after an interruption, the partial file, CSV and Parquet shapes,
429 waits, and `export all` → `import` into another database reproducing every list endpoint's answers."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from typer.testing import CliRunner, Result

from chipp_builder.cli import export as export_cli
from chipp_builder.cli.main import app as cli_app
from chipp_builder.client import Client, RateLimited, RetryPolicy
from chipp_builder.export import runner
from chipp_builder.export.rows import COLUMNS
from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.ingest.demo import generate_demo
from chipp_builder.server.resources.apps import queries as apps

with warnings.catch_warnings():
    # Starlette's notice about a future httpx fork: the TestClient here is only the SDK's sync transport.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PAGE = "3"  # a small page size, so every walk crosses pages (and sessions' messages span several)
RESOURCES = ["sessions", "messages", "consumers", "feedback", "memories", "knowledge-sources", "tags"]
FORMATS = ["csv", "jsonl", "parquet"]


class TestClientTransport(httpx.BaseTransport):
    """The SDK's httpx requests through Starlette's TestClient, in-process. Not its own transport: the
    TestClient speaks httpx2 when that is installed (the MCP SDK brings it), whose responses httpx cannot read."""

    __test__ = False  # not a pytest class

    def __init__(self, test_client: TestClient) -> None:
        self.test_client = test_client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.test_client.request(
            request.method, str(request.url), content=request.read(), follow_redirects=False,
            headers=[(name.decode(), value.decode()) for name, value in request.headers.raw],
        )
        # The body arrives decoded: its encoding header would have httpx decode it a second time.
        headers = [(k, v) for k, v in answer.headers.multi_items() if k.lower() != "content-encoding"]
        return httpx.Response(answer.status_code, headers=headers, content=answer.content, request=request)


@dataclass
class Served:
    """An app with data behind an in-process server; `client()` is an SDK client for it."""

    test_client: TestClient
    app_id: UUID
    key: str
    database_url: str

    def transport(self) -> httpx.BaseTransport:
        return TestClientTransport(self.test_client)

    def client(self, transport: httpx.BaseTransport | None = None) -> Client:
        return Client("http://testserver", self.key, self.app_id, transport=transport or self.transport(),
                      retry=RetryPolicy(max_retry_after=0))


async def _make_key(database_url: str, app_id: UUID) -> str:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as db:
            return str((await apps.create_key(db, app_id, "export test"))["rawKey"])
    finally:
        await engine.dispose()


async def _demo(database_url: str) -> tuple[UUID, str]:
    engine = make_engine(database_url)
    try:
        app_id = await generate_demo(engine, sessions=25, seed=11)
    finally:
        await engine.dispose()
    return app_id, await _make_key(database_url, app_id)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Server A: demo data (25 sessions) on its own SQLite file."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('server-a') / 'a.db'}"
    upgrade(database_url)
    app_id, key = asyncio.run(_demo(database_url))
    with TestClient(create_app(Settings(database_url=database_url, rate_limit=1_000_000))) as test_client:
        yield Served(test_client, app_id, key, database_url)


@pytest.fixture
def cli(served: Served, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `chipp-builder export …` in-process against server A (or a client the test passes)."""
    slept: list[float] = []
    monkeypatch.setattr(export_cli, "sleep", slept.append)

    def invoke(*args: str, client: Client | None = None) -> Result:
        monkeypatch.setattr(export_cli, "make_client", lambda *_: client or served.client())
        return CliRunner().invoke(cli_app, ["export", *args])

    invoke.slept = slept  # type: ignore[attr-defined]
    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}\n{result.exception!r}"
    return result


# --- what the API says, to compare files with -----------------------------------------------------------


def api_items(client: Client, resource: str) -> list[dict[str, Any]]:
    """Every object of a resource's list, in the API's order, as the API's JSON."""
    if resource == "messages":
        return [m.model_dump(mode="json") for s in client.sessions.list()
                for m in client.sessions.messages(s.id, include="tool_details")]
    lists: dict[str, Any] = {
        "sessions": client.sessions.list, "consumers": client.consumers.list, "feedback": client.feedback.list,
        "memories": client.memories.list, "knowledge-sources": client.knowledge_sources.list,
        "tags": client.tags.list,
    }
    return [item.model_dump(mode="json") for item in lists[resource]()]


def read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


# --- every resource, every format -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("resource", RESOURCES)
def test_every_resource_in_every_format(
    cli: Callable[..., Result], served: Served, tmp_path: Path, resource: str, fmt: str
) -> None:
    out = tmp_path / f"{resource}.{fmt}"
    result = ok(cli(resource, "--format", fmt, "-o", str(out), "--page-size", PAGE))
    expected = api_items(served.client(), resource)
    assert expected, f"the demo has no {resource}"
    assert f"Exported {len(expected)} rows" in result.stdout
    assert not runner.partial_path(out).exists() and not runner.checkpoint_path(out).exists()
    rows = read_rows(out, fmt)
    assert [str(row["id"]) for row in rows] == [item["id"] for item in expected]
    if fmt == "jsonl":
        assert rows == expected  # the API's objects, unchanged
    else:
        assert list(rows[0]) == [column.name for column in COLUMNS[resource]]


def test_messages_follow_the_session_filters(cli: Callable[..., Result], served: Served, tmp_path: Path) -> None:
    client = served.client()
    widget = [s.id for s in client.sessions.list(source="WIDGET")]
    out = tmp_path / "m.jsonl"
    ok(cli("messages", "-o", str(out), "--source", "WIDGET", "--role", "user", "--page-size", PAGE))
    rows = read_rows(out, "jsonl")
    expected = [m.model_dump(mode="json") for s in widget for m in client.sessions.messages(s, role="user",
                                                                                         include="tool_details")]
    assert rows == expected
    assert {row["role"] for row in rows} <= {"user"}


def test_csv_flattens_and_round_trips(cli: Callable[..., Result], served: Served, tmp_path: Path) -> None:
    out = tmp_path / "messages.csv"
    ok(cli("messages", "-o", str(out)))  # the format from the extension
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfid,session_id,role,content,")
    rows = read_rows(out, "csv")
    api = api_items(served.client(), "messages")
    assert len(rows) == len(api)
    tagged = next(m for m in api if m["tags"])
    tooled = next(m for m in api if m["tool_calls"])
    by_id = {row["id"]: row for row in rows}
    assert by_id[tagged["id"]]["tags"] == "; ".join(t["name"] for t in tagged["tags"])
    assert json.loads(by_id[tooled["id"]]["tool_calls"]) == tooled["tool_calls"]
    assert json.loads(by_id[tooled["id"]]["tool_results"]) == tooled["tool_results"]
    for message in api:
        row = by_id[message["id"]]
        assert row["content"] == message["content"] and row["created_at"] == message["created_at"]
        assert row["token_count"] == ("" if message["token_count"] is None else str(message["token_count"]))

    sessions = tmp_path / "sessions.csv"
    ok(cli("sessions", "-o", str(sessions)))
    api_sessions = {s["id"]: s for s in api_items(served.client(), "sessions")}
    for row in read_rows(sessions, "csv"):
        consumer = api_sessions[row["id"]]["consumer"] or {}
        assert row["consumer_email"] == (consumer.get("email") or "")
        assert row["consumer_name"] == (consumer.get("name") or "")
        assert row["is_bookmarked"] in ("true", "false")


def test_parquet_column_types(cli: Callable[..., Result], tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for resource in RESOURCES:
        out = tmp_path / f"{resource}.parquet"
        ok(cli(resource, "-o", str(out)))
        schema = pq.read_schema(out)
        for column in COLUMNS[resource]:
            expected = {"string": pa.string(), "int": pa.int64(), "bool": pa.bool_(), "float": pa.float64(),
                        "timestamp": pa.timestamp("us", tz="UTC")}[column.kind]
            assert schema.field(column.name).type == expected, (resource, column.name)
    table = pq.read_table(tmp_path / "sessions.parquet")
    assert str(table.schema.field("started_at").type) == "timestamp[us, tz=UTC]"
    assert table.schema.field("message_count").type == pa.int64()
    assert table.schema.field("is_bookmarked").type == pa.bool_()


def test_parquet_tags_are_null_on_an_untagged_message(
    cli: Callable[..., Result], served: Served, tmp_path: Path
) -> None:
    out = tmp_path / "messages.parquet"
    ok(cli("messages", "-o", str(out)))
    by_id = {row["id"]: row for row in read_rows(out, "parquet")}
    api = api_items(served.client(), "messages")
    untagged = [m for m in api if not m["tags"]]
    tagged = [m for m in api if m["tags"]]
    assert untagged and tagged
    assert all(by_id[m["id"]]["tags"] is None and by_id[m["id"]]["tag_ids"] is None for m in untagged)
    assert all(by_id[m["id"]]["tags"] == "; ".join(t["name"] for t in m["tags"]) for m in tagged)


def test_parquet_without_pyarrow_is_a_clear_error(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    result = cli("sessions", "-o", str(tmp_path / "s.parquet"))
    assert result.exit_code == 1
    assert "from a clone, .venv/bin/pip install -e '.[parquet]'" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "shown"), [
    (["sessions", "-o", "x.xlsx"], "cannot tell the format from 'x.xlsx'"),
    (["sessions", "-o", "sessions"], "cannot tell the format from 'sessions'"),
    (["all", "-o", "all.csv"], "export all writes JSON Lines"),
    (["all", "-o", "all.parquet"], "export all writes JSON Lines"),
    (["consumers", "-o", "c.csv", "--format", "jsonl"], "c.csv has the extension of csv but --format is jsonl"),
])
def test_an_output_extension_of_no_or_another_format_is_refused(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], shown: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith(f"Error: {shown}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if "tell the format" in shown:
        assert ".csv (csv), .jsonl (jsonl), .ndjson (jsonl), .parquet (parquet)" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing written, not even a partial file


def test_an_explicit_format_is_followed_and_said(cli: Callable[..., Result], served: Served, tmp_path: Path) -> None:
    out = tmp_path / "consumers.txt"
    result = ok(cli("consumers", "-o", str(out), "--format", "csv"))
    assert "Writing csv to consumers.txt, as --format says" in result.stderr
    assert len(read_rows(out, "csv")) == len(api_items(served.client(), "consumers"))
    ndjson = tmp_path / "tags.ndjson"
    result = ok(cli("tags", "-o", str(ndjson)))
    assert result.stderr == "" and "(jsonl)" in result.stdout
    assert read_rows(ndjson, "jsonl") == api_items(served.client(), "tags")


def test_missing_connection_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHIPP_BASE_URL", "CHIPP_API_KEY", "CHIPP_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli_app, ["export", "tags", "-o", str(tmp_path / "t.csv")])
    assert result.exit_code == 1
    # In the command's words (its options), not the SDK's (base_url=).
    assert result.stderr == ("Error: No base URL: pass --base-url or set the CHIPP_BASE_URL environment "
                             "variable\n"), result.stderr
    result = CliRunner().invoke(cli_app, ["export", "tags", "-o", str(tmp_path / "t.csv"),
                                          "--base-url", "http://127.0.0.1:8000"])
    assert result.stderr.startswith("Error: No API key: pass --key or set the CHIPP_API_KEY"), result.stderr
    result = CliRunner().invoke(cli_app, ["export", "tags", "-o", str(tmp_path / "t.csv"),
                                          "--base-url", "http://127.0.0.1:8000", "--key", "chipp_x", "--app", "X"])
    assert result.stderr.startswith("Error: --app must be a UUID, got 'X'"), result.stderr
    assert not list(tmp_path.iterdir())


def test_an_app_url_as_base_url_gives_the_app(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The URL `make demo` prints for curl works as --base-url: the server's root and the app come from it.
    for name in ("CHIPP_BASE_URL", "CHIPP_API_KEY", "CHIPP_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    def in_process(*args: Any, http_client: httpx.Client, **kwargs: Any) -> Client:
        return Client(*args, **kwargs, transport=served.transport())

    monkeypatch.setattr(export_cli, "Client", in_process)
    app_url = f"http://testserver/api/v1/apps/{served.app_id}"
    out = tmp_path / "t.jsonl"
    ok(CliRunner().invoke(cli_app, ["export", "tags", "-o", str(out), "--base-url", app_url, "--key", served.key]))
    assert read_rows(out, "jsonl") == api_items(served.client(), "tags")
    other = "123e4567-e89b-12d3-a456-426614174000"
    result = CliRunner().invoke(cli_app, ["export", "tags", "-o", str(tmp_path / "u.jsonl"), "--base-url", app_url,
                                          "--key", served.key, "--app", other])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: --base-url is the URL of app {served.app_id}, but --app is '{other}'")
    monkeypatch.setenv("CHIPP_BASE_URL", app_url + "/sessions")
    result = CliRunner().invoke(cli_app, ["export", "tags", "-o", str(tmp_path / "u.jsonl"), "--key", served.key])
    assert result.stderr.startswith("Error: CHIPP_BASE_URL must be the server's root"), result.stderr


# --- interruption and --resume ---------------------------------------------------------------------------


class Interrupting(httpx.BaseTransport):
    """Passes requests through until the Nth, which is interrupted (Ctrl+C); checks the final name is absent."""

    def __init__(self, inner: httpx.BaseTransport, fail_at: int | None, output: Path | None = None) -> None:
        self.inner, self.fail_at, self.output, self.requests = inner, fail_at, output, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.output is not None:
            assert not self.output.exists(), "the final name appeared before the export finished"
        if self.fail_at is not None and self.requests == self.fail_at:
            raise KeyboardInterrupt
        return self.inner.handle_request(request)


CASES = [("messages", "csv", 9), ("messages", "jsonl", 31), ("messages", "parquet", 17),
         ("consumers", "csv", 2), ("sessions", "parquet", 3), ("feedback", "jsonl", 2), ("all", "jsonl", 40)]


@pytest.mark.parametrize(("resource", "fmt", "fail_at"), CASES)
def test_resume_after_an_interruption_gives_exactly_the_uninterrupted_rows(
    cli: Callable[..., Result], served: Served, tmp_path: Path, resource: str, fmt: str, fail_at: int
) -> None:
    whole = tmp_path / f"whole.{fmt}"
    args = ["--page-size", PAGE] + ([] if resource == "all" else ["--format", fmt])
    ok(cli(resource, "-o", str(whole), *args))

    out = tmp_path / f"resumed.{fmt}"
    stopped = cli(resource, "-o", str(out), *args,
                  client=served.client(Interrupting(served.transport(), fail_at, out)))
    assert stopped.exit_code == 130, stopped.stderr
    assert "--resume" in stopped.stderr
    assert not out.exists()
    assert runner.checkpoint_path(out).exists()
    checkpoint = json.loads(runner.checkpoint_path(out).read_text())
    assert 0 < checkpoint["rows"]
    # A crash after a page was written but before its checkpoint: those rows must not count twice.
    data = runner.spool_path(out) if fmt == "parquet" else runner.partial_path(out)
    with data.open("ab") as handle:
        handle.write(b'{"half": "a row written after the last checkpoint"}\n' if fmt != "csv" else b"x,y\r\n")

    result = ok(cli(resource, "-o", str(out), *args, "--resume",
                    client=served.client(Interrupting(served.transport(), None, out))))
    assert not runner.checkpoint_path(out).exists() and not runner.partial_path(out).exists()
    assert not runner.spool_path(out).exists()
    if fmt == "parquet":
        assert read_rows(out, fmt) == read_rows(whole, fmt)
    else:
        assert out.read_bytes() == whole.read_bytes()
    total = len(read_rows(whole, fmt))
    assert f"Exported {total} " in result.stdout


def test_resume_refuses_another_exports_checkpoint(
    cli: Callable[..., Result], served: Served, tmp_path: Path
) -> None:
    out = tmp_path / "s.csv"
    # Request 1 asks analytics for the session count (the time estimate), 2 the first page, 3 is interrupted.
    cli("sessions", "-o", str(out), "--page-size", PAGE, client=served.client(Interrupting(served.transport(), 3)))
    assert runner.checkpoint_path(out).exists()
    result = cli("sessions", "-o", str(out), "--source", "APP", "--resume")
    assert result.exit_code == 1
    # One line: the refusal, not first a note that "the export stopped" (it never started).
    assert result.stderr.startswith("Error: ") and "belongs to another export" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "stopped" not in result.stderr
    rows = json.loads(runner.checkpoint_path(out).read_text())["rows"]
    started_over = ok(cli("sessions", "-o", str(out)))  # without --resume: starts over, and says so
    assert (f"Starting over (no --resume): the earlier partial export s.csv.partial ({rows:,} rows) is replaced "
            "by this run.") in started_over.stderr
    assert not runner.checkpoint_path(out).exists()


def test_a_rerun_stopped_before_its_first_page_keeps_the_earlier_partial_export(
    cli: Callable[..., Result], served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tmp_path / "whole.jsonl"
    ok(cli("messages", "-o", str(whole), "--page-size", PAGE))
    out = tmp_path / "m.jsonl"
    cli("messages", "-o", str(out), "--page-size", PAGE, client=served.client(Interrupting(served.transport(), 9)))
    partial, checkpoint = runner.partial_path(out), runner.checkpoint_path(out)
    kept = (partial.read_bytes(), checkpoint.read_text())
    assert kept[0]

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt  # Ctrl+C during the rerun's first rate-limit wait

    monkeypatch.setattr(export_cli, "sleep", interrupted)
    rerun = cli("messages", "-o", str(out), "--page-size", PAGE,
                client=served.client(RateLimiting(served.transport(), {1})))
    assert rerun.exit_code == 130
    assert (partial.read_bytes(), checkpoint.read_text()) == kept  # neither deleted nor cut short
    assert ("The export stopped before its first page arrived, so the earlier partial export in m.jsonl.partial "
            "and m.jsonl.checkpoint.json is untouched: run the same command with --resume") in rerun.stderr
    assert "Starting over" not in rerun.stderr

    monkeypatch.setattr(export_cli, "sleep", lambda seconds: None)
    ok(cli("messages", "-o", str(out), "--page-size", PAGE, "--resume"))
    assert out.read_bytes() == whole.read_bytes()


def test_resume_without_a_checkpoint_starts_fresh(
    cli: Callable[..., Result], served: Served, tmp_path: Path
) -> None:
    out = tmp_path / "t.jsonl"
    ok(cli("tags", "-o", str(out), "--resume"))
    assert read_rows(out, "jsonl") == api_items(served.client(), "tags")


# --- 429 -----------------------------------------------------------------------------------------------


class RateLimiting(httpx.BaseTransport):
    """Answers the given request numbers with a 429 (Retry-After: 7), passes every other one through."""

    def __init__(self, inner: httpx.BaseTransport, limited: set[int]) -> None:
        self.inner, self.limited, self.requests = inner, limited, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests in self.limited:
            return httpx.Response(429, headers={"Retry-After": "7"},
                                  json={"error": {"code": "rate_limited", "message": "Rate limit exceeded"}})
        return self.inner.handle_request(request)


def test_rate_limits_are_waited_out_visibly(cli: Callable[..., Result], served: Served, tmp_path: Path) -> None:
    whole = tmp_path / "whole.csv"
    ok(cli("messages", "-o", str(whole), "--page-size", PAGE))
    out = tmp_path / "limited.csv"
    transport = RateLimiting(served.transport(), {2, 3, 10})
    result = ok(cli("messages", "-o", str(out), "--page-size", PAGE, client=served.client(transport)))
    assert cli.slept == [1.0] * 21  # type: ignore[attr-defined]  # three 7 s waits, counted down by the second
    assert "Rate limited by the server: waiting 7 s" in result.stderr
    assert out.read_bytes() == whole.read_bytes()


def test_a_real_server_rate_limit_is_shown_and_retried(
    cli: Callable[..., Result], tmp_path: Path, served: Served
) -> None:
    # A server with rate_limit=3: the fourth request of the minute gets a real 429 with Retry-After.
    with TestClient(create_app(Settings(database_url=served.database_url, rate_limit=3))) as limited:
        slow = Client("http://testserver", served.key, served.app_id, http_client=limited,
                      retry=RetryPolicy(max_retry_after=0))
        waits: list[float] = []
        fetch = runner.Fetcher(sleep=lambda s: waits.append(s), on_wait=lambda s: None)
        job = runner.Job("consumers", "csv", {}, str(served.app_id), tmp_path / "c.csv")
        try:
            # Requests 1..3 pass (3 pages of 1); then every retry in the same minute is limited too, so with a
            # sleep that does not really wait the fetcher gives up after MAX_RATE_LIMIT_WAITS waits (unless
            # the minute happens to turn meanwhile, when the export completes).
            runner.run_export(slow, job, page_size=1, fetch=fetch)
        except RateLimited as exc:
            assert "Rate limit exceeded (retry after" in exc.message
            assert len(waits) == runner.MAX_RATE_LIMIT_WAITS
            assert not (tmp_path / "c.csv").exists() and runner.checkpoint_path(tmp_path / "c.csv").exists()
        assert waits and all(1 <= w <= 60 for w in waits)


# --- export all → import into another database ----------------------------------------------------------


def _walk(client: Client) -> dict[str, Any]:
    """Every list endpoint's data (and each single-object endpoint) of an app, as the API's JSON."""
    dump = lambda items: [item.model_dump(mode="json") for item in items]  # noqa: E731
    sessions = list(client.sessions.list())
    return {
        "sessions": dump(sessions),
        "session": [client.sessions.get(s.id).model_dump(mode="json") for s in sessions],
        "messages": [dump(client.sessions.messages(s.id)) for s in sessions],
        "messages+tools": [dump(client.sessions.messages(s.id, include="tool_details")) for s in sessions],
        "consumers": dump(client.consumers.list()),
        "consumer": [client.consumers.get(c.id).model_dump(mode="json") for c in client.consumers.list()],
        "feedback": dump(client.feedback.list()),
        "tags": dump(client.tags.list()),
        "knowledge_sources": dump(client.knowledge_sources.list()),
        "memories": dump(client.memories.list()),
        "usage": client.analytics.usage(group_by="week").model_dump(mode="json"),
        "token_usage": client.analytics.token_usage(group_by="day").model_dump(mode="json"),
    }


def test_export_all_then_import_reproduces_every_answer(
    cli: Callable[..., Result], served: Served, tmp_path: Path
) -> None:
    dump = tmp_path / "everything.jsonl"
    ok(cli("all", "-o", str(dump), "--page-size", PAGE))
    records = read_rows(dump, "jsonl")
    kinds = {record["type"] for record in records}
    assert kinds == {"consumer", "session", "message", "message_tag", "tag", "feedback", "knowledge_source",
                     "memory"}
    assert all("source_type" in r and "type" in r for r in records if r["type"] == "knowledge_source")

    # Server B: another SQLite database, a fresh app, filled by `chipp-builder import`.
    database_b = f"sqlite:///{tmp_path / 'b.db'}"
    runner_b = CliRunner()
    app_b = ok(runner_b.invoke(cli_app, ["apps", "create", "--name", "B", "--database-url", database_b])).stdout
    app_b_id = UUID(app_b.strip())
    imported = ok(runner_b.invoke(cli_app, ["import", str(dump), "--app", str(app_b_id),
                                            "--database-url", database_b]))
    assert f"Read {len(records)} lines" in imported.stdout
    key_b = asyncio.run(_make_key(database_b, app_b_id))
    with TestClient(create_app(Settings(database_url=database_b, rate_limit=1_000_000))) as b:
        client_b = Client("http://testserver", key_b, app_b_id, http_client=b)
        assert _walk(client_b) == _walk(served.client())

        # And exporting B gives the same file again.
        again = tmp_path / "again.jsonl"
        ok(cli("all", "-o", str(again), client=client_b))
        assert again.read_bytes() == dump.read_bytes()


def test_a_crash_after_the_last_page_resumes_without_fetching_again(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The walk finished and was checkpointed, but the process died before the rename (or the Parquet
    # conversion): --resume must not walk again (a cursor walk would start over and duplicate every row).
    out = tmp_path / "s.parquet"
    whole = tmp_path / "whole.parquet"
    job = runner.Job("sessions", "parquet", {}, str(served.app_id), out)
    runner.run_export(served.client(), runner.Job("sessions", "parquet", {}, str(served.app_id), whole),
                      page_size=3)

    def crash(*_: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(runner, "spool_to_parquet", crash)
        with pytest.raises(KeyboardInterrupt):
            runner.run_export(served.client(), job, page_size=3)
    assert json.loads(runner.checkpoint_path(out).read_text())["state"]["done"] is True
    counting = Interrupting(served.transport(), None)
    assert runner.run_export(served.client(counting), job, resume=True, page_size=3) == 25
    assert counting.requests == 0
    assert read_rows(out, "parquet") == read_rows(whole, "parquet")


# --- the installed console script over real HTTP ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_console_script_exports_over_http_with_the_environment(served: Served, tmp_path: Path) -> None:
    """`chipp-builder export` as installed, configured by CHIPP_* variables, against uvicorn on server A's file."""
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHIPP_")}
    env.update(CHIPP_DATABASE_URL=served.database_url, CHIPP_RATE_LIMIT="100000")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "chipp_builder.server.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base_url, timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("the server did not start")
                time.sleep(0.1)
        script = Path(sys.executable).parent / "chipp-builder"
        out = tmp_path / "feedback.csv"
        env.update(CHIPP_BASE_URL=base_url, CHIPP_API_KEY=served.key, CHIPP_APP_ID=str(served.app_id))
        done = subprocess.run([str(script), "export", "feedback", "-o", str(out), "--rating", "-1"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        expected = [f.id for f in served.client().feedback.list(rating=-1)]
        assert [row["id"] for row in read_rows(out, "csv")] == expected
        assert f"Exported {len(expected)} rows to {out} (csv)." in done.stdout

        bad = subprocess.run([str(script), "export", "sessions", "-o", str(tmp_path / "s.csv"), "--source", "FAX"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 1 and bad.stderr.startswith("Error: source must be one of"), bad.stderr
        assert "Traceback" not in bad.stderr
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_failure_before_the_first_page_leaves_nothing_behind(
    cli: Callable[..., Result], served: Served, tmp_path: Path
) -> None:
    out = tmp_path / "m.csv"
    result = cli("messages", "-o", str(out), client=served.client(Interrupting(served.transport(), 1)))
    assert result.exit_code == 130
    assert list(tmp_path.iterdir()) == []


def test_the_expected_request_count_matches_the_requests_made(served: Served, tmp_path: Path) -> None:
    # What the progress bar's time estimate counts on: one request per session plus the sessions pages (and
    # the one analytics request that counted the sessions).
    expected: list[int | None] = []
    fetch = runner.Fetcher()
    job = runner.Job("messages", "jsonl", {}, str(served.app_id), tmp_path / "m.jsonl")
    runner.run_export(served.client(), job, page_size=100, fetch=fetch,
                      progress=runner.Progress(expected=expected.append))
    sessions = len(list(served.client().sessions.list()))
    assert expected == [sessions + 1]
    assert fetch.requests == 1 + sessions + 1  # the count, the sessions page, one request per session
