"""Commands that delete on the local database directly: `sessions delete` and `consumers erase` (SPEC section 11),
through the same write seam as the HTTP deletes, so counters, rollups and the event feed move with them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from chipp_builder.cli.help import App
from chipp_builder.cli.support import (
    DatabaseUrlOption,
    JsonOption,
    fail,
    friendly_errors,
    open_database,
    parse_uuid,
    run_with_engine,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from chipp_builder.server.writes.deletes import Removed

sessions_app = App(help="Delete a session with its messages and ratings.", no_args_is_help=True)
consumers_app = App(help="Erase a person (a consumer) and everything theirs.", no_args_is_help=True)

AppOption = Annotated[
    str, typer.Option("--app", metavar="APP_ID", show_default=False, help="The app's id (a UUID).")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation on a terminal.")]


def _confirm(question: str, yes: bool) -> None:
    """Ask on an interactive terminal unless --yes; scripts (no terminal) are not asked."""
    import sys

    if not yes and sys.stdin.isatty() and not typer.confirm(question, default=False):
        fail("nothing was deleted", code=1)


def _run(database_url: str | None, app_id: UUID, what: str, object_id: UUID) -> Removed | None:
    """Delete a session (`what` = "session") or erase a consumer in one transaction on the database."""
    from chipp_builder.server.db.engine import checkpoint_wal
    from chipp_builder.server.db.writelock import begin_immediate
    from chipp_builder.server.resources.apps.queries import get_app
    from chipp_builder.server.writes import deletes

    settings = open_database(database_url)

    async def work(engine: AsyncEngine) -> Removed | None:
        async with engine.begin() as db:
            await begin_immediate(db)
            await get_app(db, app_id)
            if what == "session":
                return await deletes.delete_session(db, app_id, object_id)
            removed = await deletes.erase_consumer(db, app_id, object_id)
        if removed is not None:
            await checkpoint_wal(engine)
        return removed

    return run_with_engine(settings, work)


@sessions_app.command("delete")
def sessions_delete(
    session_id: Annotated[str, typer.Argument(metavar="SESSION_ID", help="The session's id (a UUID).")],
    app: AppOption,
    yes: YesOption = False,
    json_output: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Delete a session with its messages, their tool details and tag links, and their feedback."""
    with friendly_errors():
        app_id = parse_uuid(app, "--app", "an app id")
        sid = parse_uuid(session_id, "SESSION_ID", "a session id")
        _confirm(f"Delete session {sid} and its messages and ratings?", yes)
        removed = _run(database_url, app_id, "session", sid)
        if removed is None:
            fail(f"app {app_id} has no session {sid}")
        counts = {"messages": removed.messages, "feedback": removed.feedback}
        if json_output:
            typer.echo(json.dumps({"id": str(sid), "deleted": True, "counts": counts}, indent=2))
        else:
            typer.echo(f"Deleted session {sid}: {removed.messages} messages, {removed.feedback} ratings.")


@consumers_app.command("erase")
def consumers_erase(
    consumer_id: Annotated[str, typer.Argument(metavar="CONSUMER_ID", help="The consumer's id (a UUID).")],
    app: AppOption,
    yes: YesOption = False,
    json_output: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Erase a person: the consumer, their sessions with messages and ratings, their ratings elsewhere and
    their memories (docs/sync.md says what remains on PostgreSQL until VACUUM)."""
    with friendly_errors():
        app_id = parse_uuid(app, "--app", "an app id")
        cid = parse_uuid(consumer_id, "CONSUMER_ID", "a consumer id")
        _confirm(f"Erase consumer {cid} and everything theirs? This cannot be undone.", yes)
        removed = _run(database_url, app_id, "consumer", cid)
        if removed is None:
            fail(f"app {app_id} has no consumer {cid}")
        counts = {"sessions": removed.sessions, "messages": removed.messages, "feedback": removed.feedback,
                  "memories": removed.memories}
        if json_output:
            typer.echo(json.dumps({"consumer_id": str(cid), "counts": counts}, indent=2))
        else:
            typer.echo(
                f"Erased consumer {cid}: {removed.sessions} sessions, {removed.messages} messages, "
                f"{removed.feedback} ratings, {removed.memories} memories."
            )
