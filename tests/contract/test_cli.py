"""The command line through its real entry points: help, apps, keys, errors, db, import, demo and serve."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import typer.main
from typer.testing import CliRunner, Result

from chipp_builder.cli.main import app
from chipp_builder.schemas.keys import RESOURCES

KEY_RE = re.compile(r"^chipp_[a-z0-9]{32}$")
SCRIPT = Path(sys.executable).parent / "chipp-builder"
MISSING_APP = "123e4567-e89b-12d3-a456-426614174000"

Cli = Callable[..., Result]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite database URL (the file is created by the first command)."""
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def cli(db_url: str) -> Cli:
    """Invoke the Typer app in-process on the test's database; stdout and stderr stay apart."""
    runner = CliRunner()

    def invoke(*args: str, database: bool = True) -> Result:
        argv = [*args, "--database-url", db_url] if database else list(args)
        return runner.invoke(app, argv)

    return invoke


def ok(result: Result) -> Result:
    """Assert a command succeeded, showing what it printed when it did not."""
    shown = f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.exit_code == 0, shown
    return result


def failed(result: Result) -> str:
    """Assert a command failed cleanly: non-zero, one `Error:` line on stderr, no traceback; return it."""
    assert result.exit_code != 0, result.stdout
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def sqlite_path(db_url: str) -> Path:
    return Path(db_url.removeprefix("sqlite:///"))


def query(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(sqlite_path(db_url)) as conn:
        return conn.execute(sql, params).fetchall()


def new_app(cli: Cli, name: str = "Test app") -> str:
    return ok(cli("apps", "create", "--name", name)).stdout.strip()


def key_listing(cli: Cli, app_id: str) -> list[dict[str, Any]]:
    return json.loads(ok(cli("keys", "list", "--app", app_id, "--json")).stdout)


def _commands() -> Iterator[tuple[list[str], Any]]:
    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


COMMAND_PATHS = [path for path, _ in _commands()]


# --- help -----------------------------------------------------------------------------------------------


def test_every_documented_command_exists() -> None:
    expected = {
        (), ("serve",), ("demo",), ("import",), ("db",), ("db", "upgrade"), ("apps",), ("apps", "create"),
        ("apps", "list"), ("keys",), ("keys", "create"), ("keys", "list"), ("keys", "revoke"),
        ("export",), *(("export", name) for name in ("sessions", "messages", "consumers", "feedback", "memories",
                                                    "knowledge-sources", "tags", "all")),
        ("sessions",), ("sessions", "delete"), ("consumers",), ("consumers", "erase"),
        ("mcp",), ("mirror",),
    }
    assert {tuple(path) for path in COMMAND_PATHS} == expected


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "root")
def test_help_of_every_command_names_its_options(path: list[str]) -> None:
    command = dict((tuple(p), c) for p, c in _commands())[tuple(path)]
    assert command.help, f"{path} has no help text"
    result = ok(CliRunner().invoke(app, [*path, "--help"]))
    assert "Usage:" in result.stdout
    for param in command.params:
        shown = param.opts[0] if param.param_type_name == "option" else (param.metavar or param.name.upper())
        assert shown in result.stdout, f"{shown} missing from the help of {path}"
    for sub in getattr(command, "commands", {}):
        assert sub in result.stdout


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "root")
def test_help_shows_flags_as_flags_and_arguments_by_name(path: list[str]) -> None:
    # Typer 0.29 printed `--debug <bool>` and `Usage: … {FILE}`; cli/help.py corrects both for every command.
    shown = ok(CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})).stdout
    assert "<bool>" not in shown
    usage = next(line for line in shown.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    assert re.search(r"--help\s+-h\s+Show this message", shown), shown


def test_help_usage_and_flags_read_as_typed() -> None:
    def help_of(*path: str) -> str:
        return ok(CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})).stdout

    assert re.search(r"--debug\s+Show the traceback", help_of())
    assert re.search(r"Usage: chipp-builder import \[OPTIONS\] FILE\s", help_of("import"))
    assert re.search(r"Usage: chipp-builder keys revoke \[OPTIONS\] KEY_ID\s", help_of("keys", "revoke"))
    assert re.search(r"--resume\s+Continue an interrupted export", help_of("export", "sessions"))
    assert re.search(r"--has-email\s+--no-email\s+Only consumers", help_of("export", "consumers"))
    # A flag takes no value: the word after it is read as the command, as the help now suggests.
    result = CliRunner().invoke(app, ["--debug", "true", "apps", "list"])
    assert result.exit_code == 2 and "No such command 'true'" in result.output


