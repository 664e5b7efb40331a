"""What every local command shares: settings, the database, async work, output, and one-line errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar
from uuid import UUID

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from chipp_builder.server.config import Settings

T = TypeVar("T")

# The package is not on PyPI: what works is installing the extra from the clone.
SERVER_EXTRA_HINT = "from a clone, .venv/bin/pip install -e '.[server]'"

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        show_default=False,
        help="sqlite:///PATH or postgresql://USER@HOST:PORT/DB. "
        "Default: $CHIPP_DATABASE_URL, else sqlite:///chipp-builder.db in the working folder.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text, for scripts.")]


@dataclass
class CliState:
    """Flags given before the command (`chipp-builder --debug …`), and the database the command uses."""

    debug: bool = False
    database_url: str | None = None


state = CliState()


def stdout() -> Console:
    """A Rich console on standard output (tables); piped output is never cut to 80 columns."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=1000)


def table(*columns: str) -> Table:
    """A Rich table whose cells fold rather than end in `…`, so ids and keys' prefixes stay whole."""
    result = Table()
    for column in columns:
        result.add_column(column, overflow="fold", no_wrap=column == "id")
    return result


def stderr() -> Console:
    """A Rich console on standard error (progress bars), so standard output stays clean for scripts."""
    return Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one `Error: …` line to standard error and exit non-zero."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def redact(database_url: str) -> str:
    """A database URL safe to print: its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:
        return database_url


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__


def describe(exc: BaseException, database_url: str | None = None) -> str:
    """The one line a user should read for an error a command ran into."""
    from chipp_builder.errors import ChippError

    if isinstance(exc, ChippError):
        return exc.message
    if isinstance(exc, ModuleNotFoundError):
        if (exc.name or "").startswith("chipp_builder"):
            return f"this command needs {exc.name}, which this installation does not have"
        return f"this command needs the server's dependencies ({exc.name} is missing): {SERVER_EXTRA_HINT}"
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"CHIPP_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        return f"invalid configuration: {problems}"
    where = f" {redact(database_url)}" if database_url else ""
    try:
        from alembic.util import CommandError
        from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
    except ModuleNotFoundError:
        pass
    else:
        if isinstance(exc, ArgumentError):
            return f"invalid database URL{where}: {_first_line(exc)}"
        from chipp_builder.server.db.engine import is_disk_full

        if is_disk_full(exc):
            # The command's transaction was rolled back with the error.
            reason = _first_line(getattr(exc, "orig", exc))
            return f"the database{where} is out of storage ({reason}); nothing was written"
        if isinstance(exc, OperationalError | InterfaceError):
            return f"cannot use the database{where}: {_first_line(exc.orig)}"
        if isinstance(exc, DBAPIError):
            return f"database error from{where}: {_first_line(exc.orig)}"
        if isinstance(exc, CommandError):
            return f"cannot migrate the database{where}: {_first_line(exc)}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or _first_line(exc)}: {exc.filename}"
    if isinstance(exc, OSError) or type(exc).__module__.startswith("asyncpg"):
        return f"cannot reach the database{where}: {_first_line(exc)}"
    if isinstance(exc, ValueError):
        return _first_line(exc)
    name = type(exc).__name__
    return f"unexpected {name}: {_first_line(exc)} (`chipp-builder --debug …` shows the traceback)"


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn any error inside into one `Error: …` line and exit 1 (the traceback only with --debug)."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        if state.debug:
            raise
        fail(describe(exc, state.database_url))


def load_settings(database_url: str | None) -> Settings:
    """The server's Settings (environment, CHIPP_ prefix), with --database-url winning when given."""
    from chipp_builder.server.config import Settings

    settings = Settings(database_url=database_url) if database_url else Settings()
    state.database_url = settings.database_url
    return settings


def open_database(database_url: str | None) -> Settings:
    """Load the settings and create or migrate the database's schema to the latest revision."""
    from chipp_builder.server.db.migrate import upgrade

    settings = load_settings(database_url)
    _check_sqlite_folder(settings.database_url)
    upgrade(settings.database_url)
    return settings


def _check_sqlite_folder(database_url: str) -> None:
    """SQLite creates its file but not the folders above it: say so plainly instead of `unable to open`."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    path = url.database or ""
    if url.get_backend_name() == "sqlite" and path and path != ":memory:" and not path.startswith("file:"):
        folder = Path(path).parent
        if not folder.is_dir():
            fail(f"cannot use the database {redact(database_url)}: the folder {folder} does not exist")


def run_with_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run async work with an engine for the settings' database, disposed of afterwards."""
    from chipp_builder.server.db.engine import make_engine

    async def go() -> T:
        engine = make_engine(settings.database_url, timeout_seconds=settings.db_timeout_seconds)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def in_transaction(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run async work in one committed transaction on the settings' database."""

    async def go(engine: AsyncEngine) -> T:
        async with engine.begin() as db:
            return await work(db)

    return run_with_engine(settings, go)


def parse_uuid(text: str, option: str, what: str) -> UUID:
    """A UUID from a command-line value, or a one-line error naming the option."""
    try:
        return UUID(text.strip())
    except ValueError:
        fail(f"{option} must be {what} (a UUID such as 123e4567-e89b-12d3-a456-426614174000), got {text!r}")


def print_json(value: Any) -> None:
    """Print a pydantic model, or a list of them, as indented JSON on standard output."""
    if isinstance(value, list):
        payload: Any = [item.model_dump(mode="json") for item in value]
    else:
        payload = value.model_dump(mode="json")
    typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def short_time(value: datetime | None) -> str:
    """A timestamp for a table: the API's UTC form, to the second; `-` when absent."""
    if value is None:
        return "-"
    from chipp_builder.schemas.common import format_timestamp

    return format_timestamp(value.replace(microsecond=0))


def display_host(host: str) -> str:
    """The host to put in a URL a user can open: loopback for the any-address, IPv6 in brackets."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
