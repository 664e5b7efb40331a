"""The synchronous Client and its resource attributes (one per API resource)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import httpx
from typing_extensions import Unpack

from chipp_builder.client import _endpoints as ep
from chipp_builder.client._config import ClientConfig, resolve_config
from chipp_builder.client._core import Call, E, ListCall
from chipp_builder.client._requesters import SyncRequester
from chipp_builder.client._retry import RetryPolicy
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
from chipp_builder.client.pagination import CursorPage, EventFeed, OffsetPage, Page, SinglePage

DEFAULT_TIMEOUT = 30.0


class _Resource:
    def __init__(self, requester: SyncRequester) -> None:
        self._requester = requester

    def _page(self, call: ListCall[Any]) -> Page[Any, Any]:
        return Page(call, self._requester.send)


class SessionsAPI(_Resource):
    """Chat sessions and their messages."""

    def list(self, **filters: Unpack[ep.SessionFilters]) -> CursorPage[Session]:
        """Sessions, newest first; iterating yields every matching session across pages."""
        return self._page(ep.list_sessions(filters))

    def get(self, session_id: UUID | str) -> Session:
        """One session by id; NotFound when it is not this app's."""
        return self._requester.send(ep.get_session(session_id)).data

    def messages(self, session_id: UUID | str, **filters: Unpack[ep.MessageFilters]) -> CursorPage[Message]:
        """A session's messages, oldest first; iterating yields every matching message across pages."""
        return self._page(ep.list_messages(session_id, filters))

    def delete(self, session_id: UUID | str) -> SessionDeleted:
        """Delete a session with its messages and ratings (needs sessions: write); NotFound when it is not
        this app's. Not retried: a repeat after a lost response would answer NotFound."""
        return self._requester.send(ep.delete_session(session_id)).data


class ConsumersAPI(_Resource):
    """The people who chat with the app."""

    def list(self, **filters: Unpack[ep.ConsumerFilters]) -> OffsetPage[Consumer]:
        """Consumers, newest first; iterating yields every match, `.pagination.total` counts them."""
        return self._page(ep.list_consumers(filters))

    def get(self, consumer_id: UUID | str) -> Consumer:
        """One consumer by id; NotFound when it is not this app's."""
        return self._requester.send(ep.get_consumer(consumer_id)).data

    def erase(self, consumer_id: UUID | str) -> ConsumerErased:
        """Erase a person: the consumer, their sessions with messages and ratings, their ratings elsewhere and
        their memories (needs consumers: write); NotFound when it is not this app's. Not retried."""
        return self._requester.send(ep.erase_consumer(consumer_id)).data

    def auth(
        self,
        *,
        external_id: str | None = None,
        email: str | None = None,
        name: str | None = None,
        picture_url: str | None = None,
    ) -> ConsumerToken:
        """Find or create a consumer from your site's user and get a short-lived widget token for them."""
        return self._requester.send(ep.auth_consumer(external_id, email, name, picture_url)).data


class FeedbackAPI(_Resource):
    """Consumers' ratings of messages."""

    def list(self, **filters: Unpack[ep.FeedbackFilters]) -> OffsetPage[Feedback]:
        """Ratings, newest first; iterating yields every match, `.pagination.total` counts them."""
        return self._page(ep.list_feedback(filters))

    def create(
        self,
        message_id: str,
        rating: int,
        *,
        consumer_id: UUID | str | None = None,
        idempotency_key: str | None = ep.AUTO,
    ) -> Feedback:
        """Rate a message -1, 0 or 1 (a consumer's second rating replaces the first); retry-safe by key."""
        return self._requester.send(ep.create_feedback(message_id, rating, consumer_id, idempotency_key)).data


class TagsAPI(_Resource):
    """Labels applied to messages."""

    def list(self) -> SinglePage[Tag]:
        """All of the app's tags, oldest first, in one page."""
        return self._page(ep.list_tags())


class KnowledgeSourcesAPI(_Resource):
    """The app's training data and its processing status."""

    def list(self, **filters: Unpack[ep.KnowledgeSourceFilters]) -> OffsetPage[KnowledgeSource]:
        """Knowledge sources, newest first; iterating yields every match across pages."""
        return self._page(ep.list_knowledge_sources(filters))


class MemoriesAPI(_Resource):
    """What the app remembers about its consumers."""

    def list(self, **filters: Unpack[ep.MemoryFilters]) -> OffsetPage[Memory]:
        """Memories, newest first; iterating yields every match across pages."""
        return self._page(ep.list_memories(filters))


