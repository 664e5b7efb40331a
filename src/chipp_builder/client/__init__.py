"""The Python SDK for the Builder API: Client and AsyncClient, typed models, and the errors.py exceptions.

    from chipp_builder.client import Client
    client = Client()  # CHIPP_BASE_URL, CHIPP_API_KEY, CHIPP_APP_ID
    for session in client.sessions.list(source="WIDGET", started_after="2025-06-01"):
        ...

Needs only httpx and pydantic: it never imports the server.
"""

from chipp_builder.client._async import AsyncClient
from chipp_builder.client._config import ConfigurationError
from chipp_builder.client._retry import RetryPolicy
from chipp_builder.client._sync import Client
from chipp_builder.client.page_cache import PageCache
from chipp_builder.client.pagination import AsyncEventFeed, AsyncPage, EventFeed, Page
from chipp_builder.errors import (
    APIError,
    AuthenticationError,
    ChippError,
    Conflict,
    ConnectionFailed,
    CursorExpired,
    Expired,
    Forbidden,
    IdempotencyConflict,
    InsufficientStorage,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TimedOut,
    TransportError,
    Unauthorized,
    UnexpectedStatus,
)

__all__ = [
    "APIError", "AsyncClient", "AsyncEventFeed", "AsyncPage", "AuthenticationError", "ChippError", "Client",
    "ConfigurationError", "Conflict", "ConnectionFailed", "CursorExpired", "EventFeed", "Expired", "Forbidden",
    "IdempotencyConflict", "InsufficientStorage", "InternalError", "InvalidRequest", "MethodNotAllowed",
    "NotFound", "Page", "PageCache", "PayloadTooLarge", "RateLimited", "RetryPolicy", "ServerError",
    "ServiceUnavailable", "TimedOut", "TransportError", "Unauthorized", "UnexpectedStatus",
]
