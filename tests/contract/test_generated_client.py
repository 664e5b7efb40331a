"""A client generated from the app's OpenAPI document by openapi-python-client (a generator nobody here
wrote) lists sessions, reads one, its messages with tool details and the thumbs-down, against the in-process
server: the document's names, types and enums are ones a generated client can use as they are."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from tests.factories import consumer_record, feedback_record, make_app, message_record, session_record, uid

PACKAGE = "chipp_generated_client"
GENERATOR = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent)) or shutil.which(
    "openapi-python-client"
)
ALICE, S1, S2 = uid(2, 1), uid(1, 1), uid(1, 2)
RECORDS = [
    consumer_record(ALICE, "alice@example.com", "2025-05-01T00:00:00Z", email="alice@example.com", name="Alice"),
    session_record(S1, "2025-06-01T10:00:00Z", consumer_id=ALICE, title="Refund"),
    session_record(S2, "2025-06-02T10:00:00.250Z", title="Shipping"),
    message_record("m1", S1, "2025-06-01T10:00:01Z", content="Where is my refund?"),
    message_record(
        "m2", S1, "2025-06-01T10:00:02Z", role="assistant", content="Sent today.",
        tool_calls=[{"tool_name": "lookup_order", "status": "completed"}],
        tool_results=[{"tool_name": "lookup_order", "result": {"status": "refunded"}}],
    ),
    feedback_record("f1", "m2", S1, -1, "2025-06-01T10:05:00Z"),
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package generated from the app's document, importable for this module's tests."""
    if GENERATOR is None:
        pytest.fail("openapi-python-client is not installed: it is in the dev extra (pip install -e '.[dev]')")
    folder = tmp_path_factory.mktemp("generated")
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    (folder / "openapi.json").write_text(json.dumps(app.openapi()))
    # No post hooks: formatting the generated code (ruff) only costs time here.
    config = {"package_name_override": PACKAGE, "project_name_override": "chipp-generated", "post_hooks": []}
    (folder / "config.json").write_text(json.dumps(config))
    run = subprocess.run(
        [GENERATOR, "generate", "--path", str(folder / "openapi.json"), "--config", str(folder / "config.json"),
         "--output-path", str(folder / PACKAGE), "--meta", "none"],
        capture_output=True, text=True, timeout=120,
    )
    # The generator warns (and still writes) when it cannot express part of a document: that is a failure too.
    assert run.returncode == 0 and "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _client(generated: ModuleType, server: Any, key: str) -> Any:
    client = generated.AuthenticatedClient(base_url="http://testserver", token=key)
    client.set_async_httpx_client(
        httpx.AsyncClient(
            base_url="http://testserver", transport=httpx.ASGITransport(app=server),
            headers={"Authorization": f"Bearer {key}"},
        )
    )
    return client


async def test_a_generated_client_lists_sessions_and_reads_one(generated: ModuleType, server: Any) -> None:
    app = await make_app(server, RECORDS)
    list_sessions = importlib.import_module(f"{PACKAGE}.api.sessions.list_sessions")
    get_session = importlib.import_module(f"{PACKAGE}.api.sessions.get_session")
    models = importlib.import_module(f"{PACKAGE}.models")
    client = _client(generated, server, app.key)

    page = await list_sessions.asyncio(app_id=str(app.id), client=client, limit=1)
    assert isinstance(page, models.SessionList)
    assert [str(s.id) for s in page.data] == [S2] and page.pagination.has_more
    second = await list_sessions.asyncio(app_id=str(app.id), client=client, limit=1, cursor=page.pagination.next_cursor)
    assert [str(s.id) for s in second.data] == [S1]

    one = await get_session.asyncio(app_id=str(app.id), session_id=S1, client=client)
    assert isinstance(one, models.SessionEnvelope)
    assert one.data.title == "Refund" and one.data.consumer.name == "Alice"
    assert one.data.started_at == datetime.fromisoformat("2025-06-01T10:00:00+00:00")  # date-time, parsed

    missing = await get_session.asyncio_detailed(app_id=str(app.id), session_id=uid(1, 9), client=client)
    assert missing.status_code == 404 and missing.parsed.error.code == "not_found"


async def test_a_generated_client_reads_tool_results_and_filters_by_an_integer_rating(
    generated: ModuleType, server: Any
) -> None:
    app = await make_app(server, RECORDS)
    list_messages = importlib.import_module(f"{PACKAGE}.api.sessions.list_messages")
    list_feedback = importlib.import_module(f"{PACKAGE}.api.feedback.list_feedback")
    client = _client(generated, server, app.key)

    messages = await list_messages.asyncio(app_id=str(app.id), session_id=S1, client=client, include="tool_details")
    tooled = messages.data[1]
    assert [(r.tool_name, r.result) for r in tooled.tool_results] == [("lookup_order", '{"status":"refunded"}')]
    assert tooled.feedback.rating == -1 and str(tooled.feedback.consumer_id) == ALICE

    # The rating parameter is an integer enum of the values the SPEC lists, so `-1` is one of its members.
    ratings = importlib.import_module(f"{PACKAGE}.models.list_feedback_rating").ListFeedbackRating
    assert sorted(member.value for member in ratings) == [-1, 0, 1]
    thumbs_down = await list_feedback.asyncio(app_id=str(app.id), client=client, rating=ratings(-1))
    assert [(f.id, f.rating, str(f.consumer_id)) for f in thumbs_down.data] == [("f1", -1, ALICE)]
