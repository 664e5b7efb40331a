"""List results: a Page (sync) or AsyncPage that yields every item of every page when iterated, fetching
pages lazily, and keeps the first page's `data` and `pagination` readable; and the event feed's walk
(EventFeed, AsyncEventFeed), which follows `after` and keeps the position to store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

from chipp_builder.client._core import Call, ListCall
from chipp_builder.schemas.common import CursorPagination, OffsetPagination
from chipp_builder.schemas.events import Event, EventList

T = TypeVar("T")
P = TypeVar("P")


def next_params(call: ListCall[Any], envelope: Any) -> dict[str, str] | None:
    """The query of the page after this one, or None when this is the last page."""
    pagination = getattr(envelope, "pagination", None)
    if pagination is None or not pagination.has_more:
        return None
    if call.kind == "cursor" and pagination.next_cursor:
        return {**call.params, "cursor": pagination.next_cursor}
    if call.kind == "offset" and envelope.data:
        # Advance by what was returned rather than by `limit`, so a short page cannot skip rows.
        return {**call.params, "offset": str(pagination.offset + len(envelope.data))}
    return None  # has_more without a way forward: stop rather than loop on the same page


class Page(Generic[T, P]):
    """A list result. Iterate it for every item of every page from this one on (later pages are fetched
    as the loop reaches them); `.pages()` walks page by page; `.data` and `.pagination` are this page's."""

    def __init__(self, call: ListCall[Any], fetch: Callable[[ListCall[Any]], Any]) -> None:
        self._call = call
        self._fetch = fetch
        self._envelope: Any = None

    def _loaded(self) -> Any:
        if self._envelope is None:
            self._envelope = self._fetch(self._call)
        return self._envelope

    @property
    def data(self) -> list[T]:
        """The items of this page (fetched on first use)."""
        return list(self._loaded().data)

    @property
    def pagination(self) -> P:
        """This page's pagination block: has_more and next_cursor, or total and offset (None for tags)."""
        return getattr(self._loaded(), "pagination", None)  # type: ignore[return-value]

    @property
    def has_more(self) -> bool:
        """Whether another page follows this one."""
        return next_params(self._call, self._loaded()) is not None

    def next_page(self) -> Page[T, P] | None:
        """The page after this one (not fetched until used), or None when this is the last."""
        params = next_params(self._call, self._loaded())
        return None if params is None else Page(self._call.with_params(params), self._fetch)

    def pages(self) -> Iterator[Page[T, P]]:
        """Each page in turn, starting with this one, each already fetched."""
        page: Page[T, P] | None = self
        while page is not None:
            page._loaded()
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page._loaded().data

    def __repr__(self) -> str:
        state = "not fetched" if self._envelope is None else f"{len(self._envelope.data)} items"
        return f"<Page {self._call.path} {state}>"


class AsyncPage(Generic[T, P]):
    """An async list result. `async for` it for every item of every page (fetched as the loop reaches them);
    `await` it to fetch the first page and read `.data` and `.pagination`; `.pages()` walks page by page."""

    def __init__(self, call: ListCall[Any], fetch: Callable[[ListCall[Any]], Awaitable[Any]]) -> None:
        self._call = call
        self._fetch = fetch
        self._envelope: Any = None

    async def _load(self) -> Any:
        if self._envelope is None:
            self._envelope = await self._fetch(self._call)
        return self._envelope

    def _loaded(self) -> Any:
        if self._envelope is None:
            raise RuntimeError("This page has not been fetched yet: `page = await client.x.list(...)` first")
        return self._envelope

    def __await__(self) -> Generator[Any, None, AsyncPage[T, P]]:
        return self._await_self().__await__()

    async def _await_self(self) -> AsyncPage[T, P]:
        await self._load()
        return self

    @property
    def data(self) -> list[T]:
        """The items of this page (await the page first)."""
        return list(self._loaded().data)

    @property
    def pagination(self) -> P:
        """This page's pagination block (await the page first); None for tags."""
        return getattr(self._loaded(), "pagination", None)  # type: ignore[return-value]

    @property
    def has_more(self) -> bool:
        """Whether another page follows this one (await the page first)."""
        return next_params(self._call, self._loaded()) is not None

    async def next_page(self) -> AsyncPage[T, P] | None:
        """The page after this one, fetched, or None when this is the last."""
        params = next_params(self._call, await self._load())
        if params is None:
            return None
        page: AsyncPage[T, P] = AsyncPage(self._call.with_params(params), self._fetch)
        return await page

    async def pages(self) -> AsyncIterator[AsyncPage[T, P]]:
        """Each page in turn, starting with this one, each already fetched."""
        page: AsyncPage[T, P] | None = await self
        while page is not None:
            yield page
            page = await page.next_page()

    async def _items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page._loaded().data:
                yield item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    def __repr__(self) -> str:
        state = "not fetched" if self._envelope is None else f"{len(self._envelope.data)} items"
        return f"<AsyncPage {self._call.path} {state}>"


