"""Resumable exports: walk a list page by page through the SDK, append each page to FILE.partial, record a
checkpoint (position, rows, bytes) after it, and give the file its final name only when the walk is done."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chipp_builder.client import ChippError, Client, RateLimited
from chipp_builder.export import rows as R
from chipp_builder.export.writers import CsvSink, JsonlSink, Sink, replace, require_pyarrow, spool_to_parquet

T = TypeVar("T")
State = dict[str, Any]
Batch = tuple[list[R.Row], State]
CHECKPOINT_VERSION = 1
MAX_RATE_LIMIT_WAITS = 50  # consecutive 429s on one page before giving up

RESOURCES = ("sessions", "messages", "consumers", "feedback", "memories", "knowledge-sources", "tags")


class ExportError(ValueError):
    """An export cannot start or continue (a checkpoint that does not match, a shortened partial file)."""


@dataclass
class Fetcher:
    """Runs one request, waiting out 429s visibly: `on_wait(seconds)` before each wait, `on_wait(None)` after."""

    sleep: Callable[[float], None] = time.sleep
    on_wait: Callable[[float | None], None] = lambda seconds: None
    waits: list[float] = field(default_factory=list)
    requests: int = 0  # requests answered so far (429s not counted), for the time estimate

    def __call__(self, request: Callable[[], T]) -> T:
        """The request's result, retried after each 429's Retry-After (at most MAX_RATE_LIMIT_WAITS times)."""
        for _ in range(MAX_RATE_LIMIT_WAITS):
            try:
                result = request()
                self.requests += 1
                return result
            except RateLimited as exc:
                seconds = float(exc.retry_after or 1)
                self.waits.append(seconds)
                self.on_wait(seconds)
                self.sleep(seconds)
                self.on_wait(None)
        return request()


def _page(page: Any) -> tuple[list[Any], Any]:
    """Fetch a Page and return its data and pagination block."""
    return page.data, page.pagination


def _request(list_call: Callable[..., Any], *args: Any, **params: Any) -> Callable[[], tuple[list[Any], Any]]:
    """A request for one page, to hand to the Fetcher (which may send it again after a 429)."""
    return lambda: _page(list_call(*args, **params))


Convert = Callable[[Any], list[R.Row]]


def walk_offset(fetch: Fetcher, list_call: Callable[..., Any], filters: Mapping[str, Any], page_size: int,
                convert: Convert, state: State | None,
                on_total: Callable[[int | None], None] = lambda total: None) -> Iterator[Batch]:
    """An offset list, page by page; the state is the offset of the next page."""
    offset = int((state or {}).get("offset", 0))
    while True:
        data, pagination = fetch(_request(list_call, limit=page_size, offset=offset, **filters))
        on_total(pagination.total)
        offset += len(data)
        more = bool(pagination.has_more and data)
        yield [row for item in data for row in convert(item)], {"offset": offset, "done": not more}
        if not more:
            return


def walk_cursor(fetch: Fetcher, list_call: Callable[..., Any], filters: Mapping[str, Any], page_size: int,
                convert: Convert, state: State | None) -> Iterator[Batch]:
    """A cursor list, page by page; the state is the cursor of the next page."""
    cursor = (state or {}).get("cursor")
    while True:
        params = {"limit": page_size, **filters, **({"cursor": cursor} if cursor else {})}
        data, pagination = fetch(_request(list_call, **params))
        cursor = pagination.next_cursor if pagination.has_more else None
        yield [row for item in data for row in convert(item)], {"cursor": cursor, "done": cursor is None}
        if cursor is None:
            return


def walk_tags(fetch: Fetcher, client: Client, convert: Convert) -> Iterator[Batch]:
    """The app's tags: one unpaginated list."""
    data, _ = fetch(_request(client.tags.list))
    yield [row for item in data for row in convert(item)], {"done": True}


