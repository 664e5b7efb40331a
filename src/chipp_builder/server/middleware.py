"""ASGI middleware: an encoded slash in a path refused, empty query values dropped, rate-limit and security
headers added to every response (and the whole `Allow` to a 405), request bodies capped in size, HEAD
answered as GET without the body, and gzip for clients that accept it."""

from __future__ import annotations

from typing import Any

from starlette.middleware.gzip import GZipResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chipp_builder.errors import InvalidRequest, NotFound, PayloadTooLarge
from chipp_builder.server.responses import error_response


def _has_encoded_slash(scope: Scope) -> bool:
    """Whether the request's path (not its query) holds `%2F`: the server decodes it into `scope["path"]`,
    where it would separate segments, so `/sessions/ID%2Fmessages` reached another route."""
    raw: bytes = scope.get("raw_path") or b""
    if b"%2" not in raw:
        return False  # the usual case, in one scan
    path = raw.split(b"?", 1)[0]  # some servers (httpx's ASGI transport) keep the query in raw_path
    return b"%2f" in path or b"%2F" in path


class QueryAndHeaders:
    """Refuse an encoded slash in the path, treat `name=` as absent (automation tools send empty fields) and
    stamp the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if query:
            # Keep `name=value` pairs; drop `name=` and bare `name` (an empty value). `search=a=` keeps its value.
            kept = [part for part in query.split(b"&") if b"=" in part and part.index(b"=") < len(part) - 1]
            scope["query_string"] = b"&".join(kept)
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                if message["status"] == 405:
                    headers = _with_allow(headers, scope)
                headers.append((b"x-content-type-options", b"nosniff"))
                if message["status"] != 429:
                    headers.extend(state.get("ratelimit_headers", ()))
                message["headers"] = headers
            await send(message)

        if _has_encoded_slash(scope):
            # No path id holds a slash (they are UUIDs), so it is no resource: the unknown route's 404, before
            # authentication, whatever route the decoded path would have matched.
            await error_response(NotFound("Not found"))(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _leaf_routes(routes: Any) -> Any:
    """Every endpoint route, through FastAPI's included routers (which keep their routes' full paths)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


def _with_allow(headers: list[tuple[bytes, bytes]], scope: Scope) -> list[tuple[bytes, bytes]]:
    """A 405's `Allow`: the methods of every route at this path, taking the most specific path templates.

    Starlette names only the first route that matched the path, so `/builder-keys` (GET and POST, two
    routes) said `Allow: POST`; and at `/consumers/auth` (POST) `/consumers/{consumer_id}` (GET) matched
    first, so it said `Allow: GET`. The templates with the fewest parameters are the most specific.
    """
    path = scope.get("path", "")
    matching: list[tuple[int, set[str]]] = []
    for route in _leaf_routes(getattr(scope.get("app"), "routes", ())):
        methods, regex = getattr(route, "methods", None), getattr(route, "path_regex", None)
        if methods and regex is not None and regex.match(path):
            matching.append((len(getattr(route, "param_convertors", {})), set(methods)))
    if not matching:
        return headers
    fewest = min(count for count, _ in matching)
    allowed = ", ".join(sorted(set().union(*(methods for count, methods in matching if count == fewest))))
    return [*((k, v) for k, v in headers if k.lower() != b"allow"), (b"allow", allowed.encode())]


TOO_LARGE = "Request body is larger than {limit} bytes"


class BodySizeLimit:
    """Refuse bodies over `max_bytes` with the 413 envelope, without ever holding more than that in memory.

    A declared Content-Length over the cap is answered at once, before authentication and before a byte
    of the body is read. A body without one (chunked) is counted as the route reads it, and reading fails
    with PayloadTooLarge as soon as the count passes the cap; the error handler renders the envelope.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None:
            error: InvalidRequest | PayloadTooLarge | None = None
            if not declared.strip().isdigit():
                error = InvalidRequest("Content-Length must be a non-negative integer")
            elif int(declared) > limit:
                error = PayloadTooLarge(TOO_LARGE.format(limit=limit))
            if error is not None:
                await error_response(error)(scope, receive, send)
                return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(TOO_LARGE.format(limit=limit))
            return message

        await self.app(scope, counted_receive, send)


class HeadAsGet:
    """Answer HEAD on every GET route: the request runs as the GET, whose status and headers (Content-Length
    and ETag included) are sent without the body. /mcp keeps its own methods (a GET there is a stream)."""

    def __init__(self, app: ASGIApp, skip_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.skip_paths = skip_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        scope["method"] = "GET"

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, send_headers_only)


class Gzip:
    """gzip for bodies of `minimum_size` bytes or more when the request accepts it (Starlette's compressor).

    Why not Starlette's GZipMiddleware as is: for a request that does not accept gzip it still wraps the
    response (parsing its headers, adding `Vary`), work on every request of clients that never compress. Here
    such a request passes straight through; the app's own responses already say `Vary: Accept-Encoding`."""

    def __init__(self, app: ASGIApp, minimum_size: int = 1024, compresslevel: int = 6) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _accepts_gzip(scope):
            await self.app(scope, receive, send)
            return

        async def send_one_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _merged_vary(message.get("headers", []))
            await send(message)

        responder = GZipResponder(self.app, self.minimum_size, compresslevel=self.compresslevel)
        await responder(scope, receive, send_one_vary)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"accept-encoding":
            return b"gzip" in value
    return False


def _merged_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """One `Vary` naming each field once (the compressor appends Accept-Encoding to the app's own Vary)."""
    varies = [v for k, v in headers if k.lower() == b"vary"]
    if len(varies) < 2 and not any(v.count(b"Accept-Encoding") > 1 for v in varies):
        return headers
    names: list[bytes] = []
    for value in varies:
        for name in value.split(b","):
            name = name.strip()
            if name and name.lower() not in (known.lower() for known in names):
                names.append(name)
    return [*((k, v) for k, v in headers if k.lower() != b"vary"), (b"vary", b", ".join(names))]
