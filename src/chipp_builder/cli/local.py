"""Commands that run the server or write domain data into the local database: `serve`, `import`, `demo`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from chipp_builder.cli.ports import port_problem
from chipp_builder.cli.support import (
    DatabaseUrlOption,
    display_host,
    fail,
    friendly_errors,
    load_settings,
    open_database,
    parse_uuid,
    redact,
    run_with_engine,
    stderr,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from chipp_builder.server.ingest.records import ImportReport

APP_FACTORY = "chipp_builder.server.app:create_app"

HostOption = Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]


def base_url(host: str, port: int) -> str:
    """The server's root URL as a user on this machine opens it."""
    return f"http://{display_host(host)}:{port}"


def require_free_port(host: str, port: int) -> None:
    """Stop with one line, before any work (a demo database, a key), when the server could not listen."""
    problem = port_problem(host, port)
    if problem is not None:
        fail(problem)


def start_server(database_url: str, host: str, port: int, workers: int = 1, access_log: bool = True) -> None:
    """Run uvicorn with the app factory; workers read the database URL from the environment."""
    with friendly_errors():
        import uvicorn

        # Fail here, with one line, rather than in uvicorn's log when the app cannot be imported.
        from chipp_builder.server.app import create_app  # noqa: F401

    os.environ["CHIPP_DATABASE_URL"] = database_url
    typer.echo(f"Serving the Builder API on {base_url(host, port)}: /api/v1/apps/APP_ID/…, and MCP for AI agents "
               "at /mcp (Ctrl+C stops it)")
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        server_header=False,
        proxy_headers=False,
        access_log=access_log,
    )


def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
    database_url: DatabaseUrlOption = None,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log one line per request (never headers).")
    ] = True,
) -> None:
    """Run the API server, after creating or migrating the database's schema."""
    require_free_port(host, port)
    with friendly_errors():
        settings = open_database(database_url)
    start_server(settings.database_url, host, port, workers, access_log)


def _progress(*counter: ProgressColumn) -> Progress:
    """A progress bar on standard error: description, bar, the given counter columns, time left."""
    columns = (TextColumn("{task.description}"), BarColumn(), *counter, TimeRemainingColumn())
    return Progress(*columns, console=stderr())


def import_file_command(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", show_default=False, help="A JSON Lines file: one record a line.")
    ],
    app: Annotated[
        str,
        typer.Option("--app", metavar="APP_ID", show_default=False, help="The app to import into (a UUID)."),
    ],
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Write the valid lines and report the others (default: write nothing)."
        ),
    ] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Import an app's data from a JSON Lines file: all or nothing, unless --skip-invalid."""
    with friendly_errors():
        from chipp_builder.server.ingest.importer import import_file
        from chipp_builder.server.resources.apps.queries import get_app

        app_id = parse_uuid(app, "--app", "an app id")
        if not file.exists():
            fail(f"no such file: {file}")
        if not file.is_file():
            fail(f"not a file: {file}")
        settings = open_database(database_url)
        size = file.stat().st_size

        async def work(engine: AsyncEngine) -> ImportReport:
            async with engine.connect() as db:
                await get_app(db, app_id)  # before reading the file: an unknown app fails at once
            with _progress(DownloadColumn(), TransferSpeedColumn()) as progress:
                # The importer reports bytes read, so the bar's total is the file's size.
                task = progress.add_task(f"Importing {file.name}", total=size)
                report = await import_file(
                    engine, app_id, file, skip_invalid=skip_invalid,
                    progress=lambda done: progress.update(task, completed=done),
                )
                progress.update(task, completed=size)
            return report

        report = run_with_engine(settings, work)
    for line, reason in report.errors:
        typer.echo(f"line {line}: {reason}", err=True)
    if report.errors and not skip_invalid:
        fail(
            f"{len(report.errors)} of {report.lines} lines are invalid, so nothing was written "
            "(fix them, or use --skip-invalid to write the valid lines)"
        )
    typer.echo(f"Read {report.lines} lines from {file} into app {app_id}.")
    for counts in _import_counts(report):
        typer.echo(counts)
    if report.errors:
        typer.echo(f"Skipped {len(report.errors)} invalid lines (listed above).", err=True)


def _import_counts(report: ImportReport) -> list[str]:
    """One line per record type the file held: inserted, updated (changed) and unchanged (not written)."""
    lines = []
    for kind, inserted in report.inserted.items():
        updated, unchanged = report.updated.get(kind, 0), report.unchanged.get(kind, 0)
        if inserted or updated or unchanged:
            lines.append(f"  {kind}: {inserted} inserted, {updated} updated, {unchanged} unchanged")
    if not any(report.written.values()):
        lines.append("Nothing was written: " + ("the app already held every record as the file has it."
                                                 if lines else "the file holds no valid record."))
    return lines


def delete_sqlite_database(database_url: str) -> None:
    """Delete an SQLite database file and its WAL and shared-memory files (`demo --fresh`)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    path = url.database or ""
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        fail(f"--fresh deletes an SQLite database file, and {redact(database_url)} is not one")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(path + suffix).unlink(missing_ok=True)


def demo(
    sessions: Annotated[
        int, typer.Option("--sessions", min=1, help="How many sessions to make (the rest scales with it).")
    ] = 200,
    seed: Annotated[
        int | None, typer.Option("--seed", show_default=False, help="Random seed: the same data every time.")
    ] = None,
    and_serve: Annotated[
        bool, typer.Option("--serve", help="Then run the API server on --host and --port.")
    ] = False,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="First delete the SQLite database file, so the demo app is its only "
                           "app (what make demo does; after the port check, so a busy port deletes nothing).")
    ] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Fill the database with a realistic demo app, create a read key, and print how to query it."""
    if and_serve:
        # Before anything is written: a busy port must not cost a database, nor print a key for another server.
        require_free_port(host, port)
    with friendly_errors():
        from chipp_builder.server.ingest.demo import generate_demo
        from chipp_builder.server.resources.apps.queries import create_key

        if fresh:
            delete_sqlite_database(load_settings(database_url).database_url)
        settings = open_database(database_url)
        with _progress(MofNCompleteColumn()) as progress:
            task = progress.add_task("Generating demo sessions", total=sessions)

            async def work(engine: AsyncEngine) -> tuple[UUID, dict[str, Any]]:
                app_id = await generate_demo(
                    engine, sessions=sessions, seed=seed,
                    progress=lambda done: progress.update(task, completed=done),
                )
                async with engine.begin() as db:
                    return app_id, await create_key(db, app_id, "Demo key")

            app_id, key = run_with_engine(settings, work)
            progress.update(task, completed=sessions)
    server_url = base_url(host, port)
    app_url = f"{server_url}/api/v1/apps/{app_id}"
    # Two URLs, named for where they go: the SDK and `export` want the server's root (and the app id), curl
    # wants the app's URL. Calling both "base URL" sent the app URL to --base-url and got "Not found".
    typer.echo(f"App id:     {app_id}")
    typer.echo(f"API key:    {key['rawKey']}  (read access to everything; shown only now)")
    typer.echo(f"Server URL: {server_url}  (for --base-url, CHIPP_BASE_URL and Client(base_url=))")
    typer.echo(f"App URL:    {app_url}  (for curl; --base-url takes it too)")
    typer.echo(f"MCP URL:    {server_url}/mcp  (for AI agents, with the key; docs/mcp.md)")
    typer.echo("Try:")
    typer.echo(f'  curl -H "Authorization: Bearer {key["rawKey"]}" {app_url}/sessions')
    if and_serve:
        start_server(settings.database_url, host, port)
