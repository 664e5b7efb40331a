"""The `chipp-builder` Typer app: wires the commands of manage.py and local.py under one entry point."""

from __future__ import annotations

from typing import Annotated

import typer

from chipp_builder import __version__
from chipp_builder.cli import deletes, export, local, manage, mcp_command, mirror
from chipp_builder.cli.help import App
from chipp_builder.cli.support import state

app = App(
    name="chipp-builder",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"chipp-builder {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback when a command fails.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """A self-hosted Builder API server for AI chat app data: serve it, fill it, manage its apps and keys."""
    state.debug = debug
    state.database_url = None


app.command("serve")(local.serve)
app.command("demo")(local.demo)
app.command("import")(local.import_file_command)
app.add_typer(manage.apps_app, name="apps")
app.add_typer(manage.keys_app, name="keys")
app.add_typer(manage.db_app, name="db")
app.add_typer(export.export_app, name="export")
app.command("mirror")(mirror.mirror)
app.add_typer(deletes.sessions_app, name="sessions")
app.add_typer(deletes.consumers_app, name="consumers")
app.command("mcp")(mcp_command.mcp_command)


def main() -> None:
    """Run the command line (the `chipp-builder` console script)."""
    app(prog_name="chipp-builder")


if __name__ == "__main__":
    main()
