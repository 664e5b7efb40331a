"""The SDK imports and works without the server's dependencies (fastapi, sqlalchemy and the rest)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = ("fastapi", "starlette", "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "redis", "uvicorn",
           "pydantic_settings", "orjson", "faker", "dateutil")

SCRIPT = textwrap.dedent(
    """
    import sys

    BLOCKED = set({blocked!r})

    class Blocker:
        # A meta path finder that refuses the server's dependencies, as if they were not installed.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
            return None

    sys.meta_path.insert(0, Blocker())
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]

    import httpx
    from chipp_builder.client import AsyncClient, Client, NotFound

    def handler(request):
        return httpx.Response(404, json={{"error": {{"code": "not_found", "message": "Session not found"}}}})

    client = Client("http://api.test", "chipp_" + "a" * 32, "00000000-0000-0000-0000-000000000001",
                    transport=httpx.MockTransport(handler))
    try:
        client.sessions.get("00000000-0000-0000-0000-000000000002")
    except NotFound as exc:
        assert exc.message == "Session not found"
    loaded = sorted({{name.split(".")[0] for name in sys.modules}} & BLOCKED)
    assert not loaded, loaded
    assert not any(name.startswith("chipp_builder.server") for name in sys.modules)
    print("ok")
    """
)


def test_the_sdk_imports_without_server_dependencies() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=BLOCKED)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_blocker_really_blocks() -> None:
    """Guards the test above: importing the server under the same blocker must fail."""
    script = SCRIPT.split("import httpx")[0] + "import chipp_builder.server.app\n"
    result = subprocess.run(
        [sys.executable, "-c", script.format(blocked=BLOCKED)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "blocked by the test" in result.stderr
