"""The in-process cache of rendered pages (CHIPP_RESPONSE_CACHE_MB): a 200 of a conditional GET kept under its
ETag, so the same page asked again without If-None-Match is sent from memory instead of queried and rendered.

Why it can never serve stale data: the ETag (conditional.py) is a digest of the app's feed head, read per
request from the database every worker shares, with the canonical request and the key's scopes. Any write moves
the head, so a page of the old data is only ever found under a key no later request works out. The head is
read before the page's query, so a page stored under a head may hold a write that committed between the two:
such a page is only newer than its key, and it is served only to requests that read that same head, which
started before the write's commit was visible (and would have seen it or not by timing alone).

What it stores: the body and the route's own headers (content type, ETag, Cache-Control, Vary), copied before
the response is sent (middleware below the route adds and changes headers in place: the rate-limit headers are
each key's own, and gzip rewrites the length). Bounded by bytes, least recently used out first."""

from __future__ import annotations

from collections import OrderedDict

from starlette.responses import Response

# A page bigger than this share of the cache is not kept: one huge page must not push out every small one.
_LARGEST_SHARE = 8


class ResponseCache:
    """Rendered 200 pages by ETag, at most `max_bytes` of bodies, least recently used evicted first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used_bytes = 0
        self.hits = 0
        self._pages: OrderedDict[bytes, tuple[bytes, tuple[tuple[bytes, bytes], ...]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, etag: bytes) -> Response | None:
        """The page kept under `etag` as a new Response, or None."""
        kept = self._pages.get(etag)
        if kept is None:
            return None
        self._pages.move_to_end(etag)
        self.hits += 1
        body, headers = kept
        response = Response(status_code=200)
        response.body = body
        response.raw_headers = list(headers)  # a fresh list: the middleware below changes it in place
        return response

    def put(self, etag: bytes, response: Response) -> None:
        """Keep a 200 page under its ETag (not one too big for the cache, nor a streamed one)."""
        body = getattr(response, "body", None)
        if not isinstance(body, bytes) or len(body) * _LARGEST_SHARE > self.max_bytes:
            return
        if etag in self._pages:
            return
        self._pages[etag] = (body, tuple(response.raw_headers))
        self.used_bytes += len(body)
        while self.used_bytes > self.max_bytes:
            _, (evicted, _) = self._pages.popitem(last=False)
            self.used_bytes -= len(evicted)


def make_response_cache(megabytes: float) -> ResponseCache | None:
    """The cache for CHIPP_RESPONSE_CACHE_MB (None when it is 0: off)."""
    return ResponseCache(int(megabytes * 1024 * 1024)) if megabytes > 0 else None
