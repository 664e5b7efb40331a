"""Conditional requests from the SDK (SPEC section 12): the pages a client has fetched, kept with their ETags, so
that asking for one again sends `If-None-Match` and a `304 Not Modified`, which costs nothing against the key's
120 requests a minute, is answered from the kept page.

Off unless asked for (`Client(page_cache=True)`, or a PageCache of your size): keeping pages costs memory,
and only a client that asks for the same pages again (a poller, a dashboard) gains from it."""

from __future__ import annotations

from collections import OrderedDict

import httpx


class PageCache:
    """The last `max_pages` GET responses that carried an ETag, by URL (query string included), least
    recently used out first. `not_modified` counts the answers that were 304s served from here."""

    def __init__(self, max_pages: int = 256) -> None:
        if max_pages < 1:
            raise ValueError("PageCache: max_pages must be at least 1")
        self.max_pages = max_pages
        self.not_modified = 0
        self._pages: OrderedDict[str, tuple[str, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def prepare(self, request: httpx.Request) -> tuple[str, bytes] | None:
        """Add If-None-Match to a GET whose page is kept; return the kept (ETag, body) it names, else None.
        Handing the body back with the request keeps it even if another request evicts it meanwhile."""
        if request.method != "GET":
            return None
        kept = self._pages.get(str(request.url))
        if kept is not None:
            self._pages.move_to_end(str(request.url))
            request.headers["If-None-Match"] = kept[0]
        return kept

    def answer(self, request: httpx.Request, response: httpx.Response, kept: tuple[str, bytes] | None) -> bytes | None:
        """The kept body a 304 stands for; else None, after keeping a 200 GET with an ETag for next time."""
        if response.status_code == 304 and kept is not None:
            self.not_modified += 1
            return kept[1]
        etag = response.headers.get("ETag")
        if request.method == "GET" and response.status_code == 200 and etag:
            self._pages[str(request.url)] = (etag, response.content)
            self._pages.move_to_end(str(request.url))
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)
        return None


def page_cache_for(setting: PageCache | bool | None) -> PageCache | None:
    """The client's page cache from its `page_cache=` argument: True for one of the default size."""
    if setting is True:
        return PageCache()
    if setting is False or setting is None:
        return None
    return setting  # not `setting or None`: an empty PageCache is falsy (it has a length)