REMOTE_COMMANDS = ("export", "mcp")  # clients of the API (a base URL, a key, an app), not of a database


def test_local_commands_all_take_database_url() -> None:
    for path, command in _commands():
        if path and path[0] not in REMOTE_COMMANDS and not getattr(command, "commands", None):
            assert "--database-url" in [p.opts[0] for p in command.params], path


# --- docs ---------------------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_cli_names_every_command_and_option() -> None:
    text = (DOCS / "cli.md").read_text()
    for path, command in _commands():
        if path:
            assert f"chipp-builder {' '.join(path)}" in text or f"## {' '.join(path)}" in text, path
        for param in command.params:
            if param.param_type_name == "option":
                assert f"`{param.opts[0]}" in text, f"{param.opts[0]} of {path} is not in docs/cli.md"


def test_remote_commands_take_the_apis_settings_not_a_database() -> None:
    for path, command in _commands():
        if path and path[0] in REMOTE_COMMANDS and not getattr(command, "commands", None):
            options = [p.opts[0] for p in command.params]
            assert {"--base-url", "--key", "--app"} <= set(options) and "--database-url" not in options, path


def test_docs_configuration_names_every_setting() -> None:
    from chipp_builder.server.config import Settings

    text = (DOCS / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`CHIPP_{name.upper()}`" in text, f"CHIPP_{name.upper()} is not in docs/configuration.md"


# --- db, apps -------------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_tables(cli: Cli, db_url: str) -> None:
    result = ok(cli("db", "upgrade"))
    assert "latest schema" in result.stdout
    tables = {row[0] for row in query(db_url, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"app", "api_key", "session", "message", "consumer", "feedback", "alembic_version"} <= tables
    ok(cli("db", "upgrade"))  # twice is fine


def test_apps_create_and_list_plain(cli: Cli) -> None:
    app_id = new_app(cli, "First app")
    UUID(app_id)
    listing = ok(cli("apps", "list")).stdout
    assert app_id in listing and "First app" in listing


def test_apps_create_and_list_json(cli: Cli) -> None:
    created = json.loads(ok(cli("apps", "create", "--name", "Json app", "--json")).stdout)
    assert set(created) == {"id", "name", "created_at"}
    assert created["name"] == "Json app" and created["created_at"].endswith("Z")
    second = new_app(cli, "Second")
    listed = json.loads(ok(cli("apps", "list", "--json")).stdout)
    assert [item["id"] for item in listed] == [created["id"], second]


def test_apps_list_when_empty(cli: Cli) -> None:
    assert "No apps yet" in ok(cli("apps", "list")).stdout
    assert json.loads(ok(cli("apps", "list", "--json")).stdout) == []


def test_database_url_defaults_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("CHIPP_DATABASE_URL", url)
    app_id = ok(CliRunner().invoke(app, ["apps", "create", "--name", "Env"])).stdout.strip()
    assert query(url, "SELECT count(*) FROM app WHERE name = 'Env'") == [(1,)]
    assert app_id


def test_default_database_is_in_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHIPP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    ok(CliRunner().invoke(app, ["apps", "create", "--name", "Here"]))
    assert (tmp_path / "chipp-builder.db").is_file()


# --- keys -----------------------------------------------------------------------------------------------


def test_keys_create_prints_the_raw_key_alone_and_applies_scopes(cli: Cli, db_url: str) -> None:
    app_id = new_app(cli)
    result = ok(cli("keys", "create", "--app", app_id, "--name", "Writer",
                    "--scope", "analytics=none", "--scope", "sessions=write"))
    raw_key = result.stdout.strip()
    assert KEY_RE.match(raw_key), result.stdout
    assert result.stdout == raw_key + "\n"
    assert "not shown again" in result.stderr
    (key,) = key_listing(cli, app_id)
    expected = {resource: "read" for resource in RESOURCES} | {"analytics": "none", "sessions": "write"}
    assert key["scopes"] == expected
    assert key["name"] == "Writer" and key["prefix"] == raw_key[:10] and key["expires_at"] is None
    digest = hashlib.sha256(raw_key.encode()).digest()
    assert query(db_url, "SELECT count(*) FROM api_key WHERE key_hash = ?", digest) == [(1,)]


def test_keys_create_json_and_expiry(cli: Cli) -> None:
    app_id = new_app(cli)
    created = json.loads(ok(cli("keys", "create", "--app", app_id, "--name", "K", "--expires-in", "12h",
                                "--json")).stdout)
    assert KEY_RE.match(created["rawKey"])
    assert created["app_id"] == app_id
    assert created["scopes"] == {resource: "read" for resource in RESOURCES}
    assert created["expires_at"] is not None and created["expires_at"].endswith("Z")
    assert created["revoked_at"] is None


def test_keys_list_never_shows_raw_keys_and_shows_revoked_at(cli: Cli) -> None:
    app_id = new_app(cli)
    raw_key = ok(cli("keys", "create", "--app", app_id, "--name", "Old")).stdout.strip()
    keep = ok(cli("keys", "create", "--app", app_id, "--name", "Keep")).stdout.strip()
    (old, _) = key_listing(cli, app_id)
    revoked = ok(cli("keys", "revoke", old["id"]))
    assert old["id"] in revoked.stdout and "Revoked" in revoked.stdout

    plain = ok(cli("keys", "list", "--app", app_id))
    as_json = ok(cli("keys", "list", "--app", app_id, "--json"))
    for result in (plain, as_json):
        assert raw_key not in result.output and keep not in result.output
    listed = json.loads(as_json.stdout)
    assert "rawKey" not in listed[0] and "key_hash" not in listed[0]
    assert listed[0]["revoked_at"] is not None and listed[1]["revoked_at"] is None
    assert "revoked_at" in plain.stdout
    assert listed[0]["revoked_at"][:19] in plain.stdout  # the table shows it to the second
    again = json.loads(ok(cli("keys", "revoke", old["id"], "--json")).stdout)
    assert again["revoked_at"] == listed[0]["revoked_at"]  # idempotent: the first time is kept


# --- bad inputs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--app", "{app}", "--name", "K", "--scope", "nope=read"], "Unknown scope"),
        (["keys", "create", "--app", "{app}", "--name", "K", "--scope", "tags=admin"], "none, read, write"),
        (["keys", "create", "--app", "{app}", "--name", "K", "--scope", "sessions"], "none, read, write"),
        (["keys", "create", "--app", "{app}", "--name", "K", "--expires-in", "3 weeks"], "Invalid duration"),
        (["keys", "create", "--app", "{app}", "--name", "K", "--expires-in", "0"], "Invalid duration"),
        (["keys", "create", "--app", "not-a-uuid", "--name", "K"], "--app must be an app id"),
        (["keys", "create", "--app", MISSING_APP, "--name", "K"], "Application not found"),
        (["keys", "list", "--app", MISSING_APP], "Application not found"),
        (["keys", "list", "--app", "42"], "--app must be an app id"),
        (["keys", "revoke", MISSING_APP], "API key not found"),
        (["keys", "revoke", "nope"], "KEY_ID must be a key id"),
        (["apps", "create", "--name", "   "], "name must be 1 to 200 characters"),
        (["import", "missing.jsonl", "--app", "{app}"], "no such file"),
        (["import", "{tmp}", "--app", "{app}"], "not a file"),
        (["import", "{tmp}", "--app", "zzz"], "--app must be an app id"),
    ],
)
def test_bad_input_is_one_clear_line(cli: Cli, tmp_path: Path, args: list[str], message: str) -> None:
    app_id = new_app(cli)
    argv = [a.format(app=app_id, tmp=tmp_path) for a in args]
    assert message in failed(cli(*argv))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////no/such/folder/x.db", "the folder /no/such/folder does not exist"),
        ("mysql://user@localhost/db", "unsupported database URL scheme"),
        ("not a url", "invalid database URL"),
        ("postgresql://user:secret@127.0.0.1:1/db", "cannot reach the database postgresql://user:***@127.0.0.1:1/db"),
    ],
)
def test_unusable_database_is_one_clear_line(url: str, message: str) -> None:
    result = CliRunner().invoke(app, ["apps", "list", "--database-url", url])
    stderr = failed(result)
    assert message in stderr
    assert "secret" not in stderr


