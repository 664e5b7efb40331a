"""The planned request handler (server/routing.py): every app GET route uses it, and it answers every request,
good or bad, byte for byte as FastAPI's general handler does."""

from __future__ import annotations

from typing import Any

import pytest

from chipp_builder.server import routing
from chipp_builder.server.middleware import _leaf_routes
from tests.factories import (
    consumer_record,
    feedback_record,
    knowledge_source_record,
    make_app,
    memory_record,
    message_record,
    new_id,
    session_record,
    tag_record,
)


def _app_routes(server: Any) -> list[Any]:
    return [r for r in _leaf_routes(server.routes) if getattr(r, "path", "").startswith("/api/v1/apps/")]


async def test_every_get_route_of_an_app_is_planned_and_no_write_route_is(server) -> None:
    routes = _app_routes(server)
    gets = [r for r in routes if "GET" in r.methods]
    assert len(gets) == 13
    assert all(isinstance(r, routing.PlannedRoute) for r in gets)
    assert all(r.planned for r in gets)  # a GET route that cannot be planned fails when the app is built
    # Bodies (and the write connection's generator dependency) are outside the plan's shape.
    posts = [r for r in routes if "POST" in r.methods]
    assert posts and not any(r.planned for r in posts)


def _requests(base: str, sid: str, cid: str) -> list[tuple[str, dict[str, Any]]]:
    """Good and bad requests over every planned route: each parameter empty, malformed, out of range, repeated."""
    lists = ["/sessions", "/consumers", "/feedback", "/tags", "/knowledge-sources", "/memories",
             f"/sessions/{sid}/messages", "/analytics/usage", "/analytics/token-usage"]
    cases: list[tuple[str, dict[str, Any]]] = []
    for path in lists:
        cases += [
            (path, {}),
            (path, {"limit": "2"}),
            (path, {"limit": "0"}),
            (path, {"limit": "abc"}),
            (path, {"limit": "101"}),
            (path, {"limit": ""}),
            (path, {"offset": "-1"}),
            (path, {"offset": "1"}),
            (path, {"cursor": "garbage"}),
            (path, {"unknown": "x"}),
        ]
    cases += [
        ("/sessions", {"source": "API"}),
        ("/sessions", {"source": "FAX"}),
        ("/sessions", {"consumer_id": cid}),
        ("/sessions", {"consumer_id": "not-a-uuid"}),
        ("/sessions", {"started_after": "2025-06-01T00:00:00+02:00", "started_before": "2026-01-01"}),
        ("/sessions", {"started_after": "yesterday"}),
        ("/sessions", {"search": "%_\\"}),
        ("/sessions", {"search": "a\x01b"}),
        ("/sessions", {"search": "x" * 201}),
        ("/sessions", [("limit", "1"), ("limit", "2")]),  # type: ignore[list-item]
        ("/sessions", {"cursor": "x" * 600}),
        (f"/sessions/{sid}", {}),
        (f"/sessions/{new_id()}", {}),
        ("/sessions/not-a-uuid", {}),
        (f"/sessions/{sid}/messages", {"include": "tool_details", "role": "user"}),
        (f"/sessions/{sid}/messages", {"include": "everything"}),
        (f"/sessions/{sid}/messages", {"role": "robot"}),
        (f"/sessions/{sid}/messages", {"created_before": "2025-13-01"}),
        (f"/consumers/{cid}", {}),
        ("/consumers", {"has_email": "maybe"}),
        ("/consumers", {"has_email": "true", "search": "ada"}),
        ("/feedback", {"rating": "5"}),
        ("/feedback", {"rating": "-1", "session_id": sid}),
        ("/feedback", {"session_id": "nope"}),
        ("/knowledge-sources", {"status": "done"}),
        ("/knowledge-sources", {"type": "url"}),
        ("/memories", {"memory_type": "dream"}),
        ("/memories", {"memory_layer": "fact", "consumer_id": cid}),
        ("/analytics/usage", {"group_by": "year"}),
        ("/analytics/usage", {"group_by": "week", "started_after": "2025-06-01"}),
        ("/analytics/token-usage", {"group_by": "month"}),
    ]
    return [(base + path, params) for path, params in cases]


