"""GET /: a short plain-text pointer to the API reference and the API's base, instead of a 404 for a visitor."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from chipp_builder import __version__

router = APIRouter()

# Static text, no request data in it (no Host header echoed back), and nothing about any app.
HOME = f"""chipp-builder {__version__}: a Builder API server. There is no web page here yet.

  /docs                       the API reference (Swagger UI); /openapi.json is the same as JSON
  /api/v1/apps/APP_ID/...     the API: every request needs "Authorization: Bearer chipp_..."

Try: curl -H "Authorization: Bearer $KEY" http://THIS-SERVER/api/v1/apps/APP_ID/sessions
(the app id and key come from `chipp-builder demo`, or `chipp-builder apps create` and `keys create`)
"""


@router.get("/", include_in_schema=False)
async def home() -> PlainTextResponse:
    """Where to go from the server's root: the reference at /docs and the API under /api/v1/apps/."""
    return PlainTextResponse(HOME)
