"""`chipp-builder mirror`: keep a local chipp-builder database equal to a remote app (docs/sync.md). Reads the
remote app through the SDK (the same --base-url, --key and --app as export), writes the copy through the
server's import and deletes; a progress bar on standard error, a summary on standard output."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.progress import Progress as Bar
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

from chipp_builder.cli.export import CLI_NAMES, AppOption, BaseUrlOption, KeyOption
from chipp_builder.cli.support import DatabaseUrlOption, friendly_errors, open_database, redact, stderr
from chipp_builder.client import AsyncClient, CursorExpired, RateLimited, RetryPolicy, ServerError, TransportError
from chipp_builder.client._config import ClientConfig, resolve_config
from chipp_builder.export.mirror import Mirror, Outcome, Progress

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

# A mirror runs for long: it waits out the rate limit (up to a minute each time) rather than stopping.
RETRY = RetryPolicy(max_retries=8, max_retry_after=61)
TIMEOUT = 30.0


def make_client(config: ClientConfig, http: httpx.AsyncClient, sleep: Callable[[float], Awaitable[None]]
                ) -> AsyncClient:
    """The SDK client of a mirror, on `http` (which the caller closes); a seam for tests."""
    return AsyncClient(config.base_url, config.api_key, config.app_id, retry=RETRY, http_client=http, sleep=sleep)


def _summary(outcome: Outcome, requests: int) -> str:
    if outcome.mode == "feed":
        what = f"applied {outcome.events:,} events"
    elif outcome.mode == "full":
        what = f"copied everything ({outcome.reason})"
    else:
        what = "copied everything (the server has no /events, so every run copies again)"
    return (f"{what}: {outcome.written:,} rows written, {outcome.deleted:,} deleted, {requests:,} requests"
            + ("; position stored." if outcome.cursor else "."))


def mirror(
    database_url: DatabaseUrlOption = None,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
    app: AppOption = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep the copy current with long polls until Ctrl+C.")]
    = False,
    wait: Annotated[int, typer.Option("--wait", min=1, max=30, help="Seconds each long poll of --follow waits.")]
    = 25,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=100, help="Items per API request.")] = 100,
) -> None:
    """Keep a local database equal to a remote app: a full copy the first time, then only what changed."""
    with friendly_errors():
        config = resolve_config(base_url, key, app, names=CLI_NAMES)
        settings = open_database(database_url)
        target = redact(settings.database_url)
        asyncio.run(_run(config, settings.database_url, target, follow, wait, page_size))


async def _run(config: ClientConfig, database_url: str, target: str, follow: bool, wait: int,
               page_size: int) -> None:
    from chipp_builder.server.db.engine import make_engine
    from chipp_builder.server.ingest.mirror import CopyDatabase

    requests = [0]

    async def count(response: httpx.Response) -> None:
        requests[0] += 1

    engine = make_engine(database_url)
    console = stderr()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,.0f} objects"),
               TimeElapsedColumn())
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, event_hooks={"response": [count]}) as http:
            with Bar(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
                task = bar.add_task("Starting", total=None)
                label = {"text": "Starting"}

                async def sleep(seconds: float) -> None:
                    # The SDK's retry wait (429 or a server error), shown counting down on the bar.
                    remaining = seconds
                    while remaining > 0:
                        bar.update(task, description=f"{label['text']} (waiting {math.ceil(remaining)} s: "
                                   "rate limited or the server failed)")
                        step = min(1.0, remaining)
                        await asyncio.sleep(step)
                        remaining -= step
                    bar.update(task, description=label["text"])

                def stage(text: str) -> None:
                    label["text"] = text
                    bar.update(task, description=text)

                progress = Progress(stage=stage, advance=lambda n: bar.advance(task, n),
                                    note=lambda text: bar.console.print(text, soft_wrap=True))
                client = make_client(config, http, sleep)
                store = CopyDatabase(engine, config.app_id)
                state = await store.prepare(config.base_url)
                job = Mirror(client, store, config.base_url, page_size=page_size, progress=progress)
                outcome = await job.run(state)
            typer.echo(f"Mirrored app {config.app_id} into {target}: {_summary(outcome, requests[0])}")
            if follow:
                await _follow(job, outcome, wait, requests)
    finally:
        await engine.dispose()


@dataclass
class _Following:
    """Where a follower is: the stored cursor, the events of the current follow, failures in a row."""

    cursor: str
    events: int = 0
    failures: int = 0


# Waits before following again after the SDK's own retries gave up (the server restarting, say): a follower is
# meant to outlast such outages.
OUTAGE_WAITS = (5.0, 10.0, 30.0, 60.0)


async def _follow(job: Mirror, outcome: Outcome, wait: int, requests: list[int]) -> None:
    """Long-poll the feed until Ctrl+C, printing a line per applied batch; outages are waited out and an
    expired position copies everything again, so only Ctrl+C stops it."""
    if outcome.cursor is None:
        raise ValueError("--follow needs the server's event feed (/events), which this server does not have; "
                         "run the mirror on a schedule instead")
    typer.echo(f"Following the feed (long polls of {wait} s); Ctrl+C stops, and the next run continues.")
    job.progress = Progress(note=lambda text: typer.echo(text, err=True))
    now = _Following(str(outcome.cursor))

    def on_batch(batch: Outcome) -> None:
        now.cursor, now.failures = str(batch.cursor), 0
        if batch.events != now.events:
            typer.echo(f"Applied {batch.events - now.events:,} events ({requests[0]:,} requests so far).")
            now.events = batch.events

    try:
        while True:
            now.events = 0
            try:
                await job.follow(now.cursor, wait=wait, on_batch=on_batch)
            except CursorExpired:
                typer.echo("The position expired while following: copying everything again.", err=True)
                copied = await job.full_copy("the position expired while following")
                if copied.cursor is None:
                    raise ValueError("the server no longer has /events: --follow cannot go on") from None
                now.cursor = copied.cursor
            except (TransportError, ServerError, RateLimited) as exc:
                pause = OUTAGE_WAITS[min(now.failures, len(OUTAGE_WAITS) - 1)]
                now.failures += 1
                typer.echo(f"{exc.message}; following again in {pause:.0f} s.", err=True)
                await asyncio.sleep(pause)
    except asyncio.CancelledError:
        typer.echo("Stopped: the copy is current up to the stored position.")
