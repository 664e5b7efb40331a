"""How the command line's help looks: flags without a value placeholder, arguments by their plain name.

Typer 0.29's help shows a type after every option, flags included (`--debug <bool>`, `--resume <bool>`),
which reads as if the flag took a value (`chipp-builder --debug true apps list` then fails with "No such
command 'true'"), and it writes a required argument as `{FILE}` in the usage line. Click's own help does
neither. Every Typer app of the command line is an `App`, whose commands and groups correct both.
(Contexts and parameters are typed Any: Typer 0.29 vendors its own click, whose classes it does not export.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _show_flags_as_flags(params: list[Any]) -> list[Any]:
    for param in params:
        # A flag takes no value: an empty metavar is what Typer's help prints in place of its type.
        if isinstance(param, TyperOption) and (param.is_flag or param.count) and param.metavar is None:
            param.metavar = ""
    return params


def _usage_pieces(command: TyperCommand | TyperGroup, ctx: Any) -> list[str]:
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = param.metavar or (param.name or "").upper()
            name = name if param.required else f"[{name}]"
            pieces.append(name if param.nargs == 1 else f"{name}...")
        else:
            pieces.extend(param.get_usage_pieces(ctx))
    return pieces


class Command(TyperCommand):
    """A command whose help shows flags as flags and arguments as `FILE` (required) or `[FILE]`."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The command's parameters (the help option included), flags marked as taking no value."""
        return _show_flags_as_flags(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """The usage line's pieces: `[OPTIONS]`, then each argument by its plain name."""
        return _usage_pieces(self, ctx)


class Group(TyperGroup):
    """A group of commands whose help shows flags as flags, as `Command` does."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The group's parameters (the help option included), flags marked as taking no value."""
        return _show_flags_as_flags(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """The usage line's pieces: `[OPTIONS]`, the arguments, then `COMMAND [ARGS]...`."""
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]


class App(typer.Typer):
    """A Typer app whose groups are `Group`s and whose commands are `Command`s (unless one names a class)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(cls=Group, **settings)

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None,
                **settings: Any) -> Callable[[Any], Any]:
        """Register a command, as Typer's `command` does, with `Command` as its class by default."""
        return super().command(name, cls=cls or Command, **settings)