def walk_messages(fetch: Fetcher, client: Client, session_filters: Mapping[str, Any],
                  message_filters: Mapping[str, Any], page_size: int, convert: Convert,
                  state: State | None) -> Iterator[Batch]:
    """Every message of every selected session, session by session (newest session first, each session's
    messages oldest first). The state names the sessions page (its cursor), the session within it (index
    and id, so a page that changed is noticed) and the messages cursor within that session."""
    state = dict(state or {})
    sessions_cursor: str | None = state.get("sessions_cursor")
    index = int(state.get("index", 0))
    wanted_id: str | None = state.get("session_id")
    message_cursor: str | None = state.get("message_cursor")
    while True:
        params = {"limit": page_size, **session_filters, **({"cursor": sessions_cursor} if sessions_cursor else {})}
        sessions, pagination = fetch(_request(client.sessions.list, **params))
        if wanted_id is not None:
            ids = [str(item.id) for item in sessions]
            if index >= len(ids) or ids[index] != wanted_id:
                if wanted_id not in ids:
                    raise ExportError("the sessions changed since the checkpoint (a session it was in is gone): "
                                      "start the export again without --resume")
                index = ids.index(wanted_id)
            wanted_id = None
        next_sessions = pagination.next_cursor if pagination.has_more else None
        while index < len(sessions):
            session_id = sessions[index].id
            while True:
                mparams = {"limit": page_size, **message_filters,
                           **({"cursor": message_cursor} if message_cursor else {})}
                messages, mpage = fetch(_request(client.sessions.messages, session_id, **mparams))
                message_cursor = mpage.next_cursor if mpage.has_more else None
                batch = [row for item in messages for row in convert(item)]
                if message_cursor is not None:
                    yield batch, {"sessions_cursor": sessions_cursor, "index": index, "session_id": str(session_id),
                                  "message_cursor": message_cursor, "done": False}
                    continue
                index += 1
                finished = index >= len(sessions) and next_sessions is None
                after: State
                if index < len(sessions):
                    after = {"sessions_cursor": sessions_cursor, "index": index,
                             "session_id": str(sessions[index].id), "message_cursor": None}
                else:
                    after = {"sessions_cursor": next_sessions, "index": 0, "session_id": None,
                             "message_cursor": None}
                yield batch, {**after, "done": finished}
                break
        if next_sessions is None:
            if not sessions:
                yield [], {"done": True}
            return
        sessions_cursor, index = next_sessions, 0


SESSION_FILTERS = frozenset({"source", "consumer_id", "started_after", "started_before", "search"})


def expected_requests(client: Client, fetch: Fetcher, resource: str, filters: Mapping[str, Any],
                      page_size: int) -> int | None:
    """About how many requests an export will make, where one request can tell: the app's session count
    (analytics usage) for sessions, messages (one request per session) and `export all`; None when it cannot
    (offset lists learn their total from their first page; session filters analytics does not take; a key
    without analytics access)."""
    if resource == "tags":
        return 1
    if resource not in ("sessions", "messages", "all"):
        return None
    session_filters = {k: v for k, v in filters.items() if k in SESSION_FILTERS}
    if set(session_filters) - {"started_after", "started_before"}:
        return None
    try:
        usage = fetch(lambda: client.analytics.usage(**session_filters, group_by="month"))
    except ChippError:
        return None
    sessions = usage.summary.total_sessions
    pages = max(1, math.ceil(sessions / page_size))
    # `all`: consumers, tags, feedback, knowledge sources and memories take at least a page each.
    return {"sessions": pages, "messages": sessions + pages, "all": sessions + 2 * pages + 5}[resource]


def _flat(resource: str) -> Convert:
    return lambda item: [R.flat_row(resource, item)]


def _raw(item: Any) -> list[R.Row]:
    return [R.api_object(item)]


def resource_walk(client: Client, fetch: Fetcher, resource: str, filters: Mapping[str, Any], page_size: int,
                  flat: bool, state: State | None,
                  on_total: Callable[[int | None], None] = lambda total: None) -> Iterator[Batch]:
    """The pages of one resource's export, as flat rows (CSV, Parquet) or API objects (JSON Lines)."""
    convert = _flat(resource) if flat else _raw
    if resource == "messages":
        session_filters = {k: v for k, v in filters.items() if k in SESSION_FILTERS}
        message_filters = {"include": "tool_details",
                           **{k: v for k, v in filters.items() if k not in SESSION_FILTERS}}
        return walk_messages(fetch, client, session_filters, message_filters, page_size, convert, state)
    if resource == "sessions":
        return walk_cursor(fetch, client.sessions.list, filters, page_size, convert, state)
    if resource == "tags":
        return walk_tags(fetch, client, convert)
    lists: dict[str, Callable[..., Any]] = {"consumers": client.consumers.list, "feedback": client.feedback.list,
             "memories": client.memories.list, "knowledge-sources": client.knowledge_sources.list}
    return walk_offset(fetch, lists[resource], filters, page_size, convert, state, on_total)


