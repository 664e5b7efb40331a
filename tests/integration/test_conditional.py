"""Conditional GETs (SPEC section 12): the weak ETag of every 200 of the app API, the 304 that answers a
matching If-None-Match without the page's query and without counting against the key's limit, and the
ETags that every write changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from chipp_builder.server.app import create_app
from chipp_builder.server.config import Settings
from tests.factories import (
    TestApp,
    consumer_record,
    feedback_record,
    get,
    load,
    make_app,
    message_record,
    session_record,
    uid,
)

S1, S2, ANN, BOB = uid(1, 1), uid(1, 2), uid(2, 1), uid(2, 2)
RECORDS = [
    consumer_record(ANN, "ann@example.com", "2025-05-01T00:00:00Z", email="ann@example.com"),
    consumer_record(BOB, "bob@example.com", "2025-05-01T00:00:00Z", email="bob@example.com"),
    session_record(S1, "2025-06-01T10:00:00Z", consumer_id=ANN),
    session_record(S2, "2025-06-02T10:00:00Z", consumer_id=BOB),
    message_record("m1", S1, "2025-06-01T10:00:01Z", role="user", content="Where is my refund?"),
    message_record("m2", S1, "2025-06-01T10:00:02Z", role="assistant", content="It was sent today."),
    message_record("b1", S2, "2025-06-02T10:00:01Z", role="user", content="Bob's question"),
    feedback_record("f1", "m2", S1, 1, "2025-06-01T11:00:00Z", consumer_id=ANN),
]
WRITE = {"sessions": "write", "consumers": "write", "feedback": "write"}
CACHING = ("etag", "cache-control", "vary", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
PAGES = [
    "/sessions", f"/sessions/{S1}", f"/sessions/{S1}/messages", "/consumers", f"/consumers/{ANN}", "/feedback",
    "/tags", "/memories", "/knowledge-sources", "/analytics/usage", "/analytics/token-usage",
]


def _with(app: TestApp, **headers: str) -> dict[str, str]:
    return {**app.headers, **headers}


async def test_a_200_then_its_etag_gives_a_304_with_no_body_and_the_same_headers(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    for path in PAGES:
        first = await get(api, app, path)
        assert first.status_code == 200, (path, first.text)
        etag = first.headers["etag"]
        assert etag.startswith('W/"') and etag.endswith('"')
        assert first.headers["cache-control"] == "private, no-cache"
        assert first.headers["vary"] == "Authorization, Accept-Encoding"
        again = await api.get(app.base + path, headers=_with(app, **{"If-None-Match": etag}))
        assert again.status_code == 304, (path, again.text)
        assert again.content == b""
        assert "content-length" not in again.headers or again.headers["content-length"] == "0"
        assert {name: again.headers[name] for name in CACHING} == {name: first.headers[name] for name in CACHING}


@pytest.mark.parametrize(
    "spell",
    [
        lambda tag: tag,
        lambda tag: tag[2:],  # W/ removed
        lambda tag: f'"nope", {tag}',
        lambda tag: f'W/"nope",{tag[2:]} , "other"',
        lambda tag: "*",
    ],
    ids=["same", "strong", "list", "list-without-W", "star"],
)
async def test_weak_comparison_lists_and_star_match(server: Any, api: Any, spell: Callable[[str], str]) -> None:
    app = await make_app(server, RECORDS)
    etag = (await get(api, app, "/sessions")).headers["etag"]
    response = await api.get(app.base + "/sessions", headers=_with(app, **{"If-None-Match": spell(etag)}))
    assert response.status_code == 304


async def test_star_is_no_304_for_a_page_that_does_not_exist(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    star = _with(app, **{"If-None-Match": "*"})
    assert (await api.get(app.base + f"/sessions/{S2}", headers=star)).status_code == 304
    assert (await api.delete(app.base + f"/sessions/{S2}", headers=app.headers)).status_code == 200
    gone = await api.get(app.base + f"/sessions/{S2}", headers=star)
    assert gone.status_code == 404 and "etag" not in gone.headers
    assert (await api.get(app.base + f"/sessions/{uid(9, 9)}", headers=star)).status_code == 404


async def test_an_etag_that_does_not_match_gets_the_page(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS)
    etag = (await get(api, app, "/sessions")).headers["etag"]
    for other in ['W/"0"', '"x"', etag[:-2] + '"', ""]:
        response = await api.get(app.base + "/sessions", headers=_with(app, **{"If-None-Match": other}))
        assert response.status_code == 200 and response.headers["etag"] == etag


async def test_defaults_resolved_give_the_same_etag_and_other_parameters_another(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS)
    plain = (await get(api, app, "/sessions")).headers["etag"]
    assert (await get(api, app, "/sessions", {"limit": 25})).headers["etag"] == plain
    assert (await get(api, app, "/sessions", {"limit": 1})).headers["etag"] != plain
    one, two = (await get(api, app, f"/sessions/{S1}")), (await get(api, app, f"/sessions/{S2}"))
    assert one.headers["etag"] != two.headers["etag"]


async def test_a_key_with_other_scopes_gets_another_etag(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    async with server.state.engine.begin() as db:
        from chipp_builder.server.resources.apps import queries as apps

        narrow = await apps.create_key(db, app.id, "narrow", {"sessions": "read"}, None)
        same = await apps.create_key(db, app.id, "same", WRITE, None)
    mine = (await get(api, app, "/sessions")).headers["etag"]
    theirs = await api.get(app.base + "/sessions", headers={"Authorization": f"Bearer {narrow['rawKey']}"})
    assert theirs.status_code == 200 and theirs.headers["etag"] != mine
    refused = await api.get(
        app.base + "/sessions", headers={"Authorization": f"Bearer {narrow['rawKey']}", "If-None-Match": mine}
    )
    assert refused.status_code == 200
    alike = await api.get(app.base + "/sessions", headers={"Authorization": f"Bearer {same['rawKey']}"})
    assert alike.headers["etag"] == mine  # the scopes, not the key, shape the page


async def _log(api: Any, app: TestApp) -> None:
    body = {"messages": [{"role": "user", "content": "new"}], "session_id": S1}
    response = await api.post(app.base + "/conversations/log", json=body, headers=app.headers)
    assert response.status_code == 200, response.text  # appended to a session


async def _rate(api: Any, app: TestApp) -> None:
    response = await api.post(app.base + "/feedback", json={"message_id": "b1", "rating": -1}, headers=app.headers)
    assert response.status_code == 201, response.text


async def _delete(api: Any, app: TestApp) -> None:
    assert (await api.delete(app.base + f"/sessions/{S2}", headers=app.headers)).status_code == 200


async def _erase(api: Any, app: TestApp) -> None:
    assert (await api.delete(app.base + f"/consumers/{BOB}", headers=app.headers)).status_code == 200


WRITES: dict[str, Callable[[Any, TestApp], Awaitable[None]]] = {
    "log": _log, "feedback": _rate, "delete": _delete, "erase": _erase,
}


@pytest.mark.parametrize("write", [*WRITES, "import"])
async def test_after_any_write_the_same_request_is_a_200_with_a_new_etag(server: Any, api: Any, write: str) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    before = {path: (await get(api, app, path)).headers["etag"] for path in PAGES}
    if write == "import":
        await load(server, app.id, [session_record(uid(1, 9), "2025-06-09T10:00:00Z")])
    else:
        await WRITES[write](api, app)
    for path, etag in before.items():
        response = await api.get(app.base + path, headers=_with(app, **{"If-None-Match": etag}))
        assert response.status_code in (200, 404), (write, path, response.status_code)
        if response.status_code == 200:
            assert response.headers["etag"] != etag and response.content, (write, path)


async def test_a_304_costs_no_quota_and_a_200_costs_one(settings: Settings) -> None:
    app_ = create_app(settings.model_copy(update={"rate_limit": 5}))
    transport = httpx.ASGITransport(app=app_, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            app = await make_app(app_, RECORDS)
            first = await get(api, app, "/sessions")
            remaining = int(first.headers["x-ratelimit-remaining"])
            conditional = _with(app, **{"If-None-Match": first.headers["etag"]})
            for _ in range(3):
                not_modified = await api.get(app.base + "/sessions", headers=conditional)
                assert not_modified.status_code == 304
                assert int(not_modified.headers["x-ratelimit-remaining"]) == remaining
            changed = await api.get(app.base + "/sessions", params={"limit": 2}, headers=conditional)
            assert changed.status_code == 200
            assert int(changed.headers["x-ratelimit-remaining"]) == remaining - 1
            plain = await get(api, app, "/sessions")
            assert int(plain.headers["x-ratelimit-remaining"]) == remaining - 2
    finally:
        await app_.state.limiter.counter.close()
        await app_.state.engine.dispose()


async def test_conditional_requests_have_a_ceiling_of_ten_times_the_limit(settings: Settings) -> None:
    app_ = create_app(settings.model_copy(update={"rate_limit": 2}))
    transport = httpx.ASGITransport(app=app_, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            app = await make_app(app_, RECORDS)
            first = await get(api, app, "/sessions")
            assert (await get(api, app, "/sessions")).status_code == 200  # the limit is used up
            assert (await get(api, app, "/sessions")).status_code == 429
            conditional = _with(app, **{"If-None-Match": first.headers["etag"]})
            statuses = [(await api.get(app.base + "/sessions", headers=conditional)).status_code for _ in range(21)]
            if statuses[0] == 429:
                pytest.skip("the one-minute window turned during the test")
            assert statuses == [304] * 20 + [429]
            # A conditional request that misses is a normal request: refused once the limit is used up.
            missed = await api.get(app.base + "/sessions", headers=_with(app, **{"If-None-Match": 'W/"0"'}))
            assert missed.status_code == 429 and "retry-after" in missed.headers
    finally:
        await app_.state.limiter.counter.close()
        await app_.state.engine.dispose()


async def test_a_refused_conditional_request_counts_as_any_other(settings: Settings) -> None:
    app_ = create_app(settings.model_copy(update={"rate_limit": 5}))
    transport = httpx.ASGITransport(app=app_, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            app = await make_app(app_, RECORDS)
            remaining = int((await get(api, app, "/sessions")).headers["x-ratelimit-remaining"])
            star, unknown = _with(app, **{"If-None-Match": "*"}), _with(app, **{"If-None-Match": 'W/"0"'})
            bad = await api.get(app.base + "/sessions", params={"limit": 0}, headers=star)
            assert bad.status_code == 400
            assert int(bad.headers["x-ratelimit-remaining"]) == remaining - 1
            missing = await api.get(app.base + f"/sessions/{uid(9, 9)}", headers=unknown)
            assert missing.status_code == 404 and "etag" not in missing.headers
            assert int(missing.headers["x-ratelimit-remaining"]) == remaining - 2
    finally:
        await app_.state.limiter.counter.close()
        await app_.state.engine.dispose()


async def test_the_pages_query_is_not_run_for_a_304(server: Any, api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = await make_app(server, RECORDS, scopes=WRITE)
    reader = server.state.reader
    fetched: list[Any] = []
    original = reader.fetch

    async def counting(query: Any, **values: Any) -> Any:
        fetched.append(query)
        return await original(query, **values)

    monkeypatch.setattr(reader, "fetch", counting)
    for path in PAGES:
        fetched.clear()
        first = await get(api, app, path)
        page_reads = len(fetched)
        fetched.clear()
        again = await api.get(app.base + path, headers=_with(app, **{"If-None-Match": first.headers["etag"]}))
        assert again.status_code == 304
        assert len(fetched) == 2, (path, fetched)  # the key by its hash, and the feed head
        assert page_reads > 2, path


async def test_head_answers_conditionally_too(server: Any, api: Any) -> None:
    app = await make_app(server, RECORDS)
    etag = (await get(api, app, "/sessions")).headers["etag"]
    head = await api.head(app.base + "/sessions", headers=_with(app, **{"If-None-Match": etag}))
    assert head.status_code == 304 and head.headers["etag"] == etag


async def test_the_event_feed_has_no_etag(server: Any, api: Any) -> None:
    """A long poll must wait for the next event; a 304 would answer at once (docs/http.md)."""
    app = await make_app(server, RECORDS, scopes=WRITE)
    for path in ("/events", "/events/latest"):
        response = await get(api, app, path)
        assert response.status_code == 200 and "etag" not in response.headers
        again = await api.get(app.base + path, headers=_with(app, **{"If-None-Match": "*"}))
        assert again.status_code == 200
