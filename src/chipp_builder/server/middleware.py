"""ASGI middleware: empty query values dropped, rate-limit and security headers added to every response."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class QueryAndHeaders:
    """Treat `name=` as absent (automation tools send empty fields) and stamp the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if query:
            kept = [part for part in query.split(b"&") if part and not part.endswith(b"=") and b"=" in part]
            scope["query_string"] = b"&".join(kept)
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers.append((b"x-content-type-options", b"nosniff"))
                if message["status"] != 429:
                    headers.extend(state.get("ratelimit_headers", ()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
