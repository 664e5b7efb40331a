"""Counters and daily rollups (db/counters.py, db/daily_rollups.py) stay exact through every writer, and
analytics read from rollups answers exactly what the raw-row reference path answers, on random data and random
ranges."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select

from chipp_builder.server.db.counters import ACTIVE_CONSUMERS, COUNTED, read_counter, recount
from chipp_builder.server.db.daily_rollups import recompute_activity
from chipp_builder.server.db.tables import consumer, daily_consumer, daily_message, daily_session, session
from chipp_builder.server.ingest.demo import generate_demo
from chipp_builder.server.resources.analytics import rollups
from chipp_builder.server.resources.analytics.buckets import bucket_range, sum_into_buckets
from tests.factories import (
    consumer_record,
    feedback_record,
    get,
    knowledge_source_record,
    load,
    make_app,
    memory_record,
    message_record,
    new_id,
    session_record,
)
from tests.oracles import analytics as raw

BASE = datetime(2025, 6, 1, tzinfo=UTC)
MODELS = ["gpt-4o", "claude-3", "", None]
WRITE = {"sessions": "write", "feedback": "write", "consumers": "write"}


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _random_records(rng: random.Random, sessions: int) -> list[dict[str, Any]]:
    """Consumers, sessions over 20 days at random instants (midnights included), messages, feedback, more."""
    consumers = [new_id() for _ in range(8)]
    records: list[dict[str, Any]] = [
        consumer_record(cid, f"c{n}", "2025-05-01T00:00:00Z") for n, cid in enumerate(consumers)
    ]
    for _ in range(sessions):
        sid = new_id()
        # A quarter of the sessions start exactly at a midnight, where exclusive bounds bite.
        started = BASE + timedelta(days=rng.randrange(20))
        if rng.random() > 0.25:
            started += timedelta(seconds=rng.randrange(86400), microseconds=rng.randrange(1_000_000))
        owner = rng.choice([*consumers, None])
        records.append(session_record(sid, _stamp(started), consumer_id=owner))
        at = started
        for _ in range(rng.randrange(0, 5)):
            at += timedelta(seconds=rng.choice([0, 1, 3600, 30000]))
            mid = new_id()
            tokens = rng.choice([None, rng.randrange(500)])
            records.append(message_record(mid, sid, _stamp(at), model=rng.choice(MODELS), token_count=tokens))
            if rng.random() < 0.3:
                records.append(feedback_record(new_id(), mid, sid, rng.choice([-1, 0, 1]), _stamp(at)))
    for n in range(rng.randrange(1, 4)):
        records.append(knowledge_source_record(new_id(), f"ks{n}", "url", "completed", "2025-05-02T00:00:00Z"))
        records.append(memory_record(new_id(), f"m{n}", "2025-05-02T00:00:00Z"))
    return records


def _random_bound(rng: random.Random) -> datetime | None:
    choice = rng.random()
    if choice < 0.2:
        return None
    at = BASE + timedelta(days=rng.randrange(-2, 23))
    if choice < 0.5:
        return at  # a midnight
    return at + timedelta(seconds=rng.randrange(86400), microseconds=rng.randrange(1_000_000))


async def _assert_rollups_match_raw(server: Any, app_id: UUID, rng: random.Random, ranges: int = 12) -> None:
    async with server.state.engine.connect() as db:
        for n in range(ranges):
            after, before = (None, None) if n == 0 else (_random_bound(rng), _random_bound(rng))
            if after is not None and before is not None and before < after:
                after, before = before, after
            want = await raw.usage_by_day(db, app_id, after, before)
            reader = server.state.reader  # the routes' road
            got = await rollups.usage_by_day(reader, app_id, after, before)
            assert got == want, (after, before)
            want_tokens = _by_day_model(await raw.tokens_by_day_and_model(db, app_id, after, before))
            got_tokens = _by_day_model(await rollups.tokens_by_day_and_model(reader, app_id, after, before))
            assert got_tokens == want_tokens, (after, before)
            for group_by in ("day", "week", "month"):
                starts = bucket_range(after, before, got[0].keys(), group_by)
                fields = ("session_count", "message_count")
                assert sum_into_buckets(got[0], starts, group_by, fields) == sum_into_buckets(
                    want[0], starts, group_by, fields
                )


def _by_day_model(rows: list[tuple[date, str | None, int, int]]) -> dict[tuple[date, str | None], tuple[int, int]]:
    totals: dict[tuple[date, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for day, model, tokens, count in rows:
        totals[(day, model)][0] += tokens
        totals[(day, model)][1] += count
    return {key: (t, c) for key, (t, c) in totals.items() if c}


async def _snapshot(db: Any, app_id: UUID) -> dict[str, set[tuple[Any, ...]]]:
    tables = (daily_session, daily_consumer, daily_message)
    return {t.name: set((await db.execute(select(t).where(t.c.app_id == app_id))).all()) for t in tables}


async def _named_consumers(db: Any, app_id: UUID) -> int:
    """Consumers named by at least one of the app's sessions, counted from the raw rows."""
    named = select(session.c.consumer_id).where(session.c.app_id == app_id, session.c.consumer_id.is_not(None))
    return int((await db.execute(select(func.count()).select_from(named.distinct().subquery()))).scalar_one())


