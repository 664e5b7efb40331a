"""The demo generator: exact session count, repeatable by seed, and derived counts that match the rows."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.migrate import upgrade
from chipp_builder.server.db.tables import (
    app,
    app_counter,
    consumer,
    daily_consumer,
    daily_message,
    daily_session,
    event,
    feedback,
    knowledge_source,
    memory,
    message,
    message_tag,
    session,
    tag,
)
from chipp_builder.server.ingest.demo import generate_demo
from chipp_builder.server.ingest.demo_content import KNOWLEDGE_ERRORS, TOPICS

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine over the test's empty, migrated database."""
    eng = make_engine(database_url)
    yield eng
    await eng.dispose()


async def scalar(engine: AsyncEngine, query: Any) -> Any:
    """One value from a query."""
    async with engine.connect() as db:
        return (await db.execute(query)).scalar_one()


async def count(engine: AsyncEngine, table: Any, app_id: uuid.UUID) -> int:
    """How many rows of the app a table holds."""
    return await scalar(engine, select(func.count()).select_from(table).where(table.c.app_id == app_id))


async def test_demo_makes_exactly_the_requested_number_of_sessions(engine: AsyncEngine) -> None:
    # 1,234 crosses a chunk boundary (1,000 sessions a chunk) without being a multiple of it.
    app_id = await generate_demo(engine, sessions=1234, seed=3, now=NOW)

    assert await count(engine, session, app_id) == 1234
    assert await scalar(engine, select(func.count()).select_from(app)) == 1


async def test_demo_fills_every_kind_of_record(engine: AsyncEngine) -> None:
    # 1,000 sessions give 40 knowledge sources: enough that every status weight shows (12 sources did not).
    app_id = await generate_demo(engine, sessions=1000, seed=5, now=NOW)

    assert 190 <= await count(engine, consumer, app_id) <= 210  # about sessions / 5
    assert await count(engine, tag, app_id) == 8
    for table in (message, message_tag, feedback, memory, knowledge_source):
        assert await count(engine, table, app_id) > 0, table.name
    async with engine.connect() as db:
        sources = set((await db.execute(select(session.c.source).distinct())).scalars())
        kinds = set((await db.execute(select(knowledge_source.c.type).distinct())).scalars())
        statuses = set((await db.execute(select(knowledge_source.c.status).distinct())).scalars())
        anonymous = (
            (await db.execute(select(consumer.c.identifier).where(consumer.c.is_anonymous))).scalars().all()
        )
        roles = set((await db.execute(select(message.c.role).distinct())).scalars())
    assert sources == {"APP", "API", "WHATSAPP", "SLACK", "EMAIL", "VOICE", "WIDGET", "ACP"}
    assert len(kinds) >= 4 and len(statuses) >= 3
    assert anonymous and all(identifier.startswith("anon_") for identifier in anonymous)
    assert roles == {"user", "assistant", "system", "tool"}


async def test_demo_sessions_fall_in_the_last_90_days(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=300, seed=8, now=NOW)

    async with engine.connect() as db:
        first, last = (
            await db.execute(
                select(func.min(session.c.started_at), func.max(session.c.started_at)).where(
                    session.c.app_id == app_id
                )
            )
        ).one()
    first, last = (v if v.tzinfo else v.replace(tzinfo=UTC) for v in (first, last))
    assert NOW - timedelta(days=90) <= first and last < NOW


async def test_demo_message_counts_match_the_message_rows(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=400, seed=11, now=NOW)

    counted = select(func.count()).where(message.c.session_id == session.c.id).scalar_subquery()
    mismatched = (
        select(func.count())
        .select_from(session)
        .where(session.c.app_id == app_id, session.c.message_count != counted)
    )
    assert await scalar(engine, mismatched) == 0
    assert await scalar(engine, select(func.min(session.c.message_count))) >= 2
    assert await scalar(engine, select(func.max(session.c.message_count))) <= 20