class AnalyticsAPI(_Resource):
    """Usage over time."""

    def usage(self, **filters: Unpack[ep.AnalyticsFilters]) -> Usage:
        """Sessions, unique consumers and messages in a range, with a zero-filled timeseries."""
        return self._requester.send(ep.usage(filters)).data

    def token_usage(self, **filters: Unpack[ep.AnalyticsFilters]) -> TokenUsage:
        """Tokens used in a range, by model and over time."""
        return self._requester.send(ep.token_usage(filters)).data


class ConversationsAPI(_Resource):
    """Pushing chat turns into the app."""

    def log(
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
        return self._requester.send(call).data


class EventsAPI(_Resource):
    """The app's changes (GET /events): what changed, in commit order, to keep a copy current."""

    def list(
        self, after: str | None = None, *, types: str | Sequence[str] | None = None, limit: int | None = None
    ) -> EventFeed:
        """Every event after `after` (the oldest kept when None) as far as the feed goes, page by page;
        `.cursor` afterwards is the position to store. CursorExpired (410) when `after` is too old."""
        return EventFeed(ep.list_events(after, types, limit), self._requester.send, follow=False)

    def latest(self) -> str:
        """The current end of the feed: list everything, then follow from this cursor."""
        return (self._requester.send(ep.latest_event())).data.cursor

    def follow(
        self,
        after: str,
        *,
        wait: int = 25,
        types: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> EventFeed:
        """Every event after `after` as it comes, forever: each request waits up to `wait` seconds (1-30) for
        news. Requests are retried as the client's RetryPolicy says; an error after that is raised, and
        `.cursor` says where to start again. `for event in client.events.follow(cursor): ...`"""
        if not 1 <= wait <= ep.MAX_WAIT:
            raise ValueError(f"events.follow: wait must be between 1 and {ep.MAX_WAIT} seconds, got {wait}")
        return EventFeed(ep.list_events(after, types, limit, wait), self._requester.send, follow=True)


class Client:
    """Synchronous client for the Builder API of one app.

    `Client()` reads CHIPP_BASE_URL, CHIPP_API_KEY and CHIPP_APP_ID for any argument not given. Pass
    `transport=` (e.g. httpx.MockTransport) or a ready `http_client=` to control the HTTP layer, `retry=`
    for a custom RetryPolicy and `sleep=` to replace time.sleep between retries.
    `page_cache=True` (or a PageCache) keeps the pages fetched with their ETags and asks for them again with
    If-None-Match: a 304 costs nothing against the rate limit and returns the kept page (docs/polling.md).
    """

    sessions: SessionsAPI
    consumers: ConsumersAPI
    feedback: FeedbackAPI
    tags: TagsAPI
    knowledge_sources: KnowledgeSourcesAPI
    memories: MemoriesAPI
    analytics: AnalyticsAPI
    conversations: ConversationsAPI
    events: EventsAPI

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
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        page_cache: PageCache | bool | None = None,
    ) -> None:
        if transport is not None and http_client is not None:
            raise ValueError("Pass transport= or http_client=, not both (give the transport to your client)")
        self.config: ClientConfig = resolve_config(base_url, api_key, app_id)
        self.retry = _policy(retry, max_retries)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)
        # Asked for, the pages fetched are kept with their ETags and asked for again conditionally (a 304 is free).
        self.page_cache: PageCache | None = page_cache_for(page_cache)
        requester = SyncRequester(self._http, self.config, self.retry, sleep, dict(headers or {}),
                                   self.page_cache)
        self._requester = requester
        self.sessions = SessionsAPI(requester)
        self.consumers = ConsumersAPI(requester)
        self.feedback = FeedbackAPI(requester)
        self.tags = TagsAPI(requester)
        self.knowledge_sources = KnowledgeSourcesAPI(requester)
        self.memories = MemoriesAPI(requester)
        self.analytics = AnalyticsAPI(requester)
        self.conversations = ConversationsAPI(requester)
        self.events = EventsAPI(requester)

    def send(self, call: Call[E]) -> E:
        """Send one described request (a `Call` of client._core, the path every method above takes), with the
        same retries and errors: for an endpoint this SDK has no method for yet."""
        return self._requester.send(call)

    def close(self) -> None:
        """Close the connection pool (not a caller-supplied http_client, which the caller closes)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {self.config.app_url}>"


def _policy(retry: RetryPolicy | None, max_retries: int | None) -> RetryPolicy:
    """The retry policy from the two ways of giving it; max_retries wins when both are given."""
    policy = retry or RetryPolicy()
    if max_retries is not None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        policy = dataclasses.replace(policy, max_retries=max_retries)
    return policy