# `export all`: the stages in order, each a list walked whole, its objects turned into import records.
ALL_STAGES = ("consumers", "sessions", "messages", "tags", "feedback", "knowledge-sources", "memories")
_RECORD_TYPE = {"consumers": "consumer", "sessions": "session", "tags": "tag", "feedback": "feedback",
                "knowledge-sources": "knowledge_source", "memories": "memory"}


def all_walk(client: Client, fetch: Fetcher, page_size: int, state: State | None,
             on_stage: Callable[[str], None] = lambda stage: None) -> Iterator[Batch]:
    """Every record of the app in the import format; the state is the stage and the stage's own state."""
    stage = int((state or {}).get("stage", 0))
    inner: State | None = (state or {}).get("inner")
    while stage < len(ALL_STAGES):
        name = ALL_STAGES[stage]
        on_stage(name)
        if name == "messages":
            convert: Convert = R.message_records
            walk = walk_messages(fetch, client, {}, {"include": "tool_details"}, page_size, convert, inner)
        else:
            record_type = _RECORD_TYPE[name]

            def convert(item: Any, record_type: str = record_type) -> list[R.Row]:
                return [R.import_record(record_type, item)]

            walk = _reconvert(resource_walk(client, fetch, name, {}, page_size, False, inner), convert)
        for batch, st in walk:
            if st.get("done"):
                yield batch, {"stage": stage + 1, "inner": None, "done": stage + 1 >= len(ALL_STAGES)}
            else:
                yield batch, {"stage": stage, "inner": st, "done": False}
        stage, inner = stage + 1, None


def _reconvert(walk: Iterator[Batch], convert: Convert) -> Iterator[Batch]:
    """A walk of API objects (as JSON rows) turned into other rows, e.g. import records."""
    for batch, state in walk:
        yield [row for obj in batch for row in convert(obj)], state


# --- running an export to a file -------------------------------------------------------------------------


def partial_path(output: Path) -> Path:
    """Where rows go until the export is complete: FILE.partial."""
    return output.with_name(output.name + ".partial")


def checkpoint_path(output: Path) -> Path:
    """Where the position of an unfinished export is kept: FILE.checkpoint.json."""
    return output.with_name(output.name + ".checkpoint.json")


def spool_path(output: Path) -> Path:
    """The flat rows of a Parquet export before conversion: FILE.partial.jsonl."""
    return output.with_name(output.name + ".partial.jsonl")


def _write_json_atomically(path: Path, value: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=1))
    os.replace(temporary, path)


@dataclass
class Job:
    """What one export is: the resource (or "all"), format, filters and app; a checkpoint must match it."""

    resource: str
    format: str
    filters: dict[str, Any]
    app_id: str
    output: Path

    def identity(self) -> dict[str, Any]:
        """The fields a checkpoint must agree on for --resume to continue it."""
        return {"resource": self.resource, "format": self.format, "filters": self.filters, "app_id": self.app_id}


@dataclass
class Progress:
    """Callbacks the command line gives the export: rows written so far, and a total when the API says."""

    rows: Callable[[int], None] = lambda rows: None
    total: Callable[[int | None], None] = lambda total: None
    stage: Callable[[str], None] = lambda stage: None
    # Once, when the first page has arrived and the partial file is opened: with the earlier partial export
    # this run replaces (its file and, when its checkpoint says, its rows), or None when it replaces nothing.
    started: Callable[[Earlier | None], None] = lambda replaced: None
    # Before the walk of an export that starts from the beginning: about how many requests it will make.
    expected: Callable[[int | None], None] = lambda requests: None


@dataclass(frozen=True)
class Earlier:
    """A partial export left by an earlier run, which a run without --resume replaces."""

    path: Path
    rows: int | None


