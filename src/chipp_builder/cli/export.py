"""`chipp-builder export …`: an app's data to CSV, JSON Lines or Parquet through the SDK (remote: needs only
a base URL, a key and an app id), with a progress bar, visible rate-limit waits and --resume."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from chipp_builder.cli.help import App
from chipp_builder.cli.support import fail, friendly_errors, stderr
from chipp_builder.client import Client, RetryPolicy
from chipp_builder.client._config import SettingNames, resolve_config
from chipp_builder.client._sync import DEFAULT_TIMEOUT
from chipp_builder.export import runner

export_app = App(
    help="Export an app's data through the API: one list to CSV, JSON Lines or Parquet, or everything "
    "(`export all`) in the import format.",
    no_args_is_help=True,
)

# Seams for tests: how the command gets its client, and how it waits out a 429.
sleep = time.sleep


# The settings as this command names them, so a missing or bad one is reported in the command's words.
CLI_NAMES = SettingNames(base_url="--base-url", api_key="--key", app_id="--app")


def make_client(base_url: str | None, key: str | None, app: str | None, http: httpx.Client) -> Client:
    """The SDK client of an export, on `http` (which the caller closes). 429s are not retried inside the SDK
    (max_retry_after=0) but raised, so the command can show the wait on its progress bar before retrying the
    page itself."""
    config = resolve_config(base_url, key, app, names=CLI_NAMES)
    return Client(config.base_url, config.api_key, config.app_id, retry=RetryPolicy(max_retry_after=0),
                  http_client=http)


WINDOW_SECONDS = 60  # the server's rate limit counts requests per key in one-minute windows


@dataclass
class Pace:
    """What the time estimate knows: the requests the export is expected to make, and the server's rate limit
    as its X-RateLimit-* headers last said (requests per window, left in this window, when it resets)."""

    expected: int | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None

    def observe(self, response: httpx.Response) -> None:
        """Note the rate-limit headers of a response (a 429 carries none, and changes nothing)."""
        headers = response.headers
        try:
            limit, remaining = int(headers["X-RateLimit-Limit"]), int(headers["X-RateLimit-Remaining"])
            reset_at = float(headers["X-RateLimit-Reset"])
        except (KeyError, ValueError):
            return
        self.limit, self.remaining, self.reset_at = limit, remaining, reset_at

    def seconds_left(self, requests_left: int, done: int, elapsed: float, now: float) -> float | None:
        """About how long `requests_left` more requests take: at the pace so far, and no sooner than the
        rate limit lets them through (each further window admits `limit` requests)."""
        if done <= 0:
            return None
        estimate = requests_left * elapsed / done
        if self.limit and self.remaining is not None and self.reset_at is not None \
                and requests_left > self.remaining:
            windows = math.ceil((requests_left - self.remaining) / self.limit)
            estimate = max(estimate, max(self.reset_at - now, 0.0) + (windows - 1) * WINDOW_SECONDS)
        return estimate


class Format(StrEnum):
    """Output formats of a single-list export."""

    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


OutputOption = Annotated[
    Path, typer.Option("--output", "-o", metavar="FILE", show_default=False, help="The file to write.")
]
FormatOption = Annotated[
    Format | None,
    typer.Option("--format", show_default=False,
                 help="csv, jsonl or parquet. Default: from FILE's extension (.csv, .jsonl or .ndjson, .parquet)."),
]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted export from FILE.checkpoint.json.")
]
PageSizeOption = Annotated[int, typer.Option("--page-size", min=1, max=100, help="Items per API request.")]
BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", metavar="URL", show_default=False,
                 help="The server's root (http://localhost:8000), or an app's URL "
                 "(http://localhost:8000/api/v1/apps/APP_ID, which gives --app too). Default: $CHIPP_BASE_URL."),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", metavar="KEY", show_default=False, help="An API key (chipp_…). Default: $CHIPP_API_KEY."),
]
AppOption = Annotated[
    str | None,
    typer.Option("--app", metavar="APP_ID", show_default=False,
                 help="The app's id. Default: $CHIPP_APP_ID, else the app of an app URL in --base-url."),
]


def _filter(name: str, help_text: str, metavar: str = "TEXT") -> Any:
    return typer.Option(name, metavar=metavar, show_default=False, help=help_text)


SourceOption = Annotated[str | None, _filter("--source", "Sessions from this source (APP, API, WIDGET, …).",
                                             "SOURCE")]
ConsumerIdOption = Annotated[str | None, _filter("--consumer-id", "Only this consumer's.", "UUID")]
StartedAfterOption = Annotated[str | None, _filter("--started-after", "Sessions started after this time.", "TIME")]
StartedBeforeOption = Annotated[str | None, _filter("--started-before", "Sessions started before this time.",
                                                    "TIME")]
SearchOption = Annotated[str | None, _filter("--search", "Case-insensitive substring (sessions: of the title).")]
CreatedAfterOption = Annotated[str | None, _filter("--created-after", "Created after this time.", "TIME")]
CreatedBeforeOption = Annotated[str | None, _filter("--created-before", "Created before this time.", "TIME")]


class RowsColumn(ProgressColumn):
    """Rows written, out of the total when the API gives one."""

    def render(self, task: Task) -> Text:
        """`1,234 rows` or `1,234/5,000 rows`."""
        done = int(task.completed)
        return Text(f"{done:,}/{int(task.total):,} rows" if task.total else f"{done:,} rows")


class TimeLeftColumn(ProgressColumn):
    """About how long the export has left, from the requests it still has to make (expected from the session
    count, or from an offset list's total) and the rate limit; `-:--:--` while unknown."""

    def __init__(self, pace: Pace, fetch: runner.Fetcher, page_size: int) -> None:
        super().__init__()
        self.pace, self.fetch, self.page_size = pace, fetch, page_size

    def render(self, task: Task) -> Text:
        """`~0:01:30 left`."""
        done = self.fetch.requests
        if self.pace.expected is not None:
            left: int | None = max(self.pace.expected - done, 0)
        elif task.total:
            left = math.ceil(max(task.total - task.completed, 0) / self.page_size)
        else:
            left = None
        seconds = None if left is None else self.pace.seconds_left(left, done, task.elapsed or 0.0, time.time())
        if seconds is None:
            return Text("-:--:-- left")
        return Text(f"~{timedelta(seconds=math.ceil(seconds))} left")


class RateColumn(ProgressColumn):
    """Rows per second."""

    def render(self, task: Task) -> Text:
        """`250 rows/s`, or `- rows/s` before there is a rate."""
        speed = task.speed
        return Text(f"{speed:,.0f} rows/s" if speed is not None else "- rows/s")


# The extensions each format's files may have; anything else needs an explicit --format.
EXTENSIONS = {"csv": (".csv",), "jsonl": (".jsonl", ".ndjson"), "parquet": (".parquet",)}


def _accepted() -> str:
    return ", ".join(f"{ext} ({fmt})" for fmt, exts in EXTENSIONS.items() for ext in exts)


def _format_of(output: Path, given: Format | None) -> str:
    """The format to write: --format when given (with a note when FILE's extension says otherwise), else the
    one FILE's extension names; an extension of no format, without --format, is refused rather than guessed."""
    suffix = output.suffix.lower()
    by_extension = next((fmt for fmt, exts in EXTENSIONS.items() if suffix in exts), None)
    if given is None:
        if by_extension is None:
            fail(f"cannot tell the format from {output.name!r}: name the file with one of {_accepted()}, "
                 "or give --format csv, jsonl or parquet")
        return by_extension
    if by_extension is not None and by_extension != given.value:
        fail(f"{output.name} has the extension of {by_extension} but --format is {given.value}: "
             f"name the file {output.stem}{EXTENSIONS[given.value][0]}, or leave out --format")
    if by_extension is None:
        typer.echo(f"Writing {given.value} to {output.name}, as --format says (its extension is not one of "
                   f"{', '.join(EXTENSIONS[given.value])}).", err=True)
    return given.value


def _jsonl_only(output: Path) -> str:
    """`export all` writes JSON Lines (the import format) only: FILE must be named for it."""
    if output.suffix.lower() not in EXTENSIONS["jsonl"]:
        fail(f"export all writes JSON Lines (the import format), so its file must end in "
             f"{' or '.join(EXTENSIONS['jsonl'])}, not {output.name!r}: e.g. -o {output.stem}.jsonl")
    return "jsonl"


def _stopped_note(output: Path, fmt: str, *, began: bool) -> str | None:
    """What an export that stopped leaves to resume, and how; None when it leaves nothing (the one Error line
    then says all there is)."""
    checkpoint = runner.checkpoint_path(output)
    data = runner.spool_path(output) if fmt == "parquet" else runner.partial_path(output)
    if not checkpoint.exists():
        return None
    if not began:
        return (f"The export stopped before its first page arrived, so the earlier partial export in {data.name} "
                f"and {checkpoint.name} is untouched: run the same command with --resume to continue it.")
    return (f"The export stopped; what it wrote is kept in {data.name} with {checkpoint.name}: run the same "
            "command with --resume to continue.")


def run(resource: str, fmt: str, output: Path, filters: dict[str, Any], resume: bool, page_size: int,
        base_url: str | None, key: str | None, app: str | None) -> None:
    """Run one export with a progress bar on standard error; print the summary on standard output."""
    with friendly_errors():
        chosen = {name: value for name, value in filters.items() if value is not None}
        if fmt == "parquet":
            from chipp_builder.export.writers import require_pyarrow

            require_pyarrow()
        if not output.parent.is_dir():
            raise ValueError(f"the folder {output.parent} does not exist")
        pace = Pace()
        http = httpx.Client(timeout=DEFAULT_TIMEOUT, event_hooks={"response": [pace.observe]})
        client = make_client(base_url, key, app, http)
        job = runner.Job(resource, fmt, chosen, str(client.config.app_id), output)
        label = "Exporting everything" if resource == "all" else f"Exporting {resource}"
        began: list[bool] = []  # whether the first page arrived (and the partial file was opened)
        fetch = runner.Fetcher()
        columns = (TextColumn("{task.description}"), BarColumn(), RowsColumn(), RateColumn(), TimeElapsedColumn(),
                   TimeLeftColumn(pace, fetch, page_size))
        try:
            # Transient: the bar disappears when done, leaving the summary (or the one Error line); off when
            # standard error is not a terminal (a log file gets the notes, not bar frames).
            console = stderr()
            with http, client, Progress(*columns, console=console, transient=True,
                                        disable=not console.is_terminal) as bar:
                task = bar.add_task(label, total=None)
                current = {"label": label}

                def on_wait(seconds: float | None) -> None:
                    if seconds is None:
                        bar.update(task, description=current["label"])
                        return
                    message = f"Rate limited by the server: waiting {seconds:.0f} s before retrying"
                    bar.console.print(message)
                    bar.update(task, description=f"{current['label']} (rate limited: waiting {seconds:.0f} s)")

                def on_stage(stage: str) -> None:
                    current["label"] = f"Exporting everything: {stage}"
                    bar.update(task, description=current["label"])

                def on_started(replaced: runner.Earlier | None) -> None:
                    began.append(True)
                    if replaced is not None:
                        count = f" ({replaced.rows:,} rows)" if replaced.rows is not None else ""
                        bar.console.print(f"Starting over (no --resume): the earlier partial export "
                                          f"{replaced.path.name}{count} is replaced by this run.", soft_wrap=True)

                progress = runner.Progress(
                    rows=lambda rows: bar.update(task, completed=rows),
                    total=lambda total: bar.update(task, total=total),
                    stage=on_stage,
                    started=on_started,
                    expected=lambda requests: setattr(pace, "expected", requests),
                )
                def count_down(seconds: float) -> None:
                    # The wait in one-second steps, so the bar shows the seconds left rather than a frozen line.
                    remaining = seconds
                    while remaining > 0:
                        left = math.ceil(remaining)
                        bar.update(task, description=f"{current['label']} (rate limited: waiting {left} s)")
                        step = min(1.0, remaining)
                        sleep(step)
                        remaining -= step

                fetch.sleep, fetch.on_wait = count_down, on_wait
                rows = runner.run_export(client, job, resume=resume, page_size=page_size, fetch=fetch,
                                         progress=progress)
        except runner.ExportError:
            raise  # refused or cannot go on (another export's checkpoint, a changed list): the error says why
        except BaseException:
            note = _stopped_note(output, fmt, began=bool(began))
            if note:
                typer.echo(note, err=True)
            raise
    typer.echo(f"Exported {rows} {'records' if resource == 'all' else 'rows'} to {output} ({fmt}).")


@export_app.command("sessions")
def export_sessions(
    output: OutputOption, fmt: FormatOption = None, source: SourceOption = None,
    consumer_id: ConsumerIdOption = None, started_after: StartedAfterOption = None,
    started_before: StartedBeforeOption = None, search: SearchOption = None, resume: ResumeOption = False,
    page_size: PageSizeOption = 100, base_url: BaseUrlOption = None, key: KeyOption = None, app: AppOption = None,
) -> None:
    """Export sessions, newest first, one row each (consumer email and name as columns)."""
    filters = {"source": source, "consumer_id": consumer_id, "started_after": started_after,
               "started_before": started_before, "search": search}
    run("sessions", _format_of(output, fmt), output, filters, resume, page_size, base_url, key, app)


@export_app.command("messages")
def export_messages(
    output: OutputOption, fmt: FormatOption = None, source: SourceOption = None,
    consumer_id: ConsumerIdOption = None, started_after: StartedAfterOption = None,
    started_before: StartedBeforeOption = None, search: SearchOption = None,
    role: Annotated[str | None, _filter("--role", "Only messages of this role (user, assistant, system, tool).",
                                        "ROLE")] = None,
    created_after: CreatedAfterOption = None, created_before: CreatedBeforeOption = None,
    resume: ResumeOption = False, page_size: PageSizeOption = 100, base_url: BaseUrlOption = None,
    key: KeyOption = None, app: AppOption = None,
) -> None:
    """Export the messages of every session (or those the session filters select), with tool details."""
    filters = {"source": source, "consumer_id": consumer_id, "started_after": started_after,
               "started_before": started_before, "search": search, "role": role,
               "created_after": created_after, "created_before": created_before}
    run("messages", _format_of(output, fmt), output, filters, resume, page_size, base_url, key, app)


@export_app.command("consumers")
def export_consumers(
    output: OutputOption, fmt: FormatOption = None,
    search: Annotated[str | None, _filter("--search", "Case-insensitive substring of name, email or identifier.")]
    = None,
    has_email: Annotated[bool | None, typer.Option("--has-email/--no-email", show_default=False,
                                                   help="Only consumers with (or without) an email.")] = None,
    created_after: CreatedAfterOption = None, created_before: CreatedBeforeOption = None,
    resume: ResumeOption = False, page_size: PageSizeOption = 100, base_url: BaseUrlOption = None,
    key: KeyOption = None, app: AppOption = None,
) -> None:
    """Export consumers, newest first."""
    filters = {"search": search, "has_email": has_email, "created_after": created_after,
               "created_before": created_before}
    run("consumers", _format_of(output, fmt), output, filters, resume, page_size, base_url, key, app)


@export_app.command("feedback")
def export_feedback(
    output: OutputOption, fmt: FormatOption = None,
    rating: Annotated[int | None, typer.Option("--rating", min=-1, max=1, show_default=False,
                                               help="Only this rating: -1, 0 or 1.")] = None,
    session_id: Annotated[str | None, _filter("--session-id", "Only this session's ratings.", "UUID")] = None,
    created_after: CreatedAfterOption = None, created_before: CreatedBeforeOption = None,
    resume: ResumeOption = False, page_size: PageSizeOption = 100, base_url: BaseUrlOption = None,
    key: KeyOption = None, app: AppOption = None,
) -> None:
    """Export feedback (ratings of messages), newest first."""
    filters = {"rating": rating, "session_id": session_id, "created_after": created_after,
               "created_before": created_before}
    run("feedback", _format_of(output, fmt), output, filters, resume, page_size, base_url, key, app)


@export_app.command("memories")
def export_memories(
    output: OutputOption, fmt: FormatOption = None, consumer_id: ConsumerIdOption = None,
    memory_type: Annotated[str | None, _filter("--memory-type", "preference, background, fact, insight, "
                                               "topic or query.", "TYPE")] = None,
    memory_layer: Annotated[str | None, _filter("--memory-layer", "episodic or fact.", "LAYER")] = None,
    resume: ResumeOption = False, page_size: PageSizeOption = 100, base_url: BaseUrlOption = None,
    key: KeyOption = None, app: AppOption = None,
) -> None:
    """Export memories, newest first."""
    filters = {"consumer_id": consumer_id, "memory_type": memory_type, "memory_layer": memory_layer}
    run("memories", _format_of(output, fmt), output, filters, resume, page_size, base_url, key, app)


@export_app.command("knowledge-sources")
def export_knowledge_sources(
    output: OutputOption, fmt: FormatOption = None,
    status: Annotated[str | None, _filter("--status", "pending, processing, completed, failed or deleting.",
                                          "STATUS")] = None,
    source_type: Annotated[str | None, _filter("--type", "file, url, google_drive, notion, text, qa, sitemap, "
                                               "youtube or confluence.", "TYPE")] = None,
    resume: ResumeOption = False, page_size: PageSizeOption = 100, base_url: BaseUrlOption = None,
    key: KeyOption = None, app: AppOption = None,
) -> None:
    """Export knowledge sources, newest first."""
    filters = {"status": status, "type": source_type}
    run("knowledge-sources", _format_of(output, fmt), output, filters, resume, page_size, base_url, key, app)


@export_app.command("tags")
def export_tags(
    output: OutputOption, fmt: FormatOption = None, resume: ResumeOption = False, page_size: PageSizeOption = 100,
    base_url: BaseUrlOption = None, key: KeyOption = None, app: AppOption = None,
) -> None:
    """Export the app's tags, oldest first."""
    run("tags", _format_of(output, fmt), output, {}, resume, page_size, base_url, key, app)


@export_app.command("all")
def export_all(
    output: OutputOption, resume: ResumeOption = False, page_size: PageSizeOption = 100,
    base_url: BaseUrlOption = None, key: KeyOption = None, app: AppOption = None,
) -> None:
    """Export every record of the app as JSON Lines in the import format, for `chipp-builder import`."""
    run("all", _jsonl_only(output), output, {}, resume, page_size, base_url, key, app)
