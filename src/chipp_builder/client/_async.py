"""The asynchronous AsyncClient and its resource attributes: the same surface as Client, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import httpx
from typing_extensions import Unpack

from chipp_builder.client import _endpoints as ep
from chipp_builder.client._config import ClientConfig, resolve_config
from chipp_builder.client._core import Call, E, ListCall
from chipp_builder.client._requesters import AsyncRequester
from chipp_builder.client._retry import RetryPolicy
from chipp_builder.client._sync import DEFAULT_TIMEOUT, _policy
from chipp_builder.client.models import (
    Consumer,
    ConsumerErased,
    ConsumerIn,
    ConsumerToken,
    ConversationLogged,
    Feedback,
    KnowledgeSource,
    LogConsumer,
    LogMessage,
    Memory,
    Message,
    MessageIn,
    Session,
    SessionDeleted,
    Source,
    Tag,
    TokenUsage,
    Usage,
)
from chipp_builder.client.page_cache import PageCache, page_cache_for
from chipp_builder.client.pagination import (
    AsyncCursorPage,
    AsyncEventFeed,
    AsyncOffsetPage,
    AsyncPage,
    AsyncSinglePage,
)


class _AsyncResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    def _page(self, call: ListCall[Any]) -> AsyncPage[Any, Any]:
        return AsyncPage(call, self._requester.send)


class AsyncSessionsAPI(_AsyncResource):
    """Chat sessions and their messages."""

    def list(self, **filters: Unpack[ep.SessionFilters]) -> AsyncCursorPage[Session]:
        """Sessions, newest first; `async for` yields every matching session across pages."""
        return self._page(ep.list_sessions(filters))

    async def get(self, session_id: UUID | str) -> Session:
        """One session by id; NotFound when it is not this app's."""
        return (await self._requester.send(ep.get_session(session_id))).data

    def messages(
        self, session_id: UUID | str, **filters: Unpack[ep.MessageFilters]
    ) -> AsyncCursorPage[Message]:
        """A session's messages, oldest first; `async for` yields every matching message across pages."""
        return self._page(ep.list_messages(session_id, filters))

    async def delete(self, session_id: UUID | str) -> SessionDeleted:
        """Delete a session with its messages and ratings (needs sessions: write); NotFound when it is not
        this app's. Not retried: a repeat after a lost response would answer NotFound."""
        return (await self._requester.send(ep.delete_session(session_id))).data


class AsyncConsumersAPI(_AsyncResource):
    """The people who chat with the app."""

    def list(self, **filters: Unpack[ep.ConsumerFilters]) -> AsyncOffsetPage[Consumer]:
        """Consumers, newest first; `async for` yields every match; `(await page).pagination.total`."""
        return self._page(ep.list_consumers(filters))

    async def get(self, consumer_id: UUID | str) -> Consumer:
        """One consumer by id; NotFound when it is not this app's."""
        return (await self._requester.send(ep.get_consumer(consumer_id))).data

    async def erase(self, consumer_id: UUID | str) -> ConsumerErased:
        """Erase a person: the consumer, their sessions with messages and ratings, their ratings elsewhere and
        their memories (needs consumers: write); NotFound when it is not this app's. Not retried."""
        return (await self._requester.send(ep.erase_consumer(consumer_id))).data

    async def auth(
        self,
        *,
        external_id: str | None = None,
        email: str | None = None,
        name: str | None = None,
        picture_url: str | None = None,
    ) -> ConsumerToken:
        """Find or create a consumer from your site's user and get a short-lived widget token for them."""
        return (await self._requester.send(ep.auth_consumer(external_id, email, name, picture_url))).data


class AsyncFeedbackAPI(_AsyncResource):
    """Consumers' ratings of messages."""

    def list(self, **filters: Unpack[ep.FeedbackFilters]) -> AsyncOffsetPage[Feedback]:
        """Ratings, newest first; `async for` yields every match; `(await page).pagination.total`."""
        return self._page(ep.list_feedback(filters))

    async def create(
        self,
        message_id: str,
        rating: int,
        *,
        consumer_id: UUID | str | None = None,
        idempotency_key: str | None = ep.AUTO,
    ) -> Feedback:
        """Rate a message -1, 0 or 1 (a consumer's second rating replaces the first); retry-safe by key."""
        call = ep.create_feedback(message_id, rating, consumer_id, idempotency_key)
        return (await self._requester.send(call)).data


class AsyncTagsAPI(_AsyncResource):
    """Labels applied to messages."""

    def list(self) -> AsyncSinglePage[Tag]:
        """All of the app's tags, oldest first, in one page."""
        return self._page(ep.list_tags())


class AsyncKnowledgeSourcesAPI(_AsyncResource):
    """The app's training data and its processing status."""

    def list(self, **filters: Unpack[ep.KnowledgeSourceFilters]) -> AsyncOffsetPage[KnowledgeSource]:
        """Knowledge sources, newest first; `async for` yields every match across pages."""
        return self._page(ep.list_knowledge_sources(filters))


class AsyncMemoriesAPI(_AsyncResource):
    """What the app remembers about its consumers."""

    def list(self, **filters: Unpack[ep.MemoryFilters]) -> AsyncOffsetPage[Memory]:
        """Memories, newest first; `async for` yields every match across pages."""
        return self._page(ep.list_memories(filters))