async def test_demo_last_activity_is_the_latest_message_or_end(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=200, seed=12, now=NOW)

    newest = (
        select(func.max(message.c.created_at)).where(message.c.session_id == session.c.id).scalar_subquery()
    )
    behind = (
        select(func.count())
        .select_from(session)
        .where(
            session.c.app_id == app_id,
            (session.c.last_activity_at < newest) | (session.c.last_activity_at < session.c.ended_at),
        )
    )
    assert await scalar(engine, behind) == 0


async def test_demo_tag_usage_counts_match_the_message_tag_rows(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=400, seed=13, now=NOW)

    async with engine.connect() as db:
        stored = dict(
            (await db.execute(select(tag.c.id, tag.c.usage_count).where(tag.c.app_id == app_id))).all()
        )
        actual = dict(
            (
                await db.execute(select(message_tag.c.tag_id, func.count()).group_by(message_tag.c.tag_id))
            ).all()
        )
    assert sum(stored.values()) > 0
    assert stored == {tag_id: actual.get(tag_id, 0) for tag_id in stored}


async def test_demo_assistant_messages_carry_models_tokens_and_latency(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=200, seed=14, now=NOW)

    async with engine.connect() as db:
        incomplete = (
            await db.execute(
                select(func.count())
                .select_from(message)
                .where(
                    message.c.app_id == app_id,
                    message.c.role == "assistant",
                    message.c.model.is_(None)
                    | message.c.token_count.is_(None)
                    | message.c.latency_ms.is_(None),
                )
            )
        ).scalar_one()
        models = set((await db.execute(select(message.c.model).distinct())).scalars())
        tool_calls = (
            await db.execute(
                select(message.c.tool_calls, message.c.tool_results)
                .where(message.c.tool_calls.is_not(None))
                .limit(1)
            )
        ).one()
        user_models = (
            await db.execute(text("SELECT count(*) FROM message WHERE role = 'user' AND model IS NOT NULL"))
        ).scalar_one()
    assert incomplete == 0 and user_models == 0
    assert {"gpt-4.1", "claude-sonnet-4", "gemini-2.5-pro"} <= models
    assert set(tool_calls.tool_calls[0]) == {"tool_name", "status"}
    assert set(tool_calls.tool_results[0]) == {"tool_name", "result"}


async def test_demo_feedback_rates_about_a_tenth_of_assistant_messages(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=600, seed=15, now=NOW)

    assistant = await scalar(
        engine, select(func.count()).where(message.c.app_id == app_id, message.c.role == "assistant")
    )
    rated = await count(engine, feedback, app_id)
    ratings = await scalar(engine, select(func.count(feedback.c.rating.distinct())))
    assert 0.06 * assistant <= rated <= 0.14 * assistant
    assert ratings == 3


async def test_demo_ratings_name_their_consumer_and_tool_results_are_text(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=300, seed=17, now=NOW)

    async with engine.connect() as db:
        raters = (await db.execute(select(feedback.c.consumer_id).where(feedback.c.app_id == app_id))).scalars().all()
        results = (
            await db.execute(select(message.c.tool_results).where(message.c.tool_results.is_not(None)))
        ).scalars().all()
    assert len(raters) > 20 and None not in raters
    items = [item for listed in results for item in listed]
    assert len(items) > 10 and all(isinstance(item["result"], str) for item in items)
    assert any(item["result"].startswith("{") for item in items)  # structured ones as their JSON text


async def test_demo_titles_include_non_ascii_and_are_casefolded(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=200, seed=16, now=NOW)

    async with engine.connect() as db:
        rows = (
            await db.execute(
                select(session.c.title, session.c.title_folded).where(session.c.app_id == app_id)
            )
        ).all()
    titles = [r.title for r in rows if r.title is not None]
    assert any(not t.isascii() for t in titles)
    assert all(r.title_folded == (r.title.casefold() if r.title is not None else None) for r in rows)


