"""Operator commands on the database: `db upgrade`, `apps create|list`, `keys create|list|revoke`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import typer

from chipp_builder.cli.help import App
from chipp_builder.cli.support import (
    DatabaseUrlOption,
    JsonOption,
    friendly_errors,
    in_transaction,
    open_database,
    parse_uuid,
    print_json,
    redact,
    short_time,
    stdout,
    table,
)

db_app = App(help="Manage the database's schema.", no_args_is_help=True)
apps_app = App(help="Create and list apps (each has its own data and keys).", no_args_is_help=True)
keys_app = App(help="Create, list and revoke an app's API keys.", no_args_is_help=True)

AppOption = Annotated[
    str, typer.Option("--app", metavar="APP_ID", show_default=False, help="The app's id (a UUID).")
]


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrlOption = None) -> None:
    """Create the database's tables, or migrate them to the latest schema."""
    with friendly_errors():
        from alembic.script import ScriptDirectory

        from chipp_builder.server.db.migrate import alembic_config

        settings = open_database(database_url)
        head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
        typer.echo(f"Database {redact(settings.database_url)} is at the latest schema (revision {head}).")


@apps_app.command("create")
def apps_create(
    name: Annotated[
        str, typer.Option("--name", show_default=False, help="The app's name (1 to 200 characters).")
    ],
    json_output: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create an app and print its id (or, with --json, the app)."""
    with friendly_errors():
        from chipp_builder.schemas.keys import App
        from chipp_builder.server.resources.apps.queries import create_app

        settings = open_database(database_url)
        created = in_transaction(settings, lambda db: create_app(db, name))
        if json_output:
            print_json(App.model_validate(created))
        else:
            typer.echo(str(created["id"]))


@apps_app.command("list")
def apps_list(json_output: JsonOption = False, database_url: DatabaseUrlOption = None) -> None:
    """List every app, oldest first, as a table (or, with --json, a JSON array)."""
    with friendly_errors():
        from chipp_builder.schemas.keys import App
        from chipp_builder.server.resources.apps.queries import list_apps

        settings = open_database(database_url)
        apps = [App.model_validate(row) for row in in_transaction(settings, list_apps)]
        if json_output:
            print_json(apps)
            return
        if not apps:
            typer.echo("No apps yet: create one with `chipp-builder apps create --name NAME`.")
            return
        rows = table("id", "name", "created_at")
        for item in apps:
            rows.add_row(str(item.id), item.name, short_time(item.created_at))
        stdout().print(rows)


def _scope_summary(scopes: Mapping[str, str]) -> str:
    """Scopes in a few words: the resources whose level is not the default `read`."""
    others = [f"{resource}={level}" for resource, level in scopes.items() if level != "read"]
    return " ".join(others) + ", read on the rest" if others else "read on all"


@keys_app.command("create")
def keys_create(
    app: AppOption,
    name: Annotated[
        str, typer.Option("--name", show_default=False, help="The key's name (1 to 200 characters).")
    ],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            metavar="RESOURCE=LEVEL",
            show_default=False,
            help="Access to one resource: LEVEL is none, read or write (write implies read). Repeatable. "
            "RESOURCE is sessions, consumers, feedback, tags, knowledge_sources, memories or analytics; "
            "every resource not named gets read.",
        ),
    ] = None,
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in",
            metavar="DURATION",
            show_default=False,
            help="Expire the key after 30s, 15m, 12h, 90d, or a bare number of days. Default: never.",
        ),
    ] = None,
    json_output: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create an API key for an app and print the raw key, the only time it is shown."""
    with friendly_errors():
        from chipp_builder.schemas.common import parse_duration, utc_now
        from chipp_builder.schemas.keys import ApiKeyCreated
        from chipp_builder.server.resources.apps.queries import create_key, parse_scopes

        app_id = parse_uuid(app, "--app", "an app id")
        scopes = parse_scopes(scope or [])
        lifetime = parse_duration(expires_in) if expires_in is not None else None
        settings = open_database(database_url)
        expires_at = utc_now() + lifetime if lifetime is not None else None
        created = ApiKeyCreated.model_validate(
            in_transaction(settings, lambda db: create_key(db, app_id, name, scopes, expires_at))
        )
        if json_output:
            print_json(created)
            return
        typer.echo(created.rawKey)
        expiry = f", expires {short_time(created.expires_at)}" if created.expires_at else ""
        typer.echo(
            f"Created key {created.id} named {created.name!r} "
            f"(scopes: {_scope_summary(created.scopes)}{expiry}). "
            "The line above is the raw key: store it now, it is not shown again.",
            err=True,
        )


@keys_app.command("list")
def keys_list(
    app: AppOption, json_output: JsonOption = False, database_url: DatabaseUrlOption = None
) -> None:
    """List an app's keys, revoked ones with their revoked_at; never the raw keys."""
    with friendly_errors():
        from chipp_builder.schemas.keys import ApiKey
        from chipp_builder.server.resources.apps.queries import list_keys

        app_id = parse_uuid(app, "--app", "an app id")
        settings = open_database(database_url)
        rows = in_transaction(settings, lambda db: list_keys(db, app_id))
        keys = [ApiKey.model_validate(row) for row in rows]
        if json_output:
            print_json(keys)
            return
        if not keys:
            typer.echo(f"App {app_id} has no keys yet: create one with `chipp-builder keys create`.")
            return
        listing = table("id", "name", "prefix", "scopes", "created_at", "expires_at", "revoked_at")
        for key in keys:
            listing.add_row(
                str(key.id), key.name, key.prefix, _scope_summary(key.scopes), short_time(key.created_at),
                short_time(key.expires_at), short_time(key.revoked_at),
            )
        stdout().print(listing)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (a UUID, from `keys list`).")],
    json_output: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke a key: it stops working at once (revoking it again changes nothing)."""
    with friendly_errors():
        from chipp_builder.schemas.keys import ApiKey
        from chipp_builder.server.resources.apps.queries import revoke_key

        key_uuid = parse_uuid(key_id, "KEY_ID", "a key id")
        settings = open_database(database_url)
        revoked = ApiKey.model_validate(in_transaction(settings, lambda db: revoke_key(db, key_uuid)))
        if json_output:
            print_json(revoked)
        else:
            when = short_time(revoked.revoked_at)
            typer.echo(f"Revoked key {revoked.id} ({revoked.name}, {revoked.prefix}…) at {when}.")