async def _flagged_consumers(db: Any, app_id: UUID) -> int:
    query = select(func.count()).where(consumer.c.app_id == app_id, consumer.c.has_session)
    return int((await db.execute(query)).scalar_one())


async def _assert_counters_exact(server: Any, app_id: UUID) -> None:
    """Every counter, read as the routes read it (through the reader), equals count(*) over the raw rows."""
    reader = server.state.reader
    async with server.state.engine.connect() as db:
        for resource, table in COUNTED.items():
            counted = (await db.execute(select(func.count()).where(table.c.app_id == app_id))).scalar_one()
            assert await read_counter(reader, app_id, resource) == counted, resource
        assert await read_counter(reader, app_id, ACTIVE_CONSUMERS) == await _named_consumers(db, app_id)
        assert await _flagged_consumers(db, app_id) == await _named_consumers(db, app_id)


async def _assert_summaries_exact(server: Any, app_id: UUID) -> None:
    """Counters equal count(*); the incrementally kept rollups equal a rebuild from the raw rows."""
    await _assert_counters_exact(server, app_id)
    async with server.state.engine.begin() as db:
        await recount(db, app_id)  # the repair path agrees (committed, so that the reader sees it)
    await _assert_counters_exact(server, app_id)
    async with server.state.engine.begin() as db:
        kept = await _snapshot(db, app_id)
        await recompute_activity(db, app_id)
        assert await _snapshot(db, app_id) == kept
        await db.rollback()