def test_bad_setting_in_the_environment_is_named(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHIPP_RATE_LIMIT", "many")
    assert "CHIPP_RATE_LIMIT" in failed(cli("apps", "list"))


def test_debug_shows_the_real_exception() -> None:
    result = CliRunner().invoke(app, ["--debug", "apps", "list", "--database-url", "mysql://x/y"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ValueError)


# --- import ---------------------------------------------------------------------------------------------

SESSION_ID = "22222222-2222-4222-8222-222222222222"
GOOD_LINES = [
    {"type": "consumer", "id": "11111111-1111-4111-8111-111111111111", "identifier": "ada@example.com",
     "email": "ada@example.com", "created_at": "2025-06-01T00:00:00Z"},
    {"type": "session", "id": SESSION_ID, "consumer_id": "11111111-1111-4111-8111-111111111111",
     "started_at": "2025-06-01T10:00:00Z", "source": "APP", "title": "Hello"},
    {"type": "message", "id": "m1", "session_id": SESSION_ID, "role": "user", "content": "Hi",
     "created_at": "2025-06-01T10:00:01Z"},
    {"type": "message", "id": "m2", "session_id": SESSION_ID, "role": "assistant", "content": "Hello!",
     "model": "gpt-4o", "token_count": 9, "created_at": "2025-06-01T10:00:02Z"},
]


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_import_writes_a_valid_file(cli: Cli, db_url: str, tmp_path: Path) -> None:
    pytest.importorskip("chipp_builder.server.ingest.importer")
    app_id = new_app(cli)
    path = write_jsonl(tmp_path / "good.jsonl", GOOD_LINES)
    result = ok(cli("import", str(path), "--app", app_id))
    assert result.stdout.splitlines() == [
        f"Read 4 lines from {path} into app {app_id}.",
        "  consumer: 1 inserted, 0 updated, 0 unchanged",
        "  session: 1 inserted, 0 updated, 0 unchanged",
        "  message: 2 inserted, 0 updated, 0 unchanged",
    ]
    assert query(db_url, "SELECT count(*) FROM message") == [(2,)]


def test_a_reimport_reports_unchanged_and_updated_rows(cli: Cli, db_url: str, tmp_path: Path) -> None:
    pytest.importorskip("chipp_builder.server.ingest.importer")
    app_id = new_app(cli)
    path = write_jsonl(tmp_path / "good.jsonl", GOOD_LINES)
    ok(cli("import", str(path), "--app", app_id))

    again = ok(cli("import", str(path), "--app", app_id))
    assert again.stdout.splitlines()[1:] == [
        "  consumer: 0 inserted, 0 updated, 1 unchanged",
        "  session: 0 inserted, 0 updated, 1 unchanged",
        "  message: 0 inserted, 0 updated, 2 unchanged",
        "Nothing was written: the app already held every record as the file has it.",
    ]

    edited = write_jsonl(tmp_path / "edited.jsonl", [*GOOD_LINES[:3], {**GOOD_LINES[3], "content": "Hello again!"}])
    changed = ok(cli("import", str(edited), "--app", app_id))
    assert "  message: 0 inserted, 1 updated, 1 unchanged" in changed.stdout.splitlines()
    assert query(db_url, "SELECT content FROM message WHERE id = 'm2'") == [("Hello again!",)]


def test_import_of_a_bad_file_lists_the_bad_lines_and_writes_nothing(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("chipp_builder.server.ingest.importer")
    app_id = new_app(cli)
    bad_role = {**GOOD_LINES[2], "id": "m3", "role": "robot"}
    path = write_jsonl(tmp_path / "bad.jsonl", [*GOOD_LINES, bad_role, "this is not json"])
    result = cli("import", str(path), "--app", app_id)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert re.search(r"^line 5: .*role", result.stderr, re.MULTILINE), result.stderr
    # The file's own line number and a plain reason, not orjson's "line 1 column 1 ... expected 'null'".
    assert re.search(
        r"^line 6: not valid JSON: unexpected 't' at column 1 \(a line must be one JSON object, \{\.\.\.\}\)$",
        result.stderr, re.MULTILINE,
    ), result.stderr
    assert "2 of 6 lines are invalid" in result.stderr
    assert query(db_url, "SELECT count(*) FROM message") == [(0,)]

    skipped = ok(cli("import", str(path), "--app", app_id, "--skip-invalid"))
    assert "line 5: " in skipped.stderr and "line 6: " in skipped.stderr
    assert "  message: 2 inserted, 0 updated, 0 unchanged" in skipped.stdout.splitlines()
    assert query(db_url, "SELECT count(*) FROM message") == [(2,)]


def test_import_into_an_unknown_app(cli: Cli, tmp_path: Path) -> None:
    pytest.importorskip("chipp_builder.server.ingest.importer")
    path = write_jsonl(tmp_path / "good.jsonl", GOOD_LINES)
    assert "Application not found" in failed(cli("import", str(path), "--app", MISSING_APP))


# --- demo -----------------------------------------------------------------------------------------------


def test_demo_prints_app_key_and_curl_and_the_key_works(cli: Cli, db_url: str) -> None:
    pytest.importorskip("chipp_builder.server.ingest.demo")
    result = ok(cli("demo", "--sessions", "20", "--seed", "1", "--port", "8123"))
    out = result.stdout
    app_id = re.search(r"App id:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    raw_key = re.search(r"API key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    assert KEY_RE.match(raw_key)
    base = f"http://127.0.0.1:8123/api/v1/apps/{app_id}"
    assert re.search(r"^Server URL: http://127\.0\.0\.1:8123  \(for --base-url, CHIPP_BASE_URL", out, re.MULTILINE)
    assert re.search(f"^App URL: +{re.escape(base)}  \\(for curl", out, re.MULTILINE), out
    assert f'curl -H "Authorization: Bearer {raw_key}" {base}/sessions' in out
    assert re.search(r"^MCP URL: +http://127\.0\.0\.1:8123/mcp  \(for AI agents", out, re.MULTILINE), out
    # SQLite keeps UUIDs as 32 hex digits.
    assert query(db_url, "SELECT count(*) FROM session WHERE app_id = ?", UUID(app_id).hex) == [(20,)]
    digest = hashlib.sha256(raw_key.encode()).digest()
    assert query(db_url, "SELECT revoked_at FROM api_key WHERE key_hash = ?", digest) == [(None,)]
    (key,) = key_listing(cli, app_id)
    assert set(key["scopes"].values()) == {"read"}


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port this test process listens on, as another server would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_demo_on_a_busy_port_stops_before_touching_the_database(cli: Cli, db_url: str, busy_port: int) -> None:
    pytest.importorskip("chipp_builder.server.ingest.demo")
    app_id = new_app(cli, "Kept")  # what `make demo` must not delete when the port is taken
    result = cli("demo", "--fresh", "--sessions", "5", "--serve", "--port", str(busy_port))
    message = failed(result)
    assert message.startswith(f"Error: port {busy_port} on 127.0.0.1 is already in use by "), message
    if Path("/proc/net/tcp").exists():
        assert f"by process {os.getpid()} (" in message  # this test process holds it
    assert re.search(r"or choose a free port: --port (\d+) \(make demo PORT=\1\)$", message.strip()), message
    assert result.stdout == ""  # no key, no curl line for a server that will not start
    assert query(db_url, "SELECT count(*) FROM app") == [(1,)]
    assert [row["id"] for row in json.loads(ok(cli("apps", "list", "--json")).stdout)] == [app_id]


def test_serve_on_a_busy_port_is_one_clear_line(cli: Cli, db_url: str, busy_port: int) -> None:
    message = failed(cli("serve", "--port", str(busy_port)))
    assert f"port {busy_port} on 127.0.0.1 is already in use" in message
    assert not sqlite_path(db_url).exists()  # checked before the schema was created


def test_demo_fresh_starts_from_an_empty_sqlite_database(cli: Cli, db_url: str) -> None:
    pytest.importorskip("chipp_builder.server.ingest.demo")
    new_app(cli, "Old")
    result = ok(cli("demo", "--fresh", "--sessions", "3", "--seed", "4"))
    app_id = re.search(r"App id:\s+(\S+)", result.stdout).group(1)  # type: ignore[union-attr]
    assert [row["id"] for row in json.loads(ok(cli("apps", "list", "--json")).stdout)] == [app_id]
    message = failed(CliRunner().invoke(app, ["demo", "--fresh", "--database-url",
                                              "postgresql://nobody@127.0.0.1:1/none"]))
    assert "--fresh deletes an SQLite database file" in message


# --- the installed entry points -------------------------------------------------------------------------


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `chipp-builder` console script."""
    assert SCRIPT.exists(), f"the console script is not installed next to {sys.executable}"
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_console_script_manages_apps_and_keys(db_url: str) -> None:
    assert "apps" in run_script("--help").stdout
    created = run_script("apps", "create", "--name", "Scripted", "--database-url", db_url)
    assert created.returncode == 0, created.stderr
    app_id = created.stdout.strip()
    key = run_script("keys", "create", "--app", app_id, "--name", "K", env={"CHIPP_DATABASE_URL": db_url})
    assert key.returncode == 0, key.stderr
    assert KEY_RE.match(key.stdout.strip())


def test_console_script_errors_without_a_traceback(db_url: str) -> None:
    result = run_script("keys", "create", "--app", MISSING_APP, "--name", "K", "--database-url", db_url)
    assert result.returncode == 1
    assert result.stderr == "Error: Application not found\n"
    assert result.stdout == ""


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "chipp_builder.cli.main", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("chipp-builder ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_migrates_and_answers_http(db_url: str) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", str(port), "--database-url", db_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        response = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v1/apps/{MISSING_APP}/sessions", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        if response is None:
            process.kill()
            pytest.fail(f"the server did not start:\n{process.communicate(timeout=30)[0]}")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert "server" not in response.headers
        assert sqlite_path(db_url).is_file()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in output


# --- sessions delete, consumers erase ------------------------------------------------------------------


def _seeded(cli: Cli, db_url: str, tmp_path: Path) -> tuple[str, str, str]:
    """An app with one consumer's session of two messages and a rating; (app, consumer, session)."""
    app_id = new_app(cli)
    consumer_id, session_id = "2a9b3f7e-0000-4000-8000-000000000001", "2a9b3f7e-0000-4000-8000-000000000002"
    lines = [
        {"type": "consumer", "id": consumer_id, "identifier": "erase-me", "email": "erase.me@example.com",
         "created_at": "2025-06-01T00:00:00Z"},
        {"type": "session", "id": session_id, "consumer_id": consumer_id, "started_at": "2025-06-01T10:00:00Z"},
        {"type": "message", "id": "m1", "session_id": session_id, "role": "user", "content": "private words",
         "created_at": "2025-06-01T10:00:01Z"},
        {"type": "message", "id": "m2", "session_id": session_id, "role": "assistant", "content": "ok",
         "created_at": "2025-06-01T10:00:02Z"},
        {"type": "feedback", "id": "f1", "message_id": "m2", "session_id": session_id, "rating": 1,
         "created_at": "2025-06-01T11:00:00Z"},
    ]
    file = tmp_path / "seed.jsonl"
    file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    ok(cli("import", str(file), "--app", app_id))
    return app_id, consumer_id, session_id


def test_sessions_delete_removes_the_session_and_prints_the_counts(cli: Cli, db_url: str, tmp_path: Path) -> None:
    app_id, _consumer, session_id = _seeded(cli, db_url, tmp_path)
    result = ok(cli("sessions", "delete", session_id, "--app", app_id, "--json"))
    assert json.loads(result.stdout) == {"id": session_id, "deleted": True, "counts": {"messages": 2, "feedback": 1}}
    assert query(db_url, "SELECT count(*) FROM message") == [(0,)]
    assert query(db_url, "SELECT type FROM event WHERE type LIKE '%deleted' ORDER BY position") == [
        ("feedback.deleted",), ("message.deleted",), ("message.deleted",), ("session.deleted",)]
    assert "has no session" in failed(cli("sessions", "delete", session_id, "--app", app_id))


def test_consumers_erase_leaves_nothing_of_the_person(cli: Cli, db_url: str, tmp_path: Path) -> None:
    app_id, consumer_id, _session = _seeded(cli, db_url, tmp_path)
    result = ok(cli("consumers", "erase", consumer_id, "--app", app_id, "--yes"))
    assert result.stdout.strip() == (
        f"Erased consumer {consumer_id}: 1 sessions, 2 messages, 1 ratings, 0 memories."
    )
    path = sqlite_path(db_url)
    for trace in (b"erase.me@example.com", b"private words", b"erase-me"):
        for file in (path, Path(f"{path}-wal")):
            if file.exists():
                assert trace not in file.read_bytes(), (trace, file.name)
    assert "has no consumer" in failed(cli("consumers", "erase", consumer_id, "--app", app_id))
    assert "CONSUMER_ID must be a consumer id" in failed(cli("consumers", "erase", "nope", "--app", app_id))