def earlier_partial(job: Job) -> Earlier | None:
    """The partial export an earlier run of this output left (its partial file, spool or checkpoint), if any."""
    data = spool_path(job.output) if job.format == "parquet" else partial_path(job.output)
    paths = (checkpoint_path(job.output), partial_path(job.output), spool_path(job.output))
    if not any(path.exists() for path in paths):
        return None
    try:
        rows: int | None = int(json.loads(checkpoint_path(job.output).read_text())["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        rows = None
    return Earlier(data if data.exists() else partial_path(job.output), rows)


def load_checkpoint(job: Job) -> dict[str, Any] | None:
    """The checkpoint of an unfinished export of this job, or None when there is none; ExportError when it is
    another job's or its partial file is missing or shorter than it says."""
    path = checkpoint_path(job.output)
    if not path.exists():
        return None
    checkpoint = json.loads(path.read_text())
    if not isinstance(checkpoint, dict):
        raise ExportError(f"{path} is not an export checkpoint: delete it to start over")
    if checkpoint.get("version") != CHECKPOINT_VERSION or checkpoint.get("job") != job.identity():
        raise ExportError(f"{path} belongs to another export (resource, format, filters or app differ): "
                          "run the same command, or delete it to start over")
    data = spool_path(job.output) if job.format == "parquet" else partial_path(job.output)
    if not data.exists() or data.stat().st_size < int(checkpoint["bytes"]):
        raise ExportError(f"{data} is missing or shorter than its checkpoint says: start over without --resume")
    return checkpoint


def open_sink(job: Job, resume_at: int) -> Sink:
    """The writer for the job's format on its partial file (the spool for Parquet)."""
    if job.format == "csv":
        return CsvSink(partial_path(job.output), R.COLUMNS[job.resource], resume_at)
    if job.format == "parquet":
        return JsonlSink(spool_path(job.output), resume_at)
    return JsonlSink(partial_path(job.output), resume_at)


def run_export(client: Client, job: Job, *, resume: bool = False, page_size: int = 100,
               fetch: Fetcher | None = None, progress: Progress | None = None) -> int:
    """Export a resource (or "all") to job.output, resumably; return the number of rows written.

    Rows are appended to FILE.partial (Parquet: spooled to FILE.partial.jsonl, converted at the end) and
    after every page the checkpoint FILE.checkpoint.json records the position, the row count and the file's
    size. --resume truncates the partial file to that size (dropping rows of a page whose checkpoint was
    never written) and continues from the position, so no row is written twice or skipped. The final name
    appears only when everything is written, by an atomic rename. Without a checkpoint to continue, an
    earlier partial export is replaced only when the first page has arrived (`progress.started` says so).
    """
    fetch = fetch or Fetcher()
    progress = progress or Progress()
    if job.format == "parquet":
        require_pyarrow()
    checkpoint = load_checkpoint(job) if resume else None
    # Without a checkpoint to continue, an earlier partial export is replaced, but only once this run's first
    # page has arrived: interrupted before that (say in its first rate-limit wait), it leaves the earlier
    # partial file and checkpoint as they were, so --resume can still continue them.
    earlier = earlier_partial(job) if checkpoint is None else None
    rows = int(checkpoint["rows"]) if checkpoint else 0
    state: State | None = checkpoint["state"] if checkpoint else None
    progress.rows(rows)
    sink: Sink | None = None

    def start() -> Sink:
        if checkpoint is None:
            checkpoint_path(job.output).unlink(missing_ok=True)
        progress.started(earlier)
        return open_sink(job, int(checkpoint["bytes"]) if checkpoint else 0)

    try:
        if checkpoint is None:
            progress.expected(expected_requests(client, fetch, job.resource, job.filters, page_size))
        if job.resource == "all":
            walk = all_walk(client, fetch, page_size, state, progress.stage)
        else:
            walk = resource_walk(client, fetch, job.resource, job.filters, page_size,
                                 job.format != "jsonl", state, progress.total)
        # A checkpoint of a finished walk (the crash came while converting or renaming): nothing to fetch.
        finished = bool(state and state.get("done"))
        for batch, after in () if finished else walk:
            sink = sink or start()
            sink.write(batch)
            size = sink.flush()
            rows += len(batch)
            _write_json_atomically(checkpoint_path(job.output), {
                "version": CHECKPOINT_VERSION, "job": job.identity(), "state": after, "rows": rows, "bytes": size,
            })
            progress.rows(rows)
        sink = sink or start()
    except BaseException:
        if sink is not None:
            sink.close()
            if not checkpoint_path(job.output).exists():
                # Nothing was checkpointed, so nothing can be resumed: leave no partial file behind.
                partial_path(job.output).unlink(missing_ok=True)
                spool_path(job.output).unlink(missing_ok=True)
        raise
    sink.close()
    if job.format == "parquet":
        spool_to_parquet(spool_path(job.output), partial_path(job.output), R.COLUMNS[job.resource])
    # The checkpoint goes first: a crash after it leaves no checkpoint, so a re-run starts over rather than
    # resuming from files that are no longer there.
    checkpoint_path(job.output).unlink(missing_ok=True)
    replace(partial_path(job.output), job.output)
    spool_path(job.output).unlink(missing_ok=True)
    return rows
