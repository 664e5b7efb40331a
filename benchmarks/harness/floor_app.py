"""Benchmark-only ASGI app: our create_app (middleware, error handlers, routing) plus one route that serves
captured response bytes from memory, so wrk measures the stack with no database work.

    uvicorn harness.floor_app:create --factory --app-dir benchmarks      # CHIPP_BENCH_FLOOR=<file.json>

The file maps a case name to its response body (latin-1 text of the bytes); GET /__floor/<name> returns it.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI
from fastapi.responses import Response

from chipp_builder.server.app import create_app


def create() -> FastAPI:
    """Our app with the extra in-memory route."""
    app = create_app()
    with open(os.environ["CHIPP_BENCH_FLOOR"], encoding="utf-8") as f:
        bodies = {name: text.encode("latin-1") for name, text in json.load(f).items()}

    @app.get("/__floor/{name}", include_in_schema=False)
    async def floor(name: str) -> Response:
        return Response(bodies[name], media_type="application/json")

    return app
