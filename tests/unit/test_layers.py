"""Layers point down (DESIGN.md): no module of the package imports one from a higher layer.

Read from the source with `ast` (no imports run), so every import counts: module level, inside a function, or
under TYPE_CHECKING. A module no layer claims fails too, so a new package has to be placed on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "chipp_builder"
SOURCE = Path(__file__).resolve().parents[2] / "src"

# Lowest first; a module may import its own layer and any layer before it in a stack it belongs to. The server
# stack: the shared wire (errors, schemas), then the framework adapter (compat.py), then storage, then the
# write seam (writes/), then request machinery, then the resources (routes, queries), then the bulk writers
# (import, demo), then the MCP mount, then the wiring, then the command line. The SDK stack shares only the wire
# with the server: the client never imports server code (docs/sdk.md).
SERVER_STACK = ("base", "wire", "compat", "config", "db", "writes", "support", "resources", "ingest", "mcp_mount",
                "app", "cli")
CLIENT_STACK = ("base", "wire", "client", "export", "cli")
# The MCP server is a client of the API (DESIGN.md, Part two): it stands on the SDK, never on the server; only
# its mount at /mcp (server/mcp_http.py) joins the two, and only the wiring (app.py) imports that.
MCP_STACK = ("base", "wire", "client", "mcp_server", "mcp_mount", "cli")

# Module prefix -> layer; the longest matching prefix wins.
LAYER_OF_PREFIX = {
    "chipp_builder": "base",  # the package itself: its version string
    "chipp_builder.errors": "wire",
    "chipp_builder.schemas": "wire",
    "chipp_builder.server": "support",  # the server's top-level modules: auth, pagination, params, deps, ...
    # The one module touching FastAPI's and SQLAlchemy's private APIs imports nothing of ours: both the reader
    # (db/) and the planned routes (routing.py) stand on it.
    "chipp_builder.server.compat": "compat",
    "chipp_builder.server.config": "config",
    "chipp_builder.server.db": "db",
    "chipp_builder.server.writes": "writes",
    "chipp_builder.server.resources": "resources",
    "chipp_builder.server.ingest": "ingest",
    "chipp_builder.server.app": "app",
    "chipp_builder.server.mcp_http": "mcp_mount",
    "chipp_builder.client": "client",
    "chipp_builder.mcp_server": "mcp_server",
    "chipp_builder.export": "export",
    "chipp_builder.cli": "cli",
}


def _may_import() -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {}
    for stack in (SERVER_STACK, CLIENT_STACK, MCP_STACK):
        for rank, layer in enumerate(stack):
            allowed.setdefault(layer, set()).update(stack[: rank + 1])
    return allowed


MAY_IMPORT = _may_import()


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name, or None when no prefix claims it."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = LAYER_OF_PREFIX.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def module_name(path: Path) -> str:
    """The dotted name of a source file under SOURCE (a package's __init__ is the package)."""
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """The package's modules this source imports; `from a import b` counts a.b when that is a module."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if _is_module(candidate):
                    found.add(candidate)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def _is_module(name: str) -> bool:
    path = SOURCE.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def upward_imports() -> list[str]:
    """Every import of the package that points up a layer, as 'module (layer) -> imported (layer)'."""
    problems: list[str] = []
    for path in sorted((SOURCE / PACKAGE).rglob("*.py")):
        module = module_name(path)
        layer = layer_of(module)
        if layer is None:
            problems.append(f"{module}: no layer claims it (add it to LAYER_OF_PREFIX)")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for target in sorted(imported_modules(tree, module, path.name == "__init__.py")):
            target_layer = layer_of(target)
            if target_layer is None or target_layer not in MAY_IMPORT[layer]:
                problems.append(f"{module} ({layer}) -> {target} ({target_layer})")
    return problems


def test_no_module_imports_one_from_a_higher_layer() -> None:
    assert upward_imports() == []


def test_the_walk_sees_the_whole_package() -> None:
    modules = {module_name(path) for path in (SOURCE / PACKAGE).rglob("*.py")}
    assert {"chipp_builder.server.db.counters", "chipp_builder.server.writes.conversations"} <= modules
    assert len(modules) > 80


@pytest.mark.parametrize(
    ("module", "imported", "allowed"),
    [
        ("chipp_builder.server.resources.feedback.queries", "chipp_builder.server.db.counters", True),
        ("chipp_builder.server.resources.feedback.queries", "chipp_builder.server.ingest.importer", False),
        ("chipp_builder.server.resources.feedback.queries", "chipp_builder.server.writes.feedback", True),
        ("chipp_builder.server.writes.derived", "chipp_builder.server.resources.sessions.queries", False),
        ("chipp_builder.server.writes.events", "chipp_builder.server.pagination", False),
        ("chipp_builder.server.pagination", "chipp_builder.server.ingest.importer", False),
        ("chipp_builder.server.pagination", "chipp_builder.server.db.fastread", True),
        ("chipp_builder.server.db.offset_list", "chipp_builder.server.pagination", False),
        ("chipp_builder.server.db.fastread", "chipp_builder.server.resources.sessions.queries", False),
        ("chipp_builder.server.ingest.importer", "chipp_builder.server.resources.apps.queries", True),
        ("chipp_builder.server.app", "chipp_builder.server.resources", True),
        ("chipp_builder.client._core", "chipp_builder.server.auth", False),
        ("chipp_builder.client._core", "chipp_builder.schemas.common", True),
        ("chipp_builder.export.runner", "chipp_builder.client", True),
        ("chipp_builder.cli.local", "chipp_builder.server.ingest.demo", True),
        ("chipp_builder.schemas.common", "chipp_builder.server.params", False),
        ("chipp_builder.mcp_server.tools", "chipp_builder.client", True),
        ("chipp_builder.mcp_server.tools", "chipp_builder.server.auth", False),
        ("chipp_builder.mcp_server.tools", "chipp_builder.export.runner", False),
        ("chipp_builder.server.mcp_http", "chipp_builder.mcp_server.http", True),
        ("chipp_builder.server.app", "chipp_builder.server.mcp_http", True),
        ("chipp_builder.server.resources.sessions.routes", "chipp_builder.mcp_server.tools", False),
    ],
)
def test_the_layer_rule(module: str, imported: str, allowed: bool) -> None:
    assert (layer_of(imported) in MAY_IMPORT[layer_of(module) or ""]) is allowed


def test_imports_are_read_wherever_they_sit() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import queries\n"
        "if TYPE_CHECKING:\n"
        "    from chipp_builder.server.ingest import importer\n"
        "def f():\n"
        "    import chipp_builder.server.app\n"
    )
    found = imported_modules(ast.parse(source), "chipp_builder.server.resources.feedback.routes", False)
    assert found == {
        "chipp_builder.server.resources.feedback",
        "chipp_builder.server.resources.feedback.queries",
        "chipp_builder.server.ingest",
        "chipp_builder.server.ingest.importer",
        "chipp_builder.server.app",
    }
