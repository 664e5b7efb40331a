"""The documentation page /docs: Swagger UI over /openapi.json, its script, styles and icon served by this
server (from the swagger-ui-py package, Apache-2.0, which ships Swagger UI's files), so the page works with
no internet. FastAPI's own /docs loads them from a CDN, and its /redoc too (no package ships ReDoc's bundle,
so /redoc is not served)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

ASSET_BASE = "/docs/assets/"
# The files the page loads, and their types; no other name is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


@cache
def _assets() -> dict[str, bytes]:
    """The files, read once per process (about 1.5 MB; tests build many apps)."""
    folder = Path(str(files("swagger_ui") / "static"))
    return {name: (folder / name).read_bytes() for name in ASSETS}


def install_docs(app: FastAPI) -> None:
    """Add /docs, /docs/oauth2-redirect and the page's assets (the app is built with docs_url=None)."""
    assets = _assets()
    title = f"{app.title} - Swagger UI"
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=title,
        swagger_js_url=ASSET_BASE + "swagger-ui-bundle.js",
        swagger_css_url=ASSET_BASE + "swagger-ui.css",
        swagger_favicon_url=ASSET_BASE + "favicon-32x32.png",
        oauth2_redirect_url="/docs/oauth2-redirect",
        # Swagger UI would otherwise load a badge from its public validator for a spec served under a public
        # name, a request to the internet that also tells it where the spec lives.
        swagger_ui_parameters={"validatorUrl": None},
    ).body
    redirect = get_swagger_ui_oauth2_redirect_html().body

    async def docs(_request: Request) -> Response:
        return HTMLResponse(page)

    async def oauth2_redirect(_request: Request) -> Response:
        return HTMLResponse(redirect)

    async def asset(request: Request) -> Response:
        name = request.url.path.removeprefix(ASSET_BASE)
        # The files change only with the package: a day in caches is safe, and the page loads at once.
        return Response(assets[name], media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})

    app.router.routes.extend([
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
        Route("/docs/oauth2-redirect", oauth2_redirect, methods=["GET"], include_in_schema=False),
        *(Route(ASSET_BASE + name, asset, methods=["GET"], include_in_schema=False) for name in ASSETS),
    ])
