"""Demo data (SPEC section 10): one realistic app, generated in chunks, bulk-inserted, repeatable by seed."""

from __future__ import annotations

import bisect
import json
import random
import secrets
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from faker import Faker
from sqlalchemy import JSON, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chipp_builder.server.db.tables import (
    app,
    consumer,
    feedback,
    knowledge_source,
    memory,
    message,
    message_tag,
    session,
    tag,
)
from chipp_builder.server.ingest.demo_content import (
    FOLLOW_UPS,
    KNOWLEDGE_ERRORS,
    KNOWLEDGE_STATUSES,
    KNOWLEDGE_TYPES,
    LANGS,
    MEMORY_LINES,
    MODELS,
    PLANS,
    PRODUCTS,
    SOURCES,
    SYSTEM_PROMPT,
    TAGS,
    TOOLS,
    TOPICS,
    Script,
)
from chipp_builder.server.ingest.derived import add_activity, add_counts

SESSIONS_PER_CHUNK = 1000  # sessions generated and inserted together (about 11,000 messages)
# A commit every 5,000 sessions keeps the SQLite WAL and PostgreSQL's transaction state modest.
CHUNKS_PER_TRANSACTION = 5
WINDOW = timedelta(days=90)



@dataclass(slots=True)
class _Consumer:
    id: UUID
    created_at: datetime
    locale: str
    named: bool


