"""docs/import-format.md's example: its shell commands, run as written on docs/examples/import-example.jsonl,
import every record type, and the API then serves one object of each as the file has it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "import-format.md"
EXAMPLE = ROOT / "docs" / "examples" / "import-example.jsonl"
VENV = Path(sys.executable).parent.parent  # the .venv the docs' commands name


def example_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in EXAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


def doc_commands() -> str:
    """The first sh block of the doc: the commands a reader copies."""
    found = re.search(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert found, "docs/import-format.md has no sh block"
    return found.group(1)


def run_in(folder: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run shell lines in `folder`, which looks like a clone: docs/ and .venv/ linked in."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=folder, capture_output=True, text=True, timeout=180,
        env={k: v for k, v in os.environ.items() if k != "CHIPP_DATABASE_URL"},
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    (tmp_path / ".venv").symlink_to(VENV)
    assert (tmp_path / ".venv" / "bin" / "chipp-builder").exists(), "the console script is not installed"
    return tmp_path


@pytest.fixture
async def api_over(clone: Path) -> AsyncIterator[Any]:
    """After the doc's commands: an API client with a fresh key for the imported app, and the commands' output."""
    done = run_in(clone, doc_commands() + 'echo "APP=$APP"\n')
    assert done.returncode == 0, done.stderr
    app_id = re.search(r"^APP=(\S+)$", done.stdout, re.MULTILINE).group(1)  # type: ignore[union-attr]
    key = run_in(clone, f'.venv/bin/chipp-builder keys create --app {app_id} --name reader '
                        "--database-url sqlite:///example.db")
    assert key.returncode == 0, key.stderr
    app = create_app(Settings(database_url=f"sqlite:///{clone / 'example.db'}", rate_limit=100_000))
    headers = {"Authorization": f"Bearer {key.stdout.strip()}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://test/api/v1/apps/{app_id}",
                                 headers=headers) as client:
        yield client, done, clone, app_id
    await app.state.engine.dispose()


def test_the_example_holds_every_record_type() -> None:
    kinds = {record["type"] for record in example_records()}
    assert kinds == {"consumer", "session", "message", "message_tag", "tag", "feedback", "knowledge_source",
                     "memory"}


async def test_the_docs_commands_import_the_example_and_the_api_serves_it(api_over: Any) -> None:
    client, done, clone, app_id = api_over
    records = example_records()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_type.setdefault(record["type"], []).append(record)
    counts = {kind: len(rows) for kind, rows in by_type.items()}
    # The output the doc shows, line for line (but the app id).
    expected = [f"Read {len(records)} lines from docs/examples/import-example.jsonl into app {app_id}."] + [
        f"  {kind}: {counts[kind]} inserted, 0 updated, 0 unchanged"
        for kind in ("consumer", "session", "tag", "knowledge_source", "message", "message_tag", "feedback",
                     "memory")
    ]
    assert done.stdout.splitlines()[:-1] == expected
    for line in expected[1:]:
        assert line in DOC.read_text(encoding="utf-8")

    async def data(path: str) -> Any:
        response = await client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    consumer = by_type["consumer"][0]
    got = (await data(f"/consumers/{consumer['id']}"))["data"]
    assert (got["name"], got["email"], got["credits"], got["email_verified"]) == (
        consumer["name"], consumer["email"], consumer["credits"], True)
    assert (await data("/consumers"))["pagination"]["total"] == counts["consumer"]

    session = by_type["session"][0]
    got = (await data(f"/sessions/{session['id']}"))["data"]
    assert (got["title"], got["source"], got["started_at"]) == (
        session["title"], "WIDGET", "2025-06-03T14:30:00.125000Z")
    assert got["message_count"] == sum(1 for m in by_type["message"] if m["session_id"] == session["id"])
    assert got["consumer"]["email"] == consumer["email"]
    assert len((await data("/sessions"))["data"]) == counts["session"]

    messages = (await data(f"/sessions/{session['id']}/messages?include=tool_details"))["data"]
    assert [m["id"] for m in messages] == [m["id"] for m in by_type["message"] if m["session_id"] == session["id"]]
    answer = next(m for m in messages if m["role"] == "assistant")
    source = next(m for m in by_type["message"] if m["id"] == answer["id"])
    assert answer["content"] == source["content"] and "\n" in answer["content"]
    assert (answer["model"], answer["token_count"], answer["tool_calls"]) == (
        source["model"], source["token_count"], source["tool_calls"])
    tagged = next(m for m in messages if m["id"] == by_type["message_tag"][0]["message_id"])
    assert [t["name"] for t in tagged["tags"]] == [by_type["tag"][0]["name"]]
    assert answer["feedback"]["rating"] == by_type["feedback"][0]["rating"]

    tags = (await data("/tags"))["data"]
    assert [(t["name"], t["color"], t["usage_count"]) for t in tags] == [("billing", "#f59e0b", 1)]

    feedback = (await data("/feedback"))["data"]
    assert [(f["id"], f["message_id"], f["rating"]) for f in feedback] == [
        (r["id"], r["message_id"], r["rating"]) for r in by_type["feedback"]]

    sources = (await data("/knowledge-sources"))["data"]
    assert [(s["id"], s["name"], s["type"], s["chunk_count"]) for s in sources] == [
        (r["id"], r["name"], r["source_type"], r["chunk_count"]) for r in by_type["knowledge_source"]]

    memories = (await data("/memories"))["data"]
    assert [(m["id"], m["content"], m["memory_type"], m["confidence"]) for m in memories] == [
        (r["id"], r["content"], r["memory_type"], r["confidence"]) for r in by_type["memory"]]

    # Running the same commands' import again: everything unchanged, as the doc says.
    again = run_in(clone, f".venv/bin/chipp-builder import docs/examples/import-example.jsonl --app {app_id} "
                          "--database-url sqlite:///example.db")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == (
        "Nothing was written: the app already held every record as the file has it.")
    assert f"  session: 0 inserted, 0 updated, {counts['session']} unchanged" in again.stdout.splitlines()