async def test_the_same_seed_gives_the_same_data(tmp_path: Any) -> None:
    snapshots = []
    for name in ("one", "two"):
        url = f"sqlite:///{tmp_path / name}.db"
        upgrade(url)
        eng = make_engine(url)
        try:
            app_id = await generate_demo(eng, sessions=150, seed=99, now=NOW)
            async with eng.connect() as db:
                sessions = (await db.execute(select(session).order_by(session.c.id))).all()
                messages = (
                    await db.execute(
                        select(message.c.id, message.c.content, message.c.created_at).order_by(message.c.id)
                    )
                ).all()
                consumers = (
                    await db.execute(select(consumer.c.name, consumer.c.email).order_by(consumer.c.id))
                ).all()
            snapshots.append((app_id, sessions, messages, consumers))
        finally:
            await eng.dispose()

    assert snapshots[0] == snapshots[1]
    assert len(snapshots[0][1]) == 150 and any(s.title for s in snapshots[0][1])


# The SHA-256 of every row the demo writes for PINNED_SEED, all tables, all columns (see demo_digest). It
# changes only when the demo's output does: a refactoring must leave it alone; a deliberate change of the
# generated data (its vocabulary, its distributions) updates it, with the new value this test prints.
PINNED_SEED, PINNED_SESSIONS = 2024, 300
PINNED_DIGEST = "39e58fd8038eabce198913d2295b823456857d44b6db3e4658ec2f77ab07b2fb"
DEMO_TABLES = (
    app,
    consumer,
    tag,
    knowledge_source,
    session,
    message,
    message_tag,
    feedback,
    memory,
    app_counter,
    daily_session,
    daily_consumer,
    daily_message,
)


async def demo_digest(engine: AsyncEngine) -> str:
    """SHA-256 over every row of the demo tables: each table's name, then its rows as column=value text in
    primary-key order (the event feed's rows aside)."""
    digest = hashlib.sha256()
    async with engine.connect() as db:
        for table in DEMO_TABLES:
            digest.update(f"\n# {table.name}\n".encode())
            order = list(table.primary_key.columns) or list(table.c)
            for row in (await db.execute(select(table).order_by(*order))).mappings():
                if table is app_counter and row["resource"].startswith("feed_"):
                    continue  # the feed's position, not demo data (its events carry the time they were written)
                digest.update(repr(sorted((k, repr(v)) for k, v in row.items())).encode() + b"\n")
    return digest.hexdigest()


async def test_the_demo_for_a_fixed_seed_is_pinned(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'pinned'}.db"
    upgrade(url)
    eng = make_engine(url)
    try:
        await generate_demo(eng, sessions=PINNED_SESSIONS, seed=PINNED_SEED, now=NOW)
        found = await demo_digest(eng)
    finally:
        await eng.dispose()

    assert found == PINNED_DIGEST, f"the demo's output changed; if on purpose, set PINNED_DIGEST = {found!r}"


async def test_the_demo_records_one_created_event_per_object_and_tag_usage_updates(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=20, seed=3, now=NOW)
    async with engine.connect() as db:
        events = (await db.execute(select(event.c.type, event.c.object_id).where(event.c.app_id == app_id)
                                   .order_by(event.c.position))).all()
        counts = {t.name: (await db.execute(select(func.count()).select_from(t).where(t.c.app_id == app_id)))
                  .scalar_one() for t in (consumer, tag, knowledge_source, session, message, feedback, memory)}
    created = {kind: sum(1 for t, _ in events if t == f"{kind}.created") for kind in
               ("consumer", "tag", "knowledge_source", "session", "message", "feedback", "memory")}
    assert created == counts
    assert len({(t, o) for t, o in events if t.endswith(".created")}) == sum(counts.values())
    assert {t for t, _ in events if not t.endswith(".created")} <= {"tag.updated"}


async def test_a_different_seed_gives_different_data(engine: AsyncEngine) -> None:
    first = await generate_demo(engine, sessions=50, seed=1, now=NOW)
    second = await generate_demo(engine, sessions=50, seed=2, now=NOW)

    async with engine.connect() as db:
        titles = {
            app_id: (
                await db.execute(
                    select(session.c.title).where(session.c.app_id == app_id).order_by(session.c.started_at)
                )
            )
            .scalars()
            .all()
            for app_id in (first, second)
        }
    assert first != second
    assert titles[first] != titles[second]