_PLAN_RUNS: list[bool] = [True]  # False while the general handler answers (dependency overrides set)


async def _answers(api: Any, app: Any, requests: list[tuple[str, Any]], headers: dict[str, str]) -> list[Any]:
    answers = []
    for path, params in requests:
        response = await api.get(path, params=params, headers=headers)
        kept = {k: v for k, v in response.headers.items() if not k.startswith("x-ratelimit")}
        # The conditional headers are the plan's own (ConditionalRoute; FastAPI's handler has none): every 200
        # of the plan carries them, and the rest of the answer must be FastAPI's exactly.
        conditional = {k: kept.pop(k, None) for k in ("etag", "cache-control", "vary")}
        if response.status_code == 200 and "/events" not in path:
            assert conditional["etag"] or not _PLAN_RUNS[0], (path, params)
        answers.append((path, params, response.status_code, kept, response.content))
    return answers


async def test_the_plan_answers_exactly_as_fastapi_does(server, api, monkeypatch: pytest.MonkeyPatch) -> None:
    sid, cid, tid = new_id(), new_id(), new_id()
    app = await make_app(server, [
        consumer_record(cid, "ada@example.com", "2025-06-01T09:00:00Z", email="ada@example.com", name="Ada"),
        session_record(sid, "2025-06-01T10:00:00Z", consumer_id=cid, title="Refund %_ please", source="API"),
        message_record("m1", sid, "2025-06-01T10:00:01Z", content="hello"),
        message_record("m2", sid, "2025-06-01T10:00:02Z", role="assistant", content="hi"),
        tag_record(tid, "billing", "#ff0000", "2025-06-01T09:00:00Z"),
        feedback_record("f1", "m2", sid, -1, "2025-06-01T10:01:00Z", consumer_id=cid),
        knowledge_source_record("k1", "Docs", "url", "completed", "2025-06-01T09:00:00Z"),
        memory_record("mem1", "likes tea", "2025-06-01T10:02:00Z", consumer_id=cid, session_id=sid),
    ])
    other = await make_app(server)
    requests = _requests(app.base, sid, cid)
    requests += [(other.base + "/sessions", {}), (app.base + "/sessions", {"limit": "bad"})]
    planned = await _answers(api, app, requests, app.headers)
    # Requests refused before the parameters: no key, a bad key, another app's key.
    refused = [(app.base + "/sessions", {"limit": "bad"})]
    planned += await _answers(api, app, refused, {})
    planned += await _answers(api, app, refused, {"Authorization": "Bearer chipp_nope"})
    planned += await _answers(api, app, refused, other.headers)

    # Any dependency override sends every request through FastAPI's general handler; prove the plan is unused.
    async def never(self: Any, request: Any) -> Any:
        raise AssertionError("the plan ran while dependency overrides were set")

    monkeypatch.setattr(routing._Plan, "run", never)
    server.dependency_overrides[_unused] = _unused
    _PLAN_RUNS[0] = False
    try:
        general = await _answers(api, app, requests, app.headers)
        general += await _answers(api, app, refused, {})
        general += await _answers(api, app, refused, {"Authorization": "Bearer chipp_nope"})
        general += await _answers(api, app, refused, other.headers)
    finally:
        server.dependency_overrides.clear()
        _PLAN_RUNS[0] = True
    assert len(planned) == len(general) > 100
    for mine, theirs in zip(planned, general, strict=True):
        assert mine == theirs
    statuses = {answer[2] for answer in planned}
    assert {200, 400, 401, 403, 404} <= statuses, statuses


def _unused() -> None:
    """A dependency no route uses: overriding it only switches every route to FastAPI's handler."""
