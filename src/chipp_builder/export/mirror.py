"""`chipp-builder mirror`'s work (docs/sync.md): keep a copy of a remote app current, reading only through the
SDK. The first run takes GET /events/latest, copies every list and stores that cursor; every later run reads
the feed from the stored cursor and fetches only what changed, in batches (a page of the newest sessions,
consumers or ratings covers many new ones; a session's messages are fetched once however many changed), then
applies deletions. The copy is written through a Store (the server's import and deletes, in
server/ingest/mirror.py); the position is stored only after the changes it covers are committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from chipp_builder.client import AsyncClient, CursorExpired, NotFound
from chipp_builder.export.rows import import_record, message_records
from chipp_builder.schemas.common import format_timestamp, utc_now
from chipp_builder.schemas.events import Event

Row = dict[str, Any]
Mode = Literal["feed", "full", "no-feed"]

EVENTS_PAGE = 500  # the feed's largest page
EVENTS_PER_BATCH = 5000  # events applied (and the position stored) together
FLUSH_RECORDS = 2000  # import records written per transaction during a full copy
# How much earlier than its event an object's own time may be (the event is the commit's time; the object's
# started_at or created_at is its request's): a newest-first page reaching past it has passed the object.
CLOCK_MARGIN = timedelta(minutes=2)
# Kinds whose objects are written by import records, in the order records must come (references first).
KINDS = ("consumer", "tag", "knowledge_source", "session", "message", "feedback", "memory")


class Store(Protocol):
    """Where the copy is written (server/ingest/mirror.py's CopyDatabase)."""

    async def upsert(self, records: Sequence[Row]) -> int: ...
    async def delete(self, kind: str, ids: Sequence[str]) -> int: ...
    async def existing(self, kind: str, ids: Iterable[str]) -> set[str]: ...
    async def sort_times(self, kind: str, ids: Iterable[str]) -> dict[str, datetime]: ...
    async def ids(self, kind: str, session_id: str | None = None) -> set[str]: ...
    async def save_state(self, source: str, state: dict[str, Any]) -> None: ...


@dataclass
class Progress:
    """What the command line shows: the stage, objects handled so far, and notes."""

    stage: Callable[[str], None] = lambda text: None
    advance: Callable[[int], None] = lambda count: None
    note: Callable[[str], None] = lambda text: None


@dataclass
class Outcome:
    """What a run did."""

    mode: Mode
    reason: str = ""
    events: int = 0
    written: int = 0
    deleted: int = 0
    cursor: str | None = None


@dataclass
class _Batch:
    """The records of a batch and the ids they hold, by kind."""

    records: list[Row] = field(default_factory=list)

    def add(self, rows: Iterable[Row]) -> None:
        self.records.extend(rows)

    def held(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {kind: set() for kind in KINDS}
        for row in self.records:
            if row["type"] in found:
                found[row["type"]].add(str(row["id"]))
        return found


def _session_records(session: Any) -> list[Row]:
    return [import_record("session", session)]


def _message_rows(messages: Iterable[Any]) -> list[Row]:
    return [row for one in messages for row in message_records(one)]


def _time(obj: Any) -> datetime:
    return obj.started_at if hasattr(obj, "started_at") else obj.created_at  # type: ignore[no-any-return]


class Mirror:
    """One copy of one remote app: run() brings it up to date; follow() keeps it so."""

    def __init__(self, client: AsyncClient, store: Store, source: str, *, page_size: int = 100,
                 progress: Progress | None = None) -> None:
        self.client = client
        self.store = store
        self.source = source
        self.page_size = page_size
        self.progress = progress or Progress()

    # --- the run ------------------------------------------------------------------------------------------

    async def run(self, state: dict[str, Any] | None) -> Outcome:
        """Bring the copy up to date from the stored state: apply the feed since its cursor, or copy
        everything (first run, no feed on the server, or an expired cursor)."""
        cursor = (state or {}).get("cursor")
        if cursor:
            try:
                return await self.apply_feed(cursor)
            except CursorExpired:
                self.progress.note("The stored position is older than the events the server keeps: "
                                   "copying everything again.")
                return await self.full_copy("the stored position had expired")
            except NotFound:
                return await self.full_copy("the server no longer has /events")
        reason = "first run" if state is None or "cursor" not in state else "the server has no /events"
        return await self.full_copy(reason)

    async def _save(self, cursor: str | None) -> None:
        await self.store.save_state(self.source, {"cursor": cursor, "synced_at": format_timestamp(utc_now())})

    # --- following the feed -------------------------------------------------------------------------------

    async def _events(self, cursor: str) -> AsyncIterator[tuple[list[Event], str]]:
        """The feed from `cursor` in batches of up to EVENTS_PER_BATCH events, each with the cursor after it."""
        batch: list[Event] = []
        feed = self.client.events.list(cursor, limit=EVENTS_PAGE)
        async for page in feed.pages():
            batch.extend(page.data)
            cursor = page.pagination.next_cursor
            if len(batch) >= EVENTS_PER_BATCH and page.pagination.has_more:
                yield batch, cursor
                batch = []
        yield batch, cursor

    async def apply_feed(self, cursor: str) -> Outcome:
        """Apply every event after `cursor`, a batch at a time, storing the position after each batch."""
        outcome = Outcome("feed", cursor=cursor)
        self.progress.stage("Reading the event feed")
        async for events, after in self._events(cursor):
            if events:
                await self._apply(events, outcome)
            if after != outcome.cursor:
                await self._save(after)
                outcome.cursor = after
        return outcome

    async def follow(self, cursor: str, wait: int = 25,
                     on_batch: Callable[[Outcome], Awaitable[None] | None] | None = None) -> None:
        """Apply events as they come, forever (long polls of `wait` seconds); each page's position is stored
        once its changes are committed."""
        outcome = Outcome("feed", cursor=cursor)
        feed = self.client.events.follow(cursor, wait=wait, limit=EVENTS_PAGE)
        async for page in feed.pages():
            if page.data:
                await self._apply(page.data, outcome)
            after = page.pagination.next_cursor
            if after != outcome.cursor:
                await self._save(after)
                outcome.cursor = after
                if on_batch is not None:
                    result = on_batch(outcome)
                    if result is not None:
                        await result

    async def _apply(self, events: Sequence[Event], outcome: Outcome) -> None:
        """Apply a batch of events: delete what went, fetch what was created or changed (in as few requests
        as the lists allow), write it in one import."""
        outcome.events += len(events)
        last: dict[tuple[str, str], tuple[str, Event]] = {}
        message_sessions: set[str] = set()
        feedback_sessions: set[str] = set()
        for one in events:
            kind, _, action = one.type.partition(".")
            last[(kind, one.object_id)] = (action, one)
            if one.session_id is not None:
                (message_sessions if kind == "message" else feedback_sessions).add(str(one.session_id))
        gone: dict[str, list[str]] = {}
        wanted: dict[str, dict[str, Event]] = {}
        for (kind, object_id), (action, one) in last.items():
            if action == "deleted":
                gone.setdefault(kind, []).append(object_id)
            else:
                wanted.setdefault(kind, {})[object_id] = one
        self.progress.stage(f"Applying {len(events):,} events")
        # Deletions first, parents first (an erasure takes the person's sessions, a session its messages).
        for kind in ("consumer", "session", "message", "feedback", "memory", "knowledge_source", "tag"):
            if gone.get(kind):
                outcome.deleted += await self.store.delete(kind, gone[kind])
        deleted_sessions = set(gone.get("session", ()))
        batch = _Batch()
        refetched = await self._changed_sessions(wanted.get("session", {}), batch, outcome)
        message_sessions = (message_sessions | refetched["new"]) - deleted_sessions - refetched["missing"]
        for session_id in sorted(message_sessions):
            await self._session_messages(session_id, batch, outcome)
        await self._changed_feedback(wanted.get("feedback", {}), feedback_sessions - deleted_sessions, batch,
                                     outcome)
        await self._changed_consumers(wanted.get("consumer", {}), batch, outcome)
        for kind in ("memory", "knowledge_source"):
            await self._changed_offset_kind(kind, wanted.get(kind, {}), batch)
        if wanted.get("tag"):
            batch.add(import_record("tag", t) for t in await self._tags())
        outcome.written += await self._write(batch)
        self.progress.advance(len(events))

    async def _candidates(self, kind: str, wanted: dict[str, Event]) -> tuple[set[str], datetime | None]:
        """Which wanted objects a newest-first walk may find near the top (new ones, and held ones whose time
        is recent), and the time below which the walk has passed them all."""
        if not wanted:
            return set(), None
        bound = min(one.occurred_at for one in wanted.values()) - CLOCK_MARGIN
        held = await self.store.sort_times(kind, wanted)
        near_top = {object_id for object_id in wanted if object_id not in held or held[object_id] >= bound}
        return near_top, bound

    async def _walk_top(self, pages: Any, wanted: set[str], bound: datetime | None) -> dict[str, Any]:
        """Walk a newest-first list until every wanted id is found or its items are older than `bound` (to the
        end when None); the wanted objects found, by id."""
        found: dict[str, Any] = {}
        if not wanted:
            return found
        async for page in pages:
            for item in page.data:
                if str(item.id) in wanted:
                    found[str(item.id)] = item
            if len(found) == len(wanted) or not page.data:
                break
            if bound is not None and _time(page.data[-1]) < bound:
                break
        return found

    async def _changed_sessions(self, wanted: dict[str, Event], batch: _Batch, outcome: Outcome
                                ) -> dict[str, set[str]]:
        """Fetch changed sessions: a page of the newest for the new ones, one GET each for the rest (a 404:
        deleted). Returns the ids that are new to the copy and those found missing."""
        near_top, bound = await self._candidates("session", wanted)
        found = await self._walk_top(self.client.sessions.list(limit=self.page_size).pages(), near_top, bound)
        missing: set[str] = set()
        for session_id in sorted(set(wanted) - set(found)):
            try:
                found[session_id] = await self.client.sessions.get(session_id)
            except NotFound:
                missing.add(session_id)
        if missing:
            outcome.deleted += await self.store.delete("session", sorted(missing))
        held = await self.store.existing("session", found)
        for one in found.values():
            batch.add(_session_records(one))
        return {"new": set(found) - held, "missing": missing}

    async def _session_messages(self, session_id: str, batch: _Batch, outcome: Outcome) -> None:
        """Every message of a session (with tool details), and the deletion of those the copy holds that the
        source no longer has."""
        try:
            messages = [m async for m in self.client.sessions.messages(session_id, include="tool_details",
                                                                       limit=self.page_size)]
        except NotFound:
            outcome.deleted += await self.store.delete("session", [session_id])
            return
        batch.add(_message_rows(messages))
        vanished = await self.store.ids("message", session_id) - {m.id for m in messages}
        if vanished:
            outcome.deleted += await self.store.delete("message", sorted(vanished))

    async def _changed_feedback(self, wanted: dict[str, Event], sessions: set[str], batch: _Batch,
                                outcome: Outcome) -> None:
        """Changed ratings: the newest page(s) of /feedback hold new and replaced ones; the rest are listed by
        their session."""
        near_top, bound = await self._candidates("feedback", wanted)
        found = await self._walk_top(self.client.feedback.list(limit=self.page_size).pages(), near_top, bound)
        left = {str(wanted[i].session_id) for i in set(wanted) - set(found) if wanted[i].session_id is not None}
        for session_id in sorted(left & sessions):
            page = await self.client.feedback.list(session_id=session_id, limit=self.page_size)
            listed = [f async for f in page]
            found.update((f.id, f) for f in listed)
            if len({f.id for f in listed}) == page.pagination.total:  # a complete listing: what is absent went
                vanished = await self.store.ids("feedback", session_id) - {f.id for f in listed}
                if vanished:
                    outcome.deleted += await self.store.delete("feedback", sorted(vanished))
        batch.add(import_record("feedback", f) for f in found.values())

    async def _changed_consumers(self, wanted: dict[str, Event], batch: _Batch, outcome: Outcome) -> None:
        """Changed consumers: the newest page(s) for new ones, one GET each for the rest (a 404: erased)."""
        near_top, bound = await self._candidates("consumer", wanted)
        found = await self._walk_top(self.client.consumers.list(limit=self.page_size).pages(), near_top, bound)
        missing = []
        for consumer_id in sorted(set(wanted) - set(found)):
            try:
                found[consumer_id] = await self.client.consumers.get(consumer_id)
            except NotFound:
                missing.append(consumer_id)
        if missing:
            outcome.deleted += await self.store.delete("consumer", missing)
        batch.add(import_record("consumer", c) for c in found.values())

    async def _changed_offset_kind(self, kind: str, wanted: dict[str, Event], batch: _Batch) -> None:
        """Changed memories or knowledge sources: the newest page(s), then the whole list when some were not
        near the top (neither has a GET by id)."""
        if not wanted:
            return
        pages = self.client.memories.list if kind == "memory" else self.client.knowledge_sources.list
        near_top, bound = await self._candidates(kind, wanted)
        found = await self._walk_top(pages(limit=self.page_size).pages(), near_top, bound)
        if set(wanted) - set(found):
            found.update(await self._walk_top(pages(limit=self.page_size).pages(), set(wanted) - set(found), None))
        batch.add(import_record(kind, item) for item in found.values())

    async def _tags(self) -> list[Any]:
        return [t async for t in self.client.tags.list()]

    # --- writing ------------------------------------------------------------------------------------------

    async def _write(self, batch: _Batch) -> int:
        """Write a batch's records after fetching what they refer to and the copy lacks (a consumer that
        appeared after its page was read, say); records whose reference is gone from the source are left out
        (the feed will say what became of them)."""
        if not batch.records:
            return 0
        for _ in range(3):
            missing = await self._missing_references(batch)
            if not any(missing.values()):
                break
            await self._fetch_missing(missing, batch)
        else:
            missing = await self._missing_references(batch)
        if any(missing.values()):
            dropped = self._drop_unresolved(batch, missing)
            self.progress.note(f"Left out {dropped} records whose references the source no longer has.")
        return await self.store.upsert(_ordered(batch.records))

    async def _missing_references(self, batch: _Batch) -> dict[str, set[str]]:
        held = batch.held()
        need: dict[str, set[str]] = {"consumer": set(), "session": set(), "message": set(), "tag": set()}
        for row in batch.records:
            for kind, name in _REFERENCES.get(row["type"], ()):
                value = row.get(name)
                if value is not None and str(value) not in held[kind]:
                    need[kind].add(str(value))
        return {kind: ids - await self.store.existing(kind, ids) if ids else set() for kind, ids in need.items()}

    async def _fetch_missing(self, missing: dict[str, set[str]], batch: _Batch) -> None:
        for consumer_id in sorted(missing["consumer"]):
            try:
                batch.add([import_record("consumer", await self.client.consumers.get(consumer_id))])
            except NotFound:
                pass
        sessions = set(missing["session"])
        # A missing message is fetched with its session's messages (ratings and memories name the session).
        for row in batch.records:
            message_id = row.get("message_id") if row["type"] == "feedback" else row.get("source_message_id")
            if row["type"] in ("feedback", "memory") and message_id in missing["message"] and row.get("session_id"):
                sessions.add(str(row["session_id"]))
        for session_id in sorted(sessions):
            try:
                one = await self.client.sessions.get(session_id)
                messages = [m async for m in self.client.sessions.messages(session_id, include="tool_details",
                                                                           limit=self.page_size)]
            except NotFound:
                continue
            batch.add(_session_records(one))
            batch.add(_message_rows(messages))
        if missing["tag"]:
            batch.add(import_record("tag", t) for t in await self._tags())

    def _drop_unresolved(self, batch: _Batch, missing: dict[str, set[str]]) -> int:
        """Leave out records that refer to what cannot be had, and records that refer to those."""
        unresolved = {kind: set(ids) for kind, ids in missing.items()}
        before = len(batch.records)
        while True:
            kept: list[Row] = []
            for row in batch.records:
                bad = any(row.get(name) is not None and str(row[name]) in unresolved.get(kind, set())
                          for kind, name in _REFERENCES.get(row["type"], ()))
                if bad:
                    if "id" in row:
                        unresolved.setdefault(row["type"], set()).add(str(row["id"]))
                else:
                    kept.append(row)
            if len(kept) == len(batch.records):
                break
            batch.records = kept
        return before - len(batch.records)

    # --- the full copy ------------------------------------------------------------------------------------

    async def full_copy(self, reason: str) -> Outcome:
        """Copy every list, then delete what the copy holds and the source no longer has; store the feed's
        position taken before the copy began (None when the server has no feed: every run copies again)."""
        try:
            cursor: str | None = await self.client.events.latest()
        except NotFound:
            cursor = None
            reason = "the server has no /events"
        outcome = Outcome("full" if cursor is not None else "no-feed", reason=reason)
        seen: dict[str, set[str]] = {kind: set() for kind in KINDS}
        complete: dict[str, bool] = dict.fromkeys(KINDS, True)
        batch = _Batch()

        async def flush(force: bool = False) -> None:
            if batch.records and (force or len(batch.records) >= FLUSH_RECORDS):
                outcome.written += await self._write(batch)
                batch.records = []

        self.progress.stage("Copying consumers")
        complete["consumer"] = await self._copy_offset(self.client.consumers.list, "consumer", seen, batch, flush)
        await flush(True)
        self.progress.stage("Copying tags")
        tags = await self._tags()
        seen["tag"].update(str(t.id) for t in tags)
        batch.add(import_record("tag", t) for t in tags)
        self.progress.stage("Copying knowledge sources")
        complete["knowledge_source"] = await self._copy_offset(self.client.knowledge_sources.list,
                                                               "knowledge_source", seen, batch, flush)
        await flush(True)
        self.progress.stage("Copying sessions and their messages")
        vanished_messages: list[str] = []
        async for page in self.client.sessions.list(limit=self.page_size).pages():
            for one in page.data:
                session_id = str(one.id)
                seen["session"].add(session_id)
                messages = [m async for m in self.client.sessions.messages(one.id, include="tool_details",
                                                                           limit=self.page_size)]
                batch.add(_session_records(one))
                batch.add(_message_rows(messages))
                vanished_messages.extend(await self.store.ids("message", session_id) - {m.id for m in messages})
                self.progress.advance(1 + len(messages))
            await flush()
        await flush(True)
        self.progress.stage("Copying ratings")
        complete["feedback"] = await self._copy_offset(self.client.feedback.list, "feedback", seen, batch, flush)
        await flush(True)
        self.progress.stage("Copying memories")
        complete["memory"] = await self._copy_offset(self.client.memories.list, "memory", seen, batch, flush)
        await flush(True)

        self.progress.stage("Deleting what the source no longer has")
        outcome.deleted += await self.store.delete("message", sorted(vanished_messages))
        for kind in ("session", "consumer", "feedback", "memory", "knowledge_source", "tag"):
            vanished = sorted(await self.store.ids(kind) - seen[kind])
            if vanished and not complete[kind]:
                self.progress.note(f"Not deleting {len(vanished)} {kind} records: the list changed while it was "
                                   "read; the next run checks again.")
                continue
            outcome.deleted += await self.store.delete(kind, vanished)
        await self._save(cursor)
        outcome.cursor = cursor
        return outcome

    async def _copy_offset(self, list_call: Callable[..., Any], kind: str, seen: dict[str, set[str]],
                           batch: _Batch, flush: Callable[[], Awaitable[None]]) -> bool:
        """Copy an offset list page by page; whether the walk saw exactly the list's total (a list that moved
        while it was read may have shifted an item past a page)."""
        total: int | None = None
        async for page in list_call(limit=self.page_size).pages():
            total = page.pagination.total
            seen[kind].update(str(item.id) for item in page.data)
            batch.add(import_record(kind, item) for item in page.data)
            self.progress.advance(len(page.data))
            await flush()
        return total is None or total == len(seen[kind])


# What each record type refers to: (kind, field).
_REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "session": (("consumer", "consumer_id"),),
    "message": (("session", "session_id"),),
    "message_tag": (("message", "message_id"), ("tag", "tag_id")),
    "feedback": (("message", "message_id"), ("session", "session_id"), ("consumer", "consumer_id")),
    "memory": (("consumer", "consumer_id"), ("session", "session_id"), ("message", "source_message_id")),
}
_ORDER = {kind: rank for rank, kind in enumerate(
    ("consumer", "tag", "knowledge_source", "session", "message", "message_tag", "feedback", "memory"))}


def _ordered(records: list[Row]) -> list[Row]:
    """Records deduplicated (the last of an id wins) in write order."""
    unique: dict[tuple[str, str], Row] = {}
    for row in records:
        key = (row["type"], f"{row['message_id']}|{row['tag_id']}" if row["type"] == "message_tag" else str(row["id"]))
        unique[key] = row
    return sorted(unique.values(), key=lambda row: _ORDER[row["type"]])