class AsyncAnalyticsAPI(_AsyncResource):
    """Usage over time."""

    async def usage(self, **filters: Unpack[ep.AnalyticsFilters]) -> Usage:
        """Sessions, unique consumers and messages in a range, with a zero-filled timeseries."""
        return (await self._requester.send(ep.usage(filters))).data

    async def token_usage(self, **filters: Unpack[ep.AnalyticsFilters]) -> TokenUsage:
        """Tokens used in a range, by model and over time."""
        return (await self._requester.send(ep.token_usage(filters))).data


class AsyncConversationsAPI(_AsyncResource):
    """Pushing chat turns into the app."""

    async def log(
        self,
        messages: Sequence[LogMessage | MessageIn | Mapping[str, Any]],
        *,
        session_id: UUID | str | None = None,
        consumer: LogConsumer | ConsumerIn | Mapping[str, Any] | None = None,
        title: str | None = None,
        source: Source | str | None = None,
        idempotency_key: str | None = ep.AUTO,
    ) -> ConversationLogged:
        """Write 1 to 100 messages to a new session, or append them to the session `session_id`.

        Safe to retry: an Idempotency-Key is sent, a fresh one per call by default; pass your own to make
        re-runs of a job safe too, or None to send none (the call is then never retried).
        """
        call = ep.log_conversation(messages, session_id, consumer, title, source, idempotency_key)
        return (await self._requester.send(call)).data


class AsyncEventsAPI(_AsyncResource):
    """The app's changes (GET /events): what changed, in commit order, to keep a copy current."""

    def list(
        self, after: str | None = None, *, types: str | Sequence[str] | None = None, limit: int | None = None
    ) -> AsyncEventFeed:
        """Every event after `after` (the oldest kept when None) as far as the feed goes, page by page;
        `.cursor` afterwards is the position to store. CursorExpired (410) when `after` is too old."""
        return AsyncEventFeed(ep.list_events(after, types, limit), self._requester.send, follow=False)

    async def latest(self) -> str:
        """The current end of the feed: list everything, then follow from this cursor."""
        return (await self._requester.send(ep.latest_event())).data.cursor

    def follow(
        self,
        after: str,
        *,
        wait: int = 25,
        types: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> AsyncEventFeed:
        """Every event after `after` as it comes, forever: each request waits up to `wait` seconds (1-30) for
        news. Requests are retried as the client's RetryPolicy says; an error after that is raised, and
        `.cursor` says where to start again. `async for event in client.events.follow(cursor): ...`"""
        if not 1 <= wait <= ep.MAX_WAIT:
            raise ValueError(f"events.follow: wait must be between 1 and {ep.MAX_WAIT} seconds, got {wait}")
        return AsyncEventFeed(ep.list_events(after, types, limit, wait), self._requester.send, follow=True)


class AsyncClient:
    """Asynchronous client for the Builder API of one app; the same surface as Client, with awaits.

    Single results are awaited (`await client.sessions.get(id)`); lists are iterated with `async for`, or
    awaited first to read the first page (`page = await client.feedback.list(); page.pagination.total`).
    `page_cache=True` (or a PageCache) keeps the pages fetched with their ETags and asks for them again with
    If-None-Match: a 304 costs nothing against the rate limit and returns the kept page (docs/polling.md).
    """

    sessions: AsyncSessionsAPI
    consumers: AsyncConsumersAPI
    feedback: AsyncFeedbackAPI
    tags: AsyncTagsAPI
    knowledge_sources: AsyncKnowledgeSourcesAPI
    memories: AsyncMemoriesAPI
    analytics: AsyncAnalyticsAPI
    conversations: AsyncConversationsAPI
    events: AsyncEventsAPI

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        app_id: UUID | str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        page_cache: PageCache | bool | None = None,
    ) -> None:
        if transport is not None and http_client is not None:
            raise ValueError("Pass transport= or http_client=, not both (give the transport to your client)")
        self.config: ClientConfig = resolve_config(base_url, api_key, app_id)
        self.retry = _policy(retry, max_retries)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport)
        # Asked for, the pages fetched are kept with their ETags and asked for again conditionally (a 304 is free).
        self.page_cache: PageCache | None = page_cache_for(page_cache)
        requester = AsyncRequester(self._http, self.config, self.retry, sleep, dict(headers or {}),
                                   self.page_cache)
        self._requester = requester
        self.sessions = AsyncSessionsAPI(requester)
        self.consumers = AsyncConsumersAPI(requester)
        self.feedback = AsyncFeedbackAPI(requester)
        self.tags = AsyncTagsAPI(requester)
        self.knowledge_sources = AsyncKnowledgeSourcesAPI(requester)
        self.memories = AsyncMemoriesAPI(requester)
        self.analytics = AsyncAnalyticsAPI(requester)
        self.conversations = AsyncConversationsAPI(requester)
        self.events = AsyncEventsAPI(requester)

    async def send(self, call: Call[E]) -> E:
        """Send one described request (a `Call` of client._core, the path every method above takes), with the
        same retries and errors: for an endpoint this SDK has no method for yet."""
        return await self._requester.send(call)

    async def aclose(self) -> None:
        """Close the connection pool (not a caller-supplied http_client, which the caller closes)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncClient {self.config.app_url}>"