# The three list shapes of the API, for annotations: `CursorPage[Session]`, `OffsetPage[Feedback]`, ...
CursorPage = Page[T, CursorPagination]
OffsetPage = Page[T, OffsetPagination]
SinglePage = Page[T, None]
AsyncCursorPage = AsyncPage[T, CursorPagination]
AsyncOffsetPage = AsyncPage[T, OffsetPagination]
AsyncSinglePage = AsyncPage[T, None]


class EventFeed:
    """The event feed from a position: iterate it for every event after it, following `next_cursor` page by
    page (as far as the feed goes, or forever when following, long-polling while nothing is new).

    `.cursor` is the position to store and continue from: the `after` given until a page has been handed
    out whole, then that page's `next_cursor`. It moves only when the loop asks for the event after a page's
    last, so a loop that stops mid-page (or fails while handling an event) continues from that page again:
    each event is seen at least once.
    """

    def __init__(self, call: Call[Any], fetch: Callable[[Call[Any]], Any], *, follow: bool) -> None:
        self._call = call
        self._fetch = fetch
        self._follow = follow
        self.cursor: str | None = call.params.get("after")

    def _next_call(self) -> Call[Any]:
        params = dict(self._call.params)
        if self.cursor is not None:
            params["after"] = self.cursor
        return self._call.with_params(params)

    def pages(self) -> Iterator[EventList]:
        """Each page in turn (EventList: `.data`, `.pagination.next_cursor`); `.cursor` moves past a page when
        the next one is asked for."""
        while True:
            page: EventList = self._fetch(self._next_call())
            yield page
            self.cursor = page.pagination.next_cursor
            if not page.pagination.has_more and not self._follow:
                return

    def __iter__(self) -> Iterator[Event]:
        for page in self.pages():
            yield from page.data

    def __repr__(self) -> str:
        return f"<EventFeed after={self.cursor!r}{' following' if self._follow else ''}>"


class AsyncEventFeed:
    """EventFeed for AsyncClient: `async for` it; `.cursor` as there."""

    def __init__(self, call: Call[Any], fetch: Callable[[Call[Any]], Awaitable[Any]], *, follow: bool) -> None:
        self._call = call
        self._fetch = fetch
        self._follow = follow
        self.cursor: str | None = call.params.get("after")

    def _next_call(self) -> Call[Any]:
        params = dict(self._call.params)
        if self.cursor is not None:
            params["after"] = self.cursor
        return self._call.with_params(params)

    async def pages(self) -> AsyncIterator[EventList]:
        """Each page in turn; `.cursor` moves past a page when the next one is asked for."""
        while True:
            page: EventList = await self._fetch(self._next_call())
            yield page
            self.cursor = page.pagination.next_cursor
            if not page.pagination.has_more and not self._follow:
                return

    async def _items(self) -> AsyncIterator[Event]:
        async for page in self.pages():
            for item in page.data:
                yield item

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._items()

    def __repr__(self) -> str:
        return f"<AsyncEventFeed after={self.cursor!r}{' following' if self._follow else ''}>"
