"""The demo's sessions, made in time order in chunks: each with its messages (system, user, assistant, tool),
the feedback and tags on them, and the memories its consumer's words left."""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from chipp_builder.schemas.sessions import tool_result_text
from chipp_builder.server.ingest.demo_app import DemoApp, DemoConsumer
from chipp_builder.server.ingest.demo_content import (
    FOLLOW_UPS,
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
from chipp_builder.server.ingest.demo_draws import time_uuid, weighted

Rows = dict[str, list[dict[str, Any]]]  # rows per table name, in the order demo.py writes them


@dataclass(slots=True)
class _Conversation:
    """One session being made: what its messages draw on, and how far its message loop has got."""

    sid: UUID
    started_at: datetime
    consumer_id: UUID | None
    topic: dict[str, tuple[str, ...]]
    script: Script  # the topic's lines in order, then follow-ups: what the next user and assistant messages say
    fill: dict[str, Any]
    model: str
    base_ms: float
    per_token_ms: float
    voice: bool
    at: datetime  # the latest message's created_at so far
    user_ids: list[tuple[str, datetime]] = field(default_factory=list)
    last_tool: str | None = None
    last_result: Any = None


class DemoSessions:
    """Makes the demo app's sessions one after another, drawing from the app's seeded generator in a fixed
    order, so a seed repeats every session."""

    def __init__(self, app: DemoApp) -> None:
        self.app, self.rng, self.now, self.app_id = app, app.rng, app.now, app.app_id
        self.sessions_made = 0

    def session_chunk(self, count: int) -> Rows:
        """`count` sessions with their messages, tags, feedback and memories, as rows per table."""
        rows: Rows = {
            "session": [],
            "message": [],
            "message_tag": [],
            "feedback": [],
            "memory": [],
        }
        for _ in range(count):
            self._session(rows)
        return rows

    def _session(self, rows: Rows) -> None:
        """The next session with everything in it, appended to `rows`."""
        rng = self.rng
        started_at, sid, owner = self._start()
        source = weighted(rng, SOURCES)[0]
        topic = rng.choice(TOPICS)
        script = Script(topic, rng.sample(range(len(FOLLOW_UPS)), len(FOLLOW_UPS)))
        fill = self._fill(started_at)
        title = None if rng.random() < 0.04 else rng.choice(topic["titles"]).format(**fill)
        model, base_ms, per_token_ms, _ = weighted(rng, MODELS)
        roles = self._roles()
        talk = _Conversation(
            sid=sid,
            started_at=started_at,
            consumer_id=owner.id if owner else None,
            topic=topic,
            script=script,
            fill=fill,
            model=model,
            base_ms=base_ms,
            per_token_ms=per_token_ms,
            voice=source == "VOICE",
            at=started_at + timedelta(seconds=rng.uniform(1, 20)),
        )
        for index, role in enumerate(roles):
            calls_a_tool = role == "assistant" and index + 1 < len(roles) and roles[index + 1] == "tool"
            self._message(rows, talk, role, calls_a_tool)

        ended_at = None
        # Most sessions older than a day are closed; recent ones are often still open.
        if rng.random() < (0.85 if started_at < self.now - timedelta(days=1) else 0.3):
            ended_at = talk.at + timedelta(seconds=rng.uniform(30, 900))
        if owner is not None and owner.named and talk.user_ids and rng.random() < 0.15:
            self._memories(rows, owner, sid, talk.user_ids, fill)
        rows["session"].append(self._session_row(talk, title, source, len(roles), ended_at))

    def _start(self) -> tuple[datetime, UUID, DemoConsumer | None]:
        """The next session's start time, its id and its consumer."""
        rng, app = self.rng, self.app
        stamp = app.starts[self.sessions_made]
        self.sessions_made += 1
        started_at = datetime.fromtimestamp(stamp, UTC)
        sid = time_uuid(rng, started_at)
        # Only consumers who existed by then can start a session; about 8% of sessions have none.
        known = bisect.bisect_right(app.consumer_times, stamp)
        owner = app.consumers[rng.randrange(known)] if known and rng.random() < 0.92 else None
        return started_at, sid, owner

    def _fill(self, started_at: datetime) -> dict[str, Any]:
        """The values a session's texts are formatted with: its order number, product, city and so on."""
        rng, app = self.rng, self.app
        return {
            "order": rng.randint(10_000, 99_999),
            "product": rng.choice(PRODUCTS),
            "plan": rng.choice(PLANS[1:]),
            "city": rng.choice(app.cities),
            "company": rng.choice(app.companies),
            "job": rng.choice(app.jobs),
            "lang": rng.choice(LANGS),
            "date": (started_at - timedelta(days=rng.randint(1, 9))).strftime("%b %d"),
            "year": rng.randint(2016, 2024),
        }

    def _roles(self) -> list[str]:
        """A session's message roles in order: 2 to 20, user and assistant turns, sometimes a system prompt
        first and a tool call inside a turn."""
        rng = self.rng
        total = min(20, max(2, int(rng.gammavariate(2.0, 3.2)) + 2))
        roles: list[str] = ["system"] if total >= 4 and rng.random() < 0.15 else []
        while len(roles) < total:
            roles.append("user")
            roles.append("assistant")
            if rng.random() < 0.12:
                roles += ["tool", "assistant"]  # the assistant called a tool, got its output, then answered
        return roles[:total]

    def _message(self, rows: Rows, talk: _Conversation, role: str, calls_a_tool: bool) -> None:
        """The session's next message, with its tool call, feedback, audio and tags, appended to `rows`."""
        rng = self.rng
        row = self._message_row(talk, role)
        mid = row["id"]
        if role == "user":
            talk.user_ids.append((mid, talk.at))
        if role == "assistant":
            if calls_a_tool or rng.random() < 0.08:
                self._call_tool(talk, row)
            if rng.random() < 0.10:
                rating = self._feedback_row(talk, mid)
                # Only a consumer rates (a rating names its consumer); the row is drawn either way, so every
                # other row stays as it was.
                if talk.consumer_id is not None:
                    rows["feedback"].append(rating)
        if talk.voice and role in ("user", "assistant"):
            row["audio_url"] = f"https://cdn.example.com/audio/{mid}.webm"
            row["audio_duration_ms"] = rng.randint(1200, 25000)
        if role in ("user", "assistant") and rng.random() < 0.08:
            for index in sorted(rng.sample(range(len(TAGS)), rng.choice((1, 1, 1, 2)))):
                rows["message_tag"].append(
                    {"app_id": self.app_id, "message_id": mid, "tag_id": self.app.tag_ids[index]}
                )
                self.app.tag_usage[index] += 1
        rows["message"].append(row)

    def _message_row(self, talk: _Conversation, role: str) -> dict[str, Any]:
        """A message row of this role: its content, its time (moving the session's clock on) and its id."""
        rng = self.rng
        row: dict[str, Any] = {
            "app_id": self.app_id,
            "id": "",
            "session_id": talk.sid,
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
            row["content"] = SYSTEM_PROMPT.format(company=self.app.company)
            row["created_at"] = talk.started_at
        elif role == "user":
            talk.at += timedelta(seconds=rng.uniform(4, 150))
            row["content"] = talk.script.user().format(**talk.fill)
            row["created_at"] = talk.at
        elif role == "tool":
            talk.at += timedelta(seconds=rng.uniform(0.2, 3))
            # A tool message carries what the tool the previous assistant message called returned.
            row["content"] = json.dumps({"tool_name": talk.last_tool, "result": talk.last_result}, ensure_ascii=False)
            row["created_at"] = talk.at
        else:
            tokens = int(rng.lognormvariate(5.3, 0.6))
            latency = int(talk.base_ms + tokens * talk.per_token_ms * rng.uniform(0.7, 1.4))
            talk.at += timedelta(milliseconds=latency)
            row.update(
                content=talk.script.assistant().format(**talk.fill),
                model=talk.model,
                token_count=tokens,
                latency_ms=latency,
                created_at=talk.at,
            )
        row["id"] = str(time_uuid(rng, row["created_at"]))
        return row

    def _call_tool(self, talk: _Conversation, row: dict[str, Any]) -> None:
        """Make an assistant message call a tool; the next tool message (if any) carries its result."""
        rng = self.rng
        talk.last_tool = rng.choice(TOOLS)
        ok = rng.random() < 0.9
        talk.last_result = self._tool_result(talk.last_tool, ok, talk.fill)
        row["tool_calls"] = [{"tool_name": talk.last_tool, "status": "completed" if ok else "failed"}]
        # The API gives a result as text: a structured one as its JSON text (the tool message shows it as JSON).
        row["tool_results"] = [{"tool_name": talk.last_tool, "result": tool_result_text(talk.last_result)}]

    def _feedback_row(self, talk: _Conversation, message_id: str) -> dict[str, Any]:
        """A rating of an assistant message by the session's consumer, a little after it."""
        rng = self.rng
        rated_at = talk.at + timedelta(seconds=rng.uniform(3, 600))
        return {
            "app_id": self.app_id,
            "id": str(time_uuid(rng, rated_at)),
            "session_id": talk.sid,
            "message_id": message_id,
            "consumer_id": talk.consumer_id,
            "rating": rng.choices((1, -1, 0), weights=(60, 25, 15))[0],
            "created_at": rated_at,
        }

    def _session_row(
        self, talk: _Conversation, title: str | None, source: str, message_count: int, ended_at: datetime | None
    ) -> dict[str, Any]:
        """The session row, once its messages are made."""
        rng, started_at = self.rng, talk.started_at
        return {
            "id": talk.sid,
            "app_id": self.app_id,
            "consumer_id": talk.consumer_id,
            "title": title,
            "title_folded": None if title is None else title.casefold(),
            "source": source,
            "mode": "default" if rng.random() < 0.9 else rng.choice(("research", "support")),
            "is_bookmarked": rng.random() < 0.06,
            "is_multiplayer": source in ("SLACK", "APP") and rng.random() < 0.05,
            # Derived values, counted here as the rows are made: still the server's numbers, never input.
            "message_count": message_count,
            "started_at": started_at,
            "ended_at": ended_at,
            "last_activity_at": max(started_at, talk.at, ended_at or started_at),
        }

    def _tool_result(self, tool_name: str, ok: bool, fill: dict[str, Any]) -> Any:
        """What a tool returned: a timeout error when it failed, else a result fitting the tool."""
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
        rows: Rows,
        owner: DemoConsumer,
        sid: UUID,
        user_ids: list[tuple[str, datetime]],
        fill: dict[str, Any],
    ) -> None:
        """One or two memories of the consumer, each taken from one of its messages in this session."""
        rng = self.rng
        for _ in range(rng.choice((1, 1, 2))):
            memory_type = rng.choice(tuple(MEMORY_LINES))
            source_id, said_at = rng.choice(user_ids)
            created_at = said_at + timedelta(seconds=rng.uniform(2, 30))
            rows["memory"].append(
                {
                    "app_id": self.app_id,
                    "id": str(time_uuid(rng, created_at)),
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