async def test_a_seed_already_used_in_the_database_is_refused(engine: AsyncEngine) -> None:
    await generate_demo(engine, sessions=10, seed=4, now=NOW)

    with pytest.raises(ValueError, match="already exists"):
        await generate_demo(engine, sessions=10, seed=4, now=NOW)
    assert await scalar(engine, select(func.count()).select_from(app)) == 1


async def test_progress_reports_sessions_written(engine: AsyncEngine) -> None:
    seen: list[int] = []

    await generate_demo(engine, sessions=2500, seed=6, now=NOW, progress=seen.append)

    assert seen == [1000, 2000, 2500]


def _pattern(template: str) -> re.Pattern[str]:
    """A demo title or line template ({order}, {product}, …) as a regex matching its filled-in texts."""
    parts = re.split(r"\{[a-z]+\}", template)
    return re.compile(".+?".join(re.escape(part) for part in parts), re.DOTALL)


async def test_demo_titles_match_their_conversation_and_no_line_repeats(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=300, seed=17, now=NOW)

    async with engine.connect() as db:
        titles = dict((await db.execute(select(session.c.id, session.c.title).where(session.c.app_id == app_id))).all())
        rows = (
            await db.execute(
                select(message.c.session_id, message.c.role, message.c.content)
                .where(message.c.app_id == app_id, message.c.role.in_(("user", "assistant")))
                .order_by(message.c.session_id, message.c.created_at)
            )
        ).all()
    said: dict[uuid.UUID, dict[str, list[str]]] = {}
    for row in rows:
        said.setdefault(row.session_id, {"user": [], "assistant": []})[row.role].append(row.content)
    checked = 0
    for session_id, lines in said.items():
        for role in ("user", "assistant"):
            assert len(set(lines[role])) == len(lines[role]), (role, lines[role])
        title = titles[session_id]
        if title is None:
            continue
        (topic,) = [t for t in TOPICS if any(_pattern(p).fullmatch(title) for p in t["titles"])]
        # The conversation opens with its topic's first line, and follows its lines in order.
        assert _pattern(topic["user"][0]).fullmatch(lines["user"][0]), (title, lines["user"][0])
        for said_line, template in zip(lines["assistant"], topic["assistant"], strict=False):
            assert _pattern(template).fullmatch(said_line), (title, said_line)
        checked += 1
    assert checked > 250


async def test_demo_knowledge_errors_fit_the_source_type(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=2000, seed=18, now=NOW)

    async with engine.connect() as db:
        failed = (
            await db.execute(
                select(knowledge_source.c.type, knowledge_source.c.error_message).where(
                    knowledge_source.c.app_id == app_id, knowledge_source.c.status == "failed"
                )
            )
        ).all()
        others = (
            await db.execute(
                select(func.count()).where(
                    knowledge_source.c.app_id == app_id,
                    knowledge_source.c.status != "failed",
                    knowledge_source.c.error_message.is_not(None),
                )
            )
        ).scalar_one()
    assert len({row.type for row in failed}) >= 3
    assert all(row.error_message in KNOWLEDGE_ERRORS[row.type] for row in failed), failed
    assert others == 0


async def test_demo_times_carry_fractions_of_a_second_throughout(engine: AsyncEngine) -> None:
    app_id = await generate_demo(engine, sessions=200, seed=19, now=NOW)

    async with engine.connect() as db:
        sessions = (
            await db.execute(select(session.c.started_at, session.c.ended_at).where(session.c.app_id == app_id))
        ).all()
        stamps = {
            table.name: (await db.execute(select(table.c.created_at).where(table.c.app_id == app_id))).scalars().all()
            for table in (consumer, tag, knowledge_source, message, feedback, memory)
        }
    # A session's start and end look alike: both with a fraction, never one whole second beside six digits.
    assert all(s.started_at.microsecond != 0 for s in sessions)
    assert all(s.ended_at.microsecond != 0 for s in sessions if s.ended_at is not None)
    for name, values in stamps.items():
        assert values and all(value.microsecond != 0 for value in values), name