def _new_uuid(rng: random.Random) -> UUID:
    """A version-4 UUID drawn from the seeded generator, so a seed repeats the ids too."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _time_uuid(rng: random.Random, when: datetime) -> UUID:
    """A version-7 UUID (RFC 9562: Unix milliseconds, then random bits) for a row made at `when`.

    Rows are generated in time order, so time-ordered ids append to the primary-key and session indexes
    instead of landing on random pages, so a large demo stays fast once the database outgrows the cache.
    """
    millis = int(when.timestamp() * 1000)
    value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return uuid.UUID(int=value)


def _weighted(rng: random.Random, pairs: tuple[tuple[Any, ...], ...]) -> Any:
    return rng.choices(pairs, weights=[p[-1] for p in pairs])[0]


def _ascii(text: str) -> str:
    text = text.replace("ß", "ss")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _insert(table: Table) -> Any:
    """A plain INSERT for executemany; a None in a JSON column becomes SQL NULL rather than JSON 'null'."""
    stmt = table.insert()
    json_columns = {
        c.name: bindparam(c.name, type_=JSON(none_as_null=True)) for c in table.c if isinstance(c.type, JSON)
    }
    return stmt.values(**json_columns) if json_columns else stmt


class _Generator:
    """Draws every value from one seeded random.Random (and Fakers seeded from it), in a fixed order."""

    def __init__(self, rng: random.Random, now: datetime, sessions: int) -> None:
        self.rng = rng
        self.now = now
        self.app_id = _new_uuid(rng)
        self.fakers = {}
        for locale in ("en_US", "de_DE", "fr_FR"):
            faker = Faker(locale)
            faker.seed_instance(rng.getrandbits(64))
            self.fakers[locale] = faker
        en = self.fakers["en_US"]
        self.companies = [en.company() for _ in range(40)]
        self.cities = [self.fakers[loc].city() for loc in ("en_US", "de_DE", "fr_FR") for _ in range(15)]
        self.jobs = [en.job() for _ in range(30)]
        self.company = rng.choice(self.companies)
        self.tag_ids = [_new_uuid(rng) for _ in TAGS]
        self.tag_usage = [0] * len(TAGS)
        self.consumers: list[_Consumer] = []
        self.consumer_times: list[float] = []  # created_at of self.consumers, ascending, for bisect
        self.n_consumers = max(1, round(sessions / 5))
        self.n_knowledge = min(400, max(8, sessions // 25))
        # Every session's start, drawn up front and sorted: sessions (and their ids) are made in time order.
        first, last = (now - WINDOW).timestamp(), (now - timedelta(hours=2)).timestamp()
        # To the microsecond, as every other time of the demo is (a real clock's times have fractions).
        self.starts = sorted(round(rng.uniform(first, last), 6) for _ in range(sessions))
        self.sessions_made = 0

    # --- once per app ------------------------------------------------------------------------------------

    def app_row(self, name: str) -> dict[str, Any]:
        return {"id": self.app_id, "name": name, "created_at": self.now - WINDOW - timedelta(days=30)}

    def tag_rows(self) -> list[dict[str, Any]]:
        start = self.now - WINDOW - timedelta(days=29)
        return [
            {
                "id": tag_id,
                "app_id": self.app_id,
                "name": name,
                "color": color,
                "usage_count": 0,
                "created_at": start + timedelta(minutes=3 * i, seconds=self.rng.uniform(0, 60)),
            }
            for i, (tag_id, (name, color)) in enumerate(zip(self.tag_ids, TAGS, strict=True))
        ]

    def consumer_rows(self) -> list[dict[str, Any]]:
        rng, rows = self.rng, []
        earliest = (self.now - WINDOW - timedelta(days=30)).timestamp()
        latest = (self.now - timedelta(hours=3)).timestamp()
        times = sorted(round(rng.uniform(earliest, latest), 6) for _ in range(self.n_consumers))
        for stamp in times:
            created_at = datetime.fromtimestamp(stamp, UTC)
            cid = _time_uuid(rng, created_at)
            anonymous = rng.random() < 0.3
            locale = rng.choices(("en_US", "de_DE", "fr_FR"), weights=(60, 22, 18))[0]
            if anonymous:
                name = email = picture = None
                identifier = f"anon_{rng.getrandbits(64):016x}"
            else:
                faker = self.fakers[locale]
                first, last = faker.first_name(), faker.last_name()
                name = f"{first} {last}"
                domain = rng.choice(
                    ("gmail.com", "outlook.com", "proton.me", "gmx.de", "orange.fr", "icloud.com")
                )
                email = f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 999)}@{domain}".replace(" ", "")
                identifier = email
                picture = f"https://i.pravatar.cc/150?u={cid.hex}" if rng.random() < 0.4 else None
            updated_at = created_at + timedelta(seconds=rng.randint(0, 86400 * 20))
            rows.append(
                {
                    "id": cid,
                    "app_id": self.app_id,
                    "identifier": identifier,
                    "email": email,
                    "name": name,
                    "picture_url": picture,
                    "email_verified": email is not None and rng.random() < 0.75,
                    "credits": 0 if anonymous else rng.choice((0, 0, 10, 50, 100, rng.randint(1, 5000))),
                    "subscription_active": not anonymous and rng.random() < 0.2,
                    "mode": rng.choices(("default", "research", "support"), weights=(88, 7, 5))[0],
                    "is_anonymous": anonymous,
                    "created_at": created_at,
                    "updated_at": min(updated_at, self.now),
                    "search_folded": "\x1f".join(
                        (part or "").casefold() for part in (name, email, identifier)
                    ),
                }
            )
            self.consumers.append(_Consumer(cid, created_at, locale, not anonymous))
            self.consumer_times.append(stamp)
        return rows

    def knowledge_rows(self) -> list[dict[str, Any]]:
        rng, rows = self.rng, []
        domain = _ascii(self.company.split()[0]).strip(",.") + ".com"
        for i in range(self.n_knowledge):
            kind = _weighted(rng, KNOWLEDGE_TYPES)[0]
            status = _weighted(rng, KNOWLEDGE_STATUSES)[0]
            product = rng.choice(PRODUCTS)
            name, url, size = {
                "file": (
                    f"{product} user guide v{rng.randint(1, 9)}.pdf",
                    None,
                    rng.randint(20_000, 25_000_000),
                ),
                "url": (f"Pricing page {i}", f"https://www.{domain}/pricing/{i}", None),
                "google_drive": (
                    "Support macros (Drive)",
                    f"https://drive.google.com/drive/folders/{i:08x}",
                    None,
                ),
                "notion": (
                    "Team wiki – Notion",
                    f"https://www.notion.so/{domain.split('.')[0]}/wiki-{i}",
                    None,
                ),
                "text": ("Rückgabebedingungen (Text)", None, None),
                "qa": (f"FAQ pairs – {product}", None, None),
                "sitemap": ("Docs sitemap", f"https://docs.{domain}/sitemap.xml", None),
                "youtube": (
                    f"{product} demo video",
                    f"https://www.youtube.com/watch?v={rng.getrandbits(40):010x}",
                    None,
                ),
                "confluence": (
                    "Engineering runbooks",
                    f"https://{domain.split('.')[0]}.atlassian.net/wiki/{i}",
                    None,
                ),
            }[kind]
            created_at = self.now - timedelta(seconds=rng.uniform(86400, 86400 * 150))
            updated_at = created_at + timedelta(seconds=rng.uniform(60, 86400 * 3))
            refreshed = kind in ("url", "sitemap", "notion", "confluence") and rng.random() < 0.6
            rows.append(
                {
                    "app_id": self.app_id,
                    "id": str(_new_uuid(rng)),
                    "name": name,
                    "type": kind,
                    "status": status,
                    "url": url,
                    "error_message": rng.choice(KNOWLEDGE_ERRORS[kind]) if status == "failed" else None,
                    "chunk_count": {
                        "completed": rng.randint(3, 2400),
                        "processing": rng.randint(0, 300),
                        "deleting": rng.randint(1, 500),
                    }.get(status, 0),
                    "file_size_bytes": size,
                    "refresh_interval_hours": rng.choice((24, 72, 168)) if refreshed else None,
                    "last_refreshed_at": min(updated_at + timedelta(days=rng.randint(0, 30)), self.now)
                    if refreshed and status == "completed"
                    else None,
                    "created_at": created_at,
                    "updated_at": min(updated_at, self.now),
                }
            )
        return rows

    # --- sessions, in chunks -----------------------------------------------------------------------------

    def session_chunk(self, count: int) -> dict[str, list[dict[str, Any]]]:
        """`count` sessions with their messages, tags, feedback and memories, as rows per table."""
        rows: dict[str, list[dict[str, Any]]] = {
            "session": [],
            "message": [],
            "message_tag": [],
            "feedback": [],
            "memory": [],
        }
        for _ in range(count):
            self._session(rows)
        return rows

    def _session(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        rng, now = self.rng, self.now
        stamp = self.starts[self.sessions_made]
        self.sessions_made += 1
        started_at = datetime.fromtimestamp(stamp, UTC)
        sid = _time_uuid(rng, started_at)
        # Only consumers who existed by then can start a session; about 8% of sessions have none.
        known = bisect.bisect_right(self.consumer_times, stamp)
        owner = self.consumers[rng.randrange(known)] if known and rng.random() < 0.92 else None
        source = _weighted(rng, SOURCES)[0]
        topic = rng.choice(TOPICS)
        script = Script(topic, rng.sample(range(len(FOLLOW_UPS)), len(FOLLOW_UPS)))
        fill = {
            "order": rng.randint(10_000, 99_999),
            "product": rng.choice(PRODUCTS),
            "plan": rng.choice(PLANS[1:]),
            "city": rng.choice(self.cities),
            "company": rng.choice(self.companies),
            "job": rng.choice(self.jobs),
            "lang": rng.choice(LANGS),
            "date": (started_at - timedelta(days=rng.randint(1, 9))).strftime("%b %d"),
            "year": rng.randint(2016, 2024),
        }
        title = None if rng.random() < 0.04 else rng.choice(topic["titles"]).format(**fill)
        model, base_ms, per_token_ms, _ = _weighted(rng, MODELS)
        voice = source == "VOICE"

        total = min(20, max(2, int(rng.gammavariate(2.0, 3.2)) + 2))
        roles: list[str] = ["system"] if total >= 4 and rng.random() < 0.15 else []
        while len(roles) < total:
            roles.append("user")
            roles.append("assistant")
            if rng.random() < 0.12:
                roles += ["tool", "assistant"]  # the assistant called a tool, got its output, then answered
        roles = roles[:total]

        at = started_at + timedelta(seconds=rng.uniform(1, 20))
        user_ids: list[tuple[str, datetime]] = []
        consumer_id = owner.id if owner else None
        last_tool = None
        last_result: Any = None
        for index, role in enumerate(roles):
            calls_a_tool = role == "assistant" and index + 1 < len(roles) and roles[index + 1] == "tool"
            row: dict[str, Any] = {
                "app_id": self.app_id,
                "id": "",
                "session_id": sid,
                "role": role,
                "content": "",
                "model": None,
                "token_count": None,
                "latency_ms": None,
                "audio_url": None,
                "audio_duration_ms": None,
                "tool_calls": None,
                "tool_results": None,
                "created_at": None,
            }
            if role == "system":
                row["content"] = SYSTEM_PROMPT.format(company=self.company)
                row["created_at"] = started_at
            elif role == "user":
                at += timedelta(seconds=rng.uniform(4, 150))
                row["content"] = script.user().format(**fill)
                row["created_at"] = at
            elif role == "tool":
                at += timedelta(seconds=rng.uniform(0.2, 3))
                # A tool message carries what the tool the previous assistant message called returned.
                row["content"] = json.dumps({"tool_name": last_tool, "result": last_result}, ensure_ascii=False)
                row["created_at"] = at
            else:
                tokens = int(rng.lognormvariate(5.3, 0.6))
                latency = int(base_ms + tokens * per_token_ms * rng.uniform(0.7, 1.4))
                at += timedelta(milliseconds=latency)
                row.update(
                    content=script.assistant().format(**fill),
                    model=model,
                    token_count=tokens,
                    latency_ms=latency,
                    created_at=at,
                )
            mid = row["id"] = str(_time_uuid(rng, row["created_at"]))
            if role == "user":
                user_ids.append((mid, at))
            if role == "assistant":
                if calls_a_tool or rng.random() < 0.08:
                    last_tool = rng.choice(TOOLS)
                    ok = rng.random() < 0.9
                    last_result = self._tool_result(last_tool, ok, fill)
                    row["tool_calls"] = [{"tool_name": last_tool, "status": "completed" if ok else "failed"}]
                    row["tool_results"] = [{"tool_name": last_tool, "result": last_result}]
                if rng.random() < 0.10:
                    rated_at = at + timedelta(seconds=rng.uniform(3, 600))
                    rows["feedback"].append(
                        {
                            "app_id": self.app_id,
                            "id": str(_time_uuid(rng, rated_at)),
                            "session_id": sid,
                            "message_id": mid,
                            "consumer_id": consumer_id,
                            "rating": rng.choices((1, -1, 0), weights=(60, 25, 15))[0],
                            "created_at": rated_at,
                        }
                    )
            if voice and role in ("user", "assistant"):
                row["audio_url"] = f"https://cdn.example.com/audio/{mid}.webm"
                row["audio_duration_ms"] = rng.randint(1200, 25000)
            if role in ("user", "assistant") and rng.random() < 0.08:
                for index in sorted(rng.sample(range(len(TAGS)), rng.choice((1, 1, 1, 2)))):
                    rows["message_tag"].append(
                        {"app_id": self.app_id, "message_id": mid, "tag_id": self.tag_ids[index]}
                    )
                    self.tag_usage[index] += 1
            rows["message"].append(row)

        ended_at = None
        # Most sessions older than a day are closed; recent ones are often still open.
        if rng.random() < (0.85 if started_at < now - timedelta(days=1) else 0.3):
            ended_at = at + timedelta(seconds=rng.uniform(30, 900))
        if owner is not None and owner.named and user_ids and rng.random() < 0.15:
            self._memories(rows, owner, sid, user_ids, fill)
        rows["session"].append(
            {
                "id": sid,
                "app_id": self.app_id,
                "consumer_id": consumer_id,
                "title": title,
                "title_folded": None if title is None else title.casefold(),
                "source": source,
                "mode": "default" if rng.random() < 0.9 else rng.choice(("research", "support")),
                "is_bookmarked": rng.random() < 0.06,
                "is_multiplayer": source in ("SLACK", "APP") and rng.random() < 0.05,
                # Derived values, counted here as the rows are made: still the server's numbers, never input.
                "message_count": len(roles),
                "started_at": started_at,
                "ended_at": ended_at,
                "last_activity_at": max(started_at, at, ended_at or started_at),
            }
        )

    def _tool_result(self, tool_name: str, ok: bool, fill: dict[str, Any]) -> Any:
        if not ok:
            return {"error": "upstream timeout"}
        if tool_name == "lookup_order":
            return {
                "order_id": f"#{fill['order']}",
                "status": self.rng.choice(("shipped", "processing", "delivered")),
            }
        if tool_name == "search_knowledge_base":
            return {"hits": self.rng.randint(0, 8), "top_source": f"{fill['product']} user guide"}
        if tool_name == "get_weather":
            return {"city": fill["city"], "temperature_c": self.rng.randint(-5, 31)}
        return "ok"

    def _memories(
        self,
        rows: dict[str, list[dict[str, Any]]],
        owner: _Consumer,
        sid: UUID,
        user_ids: list[tuple[str, datetime]],
        fill: dict[str, Any],
    ) -> None:
        rng = self.rng
        for _ in range(rng.choice((1, 1, 2))):
            memory_type = rng.choice(tuple(MEMORY_LINES))
            source_id, said_at = rng.choice(user_ids)
            created_at = said_at + timedelta(seconds=rng.uniform(2, 30))
            rows["memory"].append(
                {
                    "app_id": self.app_id,
                    "id": str(_time_uuid(rng, created_at)),
                    "consumer_id": owner.id,
                    "external_user_id": f"ext_{owner.id.hex[:10]}" if rng.random() < 0.3 else None,
                    "content": rng.choice(MEMORY_LINES[memory_type]).format(**fill),
                    "memory_type": memory_type,
                    "memory_layer": "fact"
                    if memory_type in ("fact", "background", "preference")
                    else "episodic",
                    "confidence": round(rng.uniform(0.55, 0.99), 2),
                    "source_message_id": source_id,
                    "session_id": sid,
                    "created_at": created_at,
                    "updated_at": min(
                        created_at + timedelta(seconds=rng.choice((0, 0, rng.randint(60, 86400)))), self.now
                    ),
                }
            )


_WRITE_ORDER = (
    ("session", session),
    ("message", message),
    ("message_tag", message_tag),
    ("feedback", feedback),
    ("memory", memory),
)


async def _large_cache(db: AsyncConnection) -> None:
    """Give SQLite a big page cache for this connection: inserts with random UUID keys touch pages all over
    every index, and the default 2 MB cache turns a large demo into disk reads."""
    if db.dialect.name == "sqlite":
        await db.exec_driver_sql("PRAGMA cache_size=-262144")  # KiB: 256 MB, allocated only as used


async def _write_chunk(db: AsyncConnection, app_id: UUID, rows: dict[str, list[dict[str, Any]]]) -> None:
    for name, table in _WRITE_ORDER:
        if rows[name]:
            await db.execute(_insert(table), rows[name])
    # The chunk's rows are all new: add their sums to the counters and rollups in the same transaction.
    await add_counts(db, app_id, feedback=len(rows["feedback"]), memories=len(rows["memory"]))
    await add_activity(
        db,
        app_id,
        sessions=[(r["started_at"], r["consumer_id"]) for r in rows["session"]],
        messages=[(r["created_at"], r["model"], r["token_count"]) for r in rows["message"]],
    )


async def generate_demo(
    engine: AsyncEngine,
    *,
    sessions: int = 200,
    seed: int | None = None,
    app_name: str = "Demo app",
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> UUID:
    """Create one app full of realistic data with exactly `sessions` sessions; return its id.

    The same seed (and the same `now`, default the current second) gives the same data, ids included, so a
    seeded demo can be made once per database: a second run with that seed raises ValueError. `progress` is
    called with the number of sessions written so far after each chunk.
    """
    if sessions < 0:
        raise ValueError("sessions must be 0 or more")
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    gen = _Generator(rng, moment, sessions)

    async with engine.begin() as db:
        taken = (await db.execute(select(app.c.id).where(app.c.id == gen.app_id))).first()
        if taken is not None:
            raise ValueError(f"demo data for seed {seed} already exists in this database (app {gen.app_id})")
        await db.execute(app.insert().values(**gen.app_row(app_name)))
        await db.execute(tag.insert(), gen.tag_rows())
        consumers, sources = gen.consumer_rows(), gen.knowledge_rows()
        await db.execute(consumer.insert(), consumers)
        await db.execute(_insert(knowledge_source), sources)
        await add_counts(db, gen.app_id, consumers=len(consumers), knowledge_sources=len(sources))

    done = 0
    while done < sessions:
        async with engine.begin() as db:
            await _large_cache(db)
            for _ in range(CHUNKS_PER_TRANSACTION):
                count = min(SESSIONS_PER_CHUNK, sessions - done)
                if count == 0:
                    break
                await _write_chunk(db, gen.app_id, gen.session_chunk(count))
                done += count
                if progress is not None:
                    progress(done)

    async with engine.begin() as db:
        await db.execute(
            update(tag).where(tag.c.id == bindparam("tag_id")).values(usage_count=bindparam("usage")),
            [
                {"tag_id": tag_id, "usage": usage}
                for tag_id, usage in zip(gen.tag_ids, gen.tag_usage, strict=True)
            ],
        )
    if progress is not None and sessions == 0:
        progress(0)
    return gen.app_id