async def test_rollups_answer_what_the_raw_rows_answer_through_every_writer(server, api) -> None:
    rng = random.Random(20250601)
    records = _random_records(rng, 60)
    app = await make_app(server, records, scopes=WRITE)
    await _assert_summaries_exact(server, app.id)
    await _assert_rollups_match_raw(server, app.id, rng)

    # Re-import with replacements: sessions move days and change consumer, messages move days and models.
    sessions = [r for r in records if r["type"] == "session"]
    messages = [r for r in records if r["type"] == "message"]
    changed = []
    for record in rng.sample(sessions, 10):
        moved = BASE + timedelta(days=rng.randrange(25), seconds=rng.randrange(86400))
        changed.append({**record, "started_at": _stamp(moved), "consumer_id": None})
    for record in rng.sample(messages, 15):
        moved = BASE + timedelta(days=rng.randrange(25), seconds=rng.randrange(86400))
        changed.append({**record, "created_at": _stamp(moved), "model": rng.choice(MODELS), "token_count": 7})
    changed.append(consumer_record(new_id(), "late", "2025-07-01T00:00:00Z"))
    await load(server, app.id, changed)
    await load(server, app.id, changed)  # the same file twice changes nothing
    await _assert_summaries_exact(server, app.id)
    await _assert_rollups_match_raw(server, app.id, rng)

    # The HTTP writers: new sessions and appends, new consumers, ratings and replaced ratings.
    for n in range(4):
        body = {
            "consumer": {"email": f"new{n % 2}@example.com"},
            "messages": [
                {"role": "user", "content": "hi", "model": rng.choice(MODELS[:2]), "token_count": 5},
                {"role": "assistant", "content": "hello", "created_at": "2025-06-03T10:00:00Z"},
            ],
        }
        response = await api.post(app.base + "/conversations/log", json=body, headers=app.headers)
        assert response.status_code == 201, response.text
        session_id = response.json()["data"]["session_id"]
        append = {"session_id": session_id, "messages": [{"role": "user", "content": "more"}]}
        response = await api.post(app.base + "/conversations/log", json=append, headers=app.headers)
        assert response.status_code == 200, response.text
    response = await api.post(app.base + "/consumers/auth", json={"external_id": "ext-1"}, headers=app.headers)
    assert response.status_code in (200, 201), response.text
    rated = messages[0]["id"]
    for rating in (1, -1):
        response = await api.post(
            app.base + "/feedback", json={"message_id": rated, "rating": rating}, headers=app.headers
        )
        assert response.status_code in (200, 201), response.text
    await _assert_summaries_exact(server, app.id)
    await _assert_rollups_match_raw(server, app.id, rng)

    # The deletes: sessions (with their messages, tags and ratings), and people erased with everything theirs.
    for record in rng.sample(sessions, 6):
        response = await api.delete(app.base + f"/sessions/{record['id']}", headers=app.headers)
        assert response.status_code in (200, 404), response.text  # an erasure below may have taken it already
    consumers = [r["id"] for r in records if r["type"] == "consumer"]
    for consumer_id in rng.sample(consumers, 3):
        response = await api.delete(app.base + f"/consumers/{consumer_id}", headers=app.headers)
        assert response.status_code == 200, response.text
    await _assert_summaries_exact(server, app.id)
    await _assert_rollups_match_raw(server, app.id, rng)

    # The unfiltered lists report the counters' totals, which equal the filtered path's count.
    for path in ("/consumers", "/feedback", "/memories", "/knowledge-sources"):
        body = (await get(api, app, path, {"limit": 1})).json()
        assert body["pagination"]["total"] >= 1
        resource = path.strip("/").replace("-", "_")
        async with server.state.engine.connect() as db:
            counted = (await db.execute(select(func.count()).where(COUNTED[resource].c.app_id == app.id))).scalar_one()
        assert body["pagination"]["total"] == counted


async def test_demo_data_keeps_counters_and_rollups_exact(server) -> None:
    app_id = await generate_demo(server.state.engine, sessions=40, seed=11)
    await _assert_summaries_exact(server, app_id)
    await _assert_rollups_match_raw(server, app_id, random.Random(7), ranges=4)


def test_split_range_cuts_partial_days_off_whole_ones() -> None:
    split = rollups.split_range(datetime(2025, 6, 1, 12, tzinfo=UTC), datetime(2025, 6, 4, 6, tzinfo=UTC))
    assert (split.first_day, split.end_day, split.whole) == (date(2025, 6, 2), date(2025, 6, 4), True)
    assert split.raw == (
        (datetime(2025, 6, 1, 12, tzinfo=UTC), datetime(2025, 6, 2, tzinfo=UTC)),
        (datetime(2025, 6, 4, tzinfo=UTC) - timedelta(microseconds=1), datetime(2025, 6, 4, 6, tzinfo=UTC)),
    )
    # Two adjacent days hold no whole day: the raw rows answer alone.
    assert rollups.split_range(datetime(2025, 6, 1, 12, tzinfo=UTC), datetime(2025, 6, 2, 6, tzinfo=UTC)).whole is False
    assert rollups.split_range(datetime.max.replace(tzinfo=UTC), None).whole is False
    first_instant = datetime(1, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert rollups.split_range(None, first_instant).raw == ((None, first_instant),)
