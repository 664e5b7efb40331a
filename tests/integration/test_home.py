"""GET /: a plain-text pointer to the API reference and the API base, outside the OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx


async def test_the_root_points_at_the_docs_and_the_api_base(api: httpx.AsyncClient) -> None:
    response = await api.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "/docs" in response.text and "/api/v1/apps/APP_ID/" in response.text
    assert "Authorization: Bearer chipp_" in response.text
    # The pages it names are there.
    assert (await api.get("/docs")).status_code == 200
    assert (await api.get("/openapi.json")).status_code == 200


async def test_the_root_is_static_and_not_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    plain = await api.get("/")
    spoofed = await api.get("/", headers={"Host": "evil.example", "Authorization": "Bearer chipp_x"})
    assert spoofed.text == plain.text and "evil.example" not in spoofed.text
    document: dict[str, Any] = (await api.get("/openapi.json")).json()
    assert "/" not in document["paths"]


async def test_other_methods_on_the_root_are_405_with_the_envelope(api: httpx.AsyncClient) -> None:
    response = await api.post("/")
    assert response.status_code == 405
    assert response.json() == {"error": {"code": "method_not_allowed", "message": "Method not allowed"}}
