"""Every change of domain data goes through the write seam (DESIGN.md, "One road in, one road out"): no module
outside server/writes/ inserts, updates or deletes a domain table, so the counters, rollups and the event feed
cannot be bypassed.

Read from the source with `ast`, like test_layers.py: a SQLAlchemy `table.insert()`, `insert(table)`,
`update(table)`, `delete(table)` (or a dialect's `sqlite.insert(table)`) on a domain table, or SQL text that
writes one, anywhere outside the seam, fails.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "chipp_builder"
DOMAIN_TABLES = {
    "consumer", "session", "message", "tag", "message_tag", "feedback", "knowledge_source", "memory", "event",
}
WRITES = {"insert", "update", "delete"}
# The seam itself; the migrations (schema and data changes of their own, before any server runs); and the two
# summary keepers the seam calls, of which counters.py sets the derived consumer.has_session flag.
ALLOWED = ("server/writes/", "server/db/migrations/", "server/db/counters.py", "server/db/daily_rollups.py")
_SQL_WRITE = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(" + "|".join(sorted(DOMAIN_TABLES)) + r")\b", re.IGNORECASE
)


def domain_writes(source: str) -> list[str]:
    """Each write of a domain table in a module's source, as `line: what`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name not in WRITES:
                continue
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in DOMAIN_TABLES:
                found.append(f"{node.lineno}: {func.value.id}.{name}()")
            elif node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in DOMAIN_TABLES:
                found.append(f"{node.lineno}: {name}({node.args[0].id})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _SQL_WRITE.search(node.value)
            if match:
                found.append(f"{node.lineno}: SQL writing {match.group(1)}")
    return found


def _modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def test_no_module_outside_the_seam_writes_a_domain_table() -> None:
    offenders = {}
    for path in _modules():
        relative = path.relative_to(SOURCE).as_posix()
        if relative.startswith(ALLOWED):
            continue
        writes = domain_writes(path.read_text())
        if writes:
            offenders[relative] = writes
    assert offenders == {}


def test_the_seam_holds_the_writes_it_is_for() -> None:
    seam = {path.relative_to(SOURCE).as_posix(): domain_writes(path.read_text()) for path in _modules()
            if path.relative_to(SOURCE).as_posix().startswith("server/writes/")}
    written = " ".join(w for writes in seam.values() for w in writes)
    for table in ("session", "message", "feedback", "consumer", "memory", "event"):
        assert table in written, table


@pytest.mark.parametrize("source, expected", [
    ("session.insert()", ["1: session.insert()"]),
    ("db.execute(update(message).values(x=1))", ["1: update(message)"]),
    ("sqlite.insert(feedback)", ["1: insert(feedback)"]),
    ("delete(memory)", ["1: delete(memory)"]),
    ("op.execute('DELETE FROM message_tag WHERE 1')", ["1: SQL writing message_tag"]),
    ("api_key.insert()", []),
    ("update(app)", []),
    ("progress.update(task, completed=1)", []),
    ("select(session)", []),
])
def test_the_scan_sees_each_form_of_write(source: str, expected: list[str]) -> None:
    assert domain_writes(source) == expected
