"""The exception tree, shared by the server (which raises and renders it) and the SDK (which maps each
response, or each failure to get one, back to its class).

    ChippError                      anything the API or the SDK raises: .code, .message
    ├── TransportError              no response came back, so no .status
    │   ├── ConnectionFailed        refused, reset, DNS failure, a broken response    connection_error
    │   └── TimedOut                connect, read, write or pool timeout              timeout
    └── APIError                    the server answered with an error: .status, .code, .message
        ├── InvalidRequest          400  invalid_request
        ├── AuthenticationError     401  (the key was not accepted)
        │   ├── Unauthorized        401  unauthorized
        │   └── Expired             401  expired
        ├── Forbidden               403  forbidden
        ├── NotFound                404  not_found
        ├── MethodNotAllowed        405  method_not_allowed
        ├── CursorExpired           410  cursor_expired (the feed no longer holds what follows it)
        ├── Conflict                409  (the request conflicts with earlier state)
        │   └── IdempotencyConflict 409  idempotency_conflict
        ├── PayloadTooLarge         413  payload_too_large
        ├── RateLimited             429  rate_limited; .retry_after in seconds
        ├── ServerError             5xx  (the server failed; retrying may help)
        │   ├── InternalError       500  internal_error
        │   ├── ServiceUnavailable  503  service_unavailable
        │   └── InsufficientStorage 507  insufficient_storage
        └── UnexpectedStatus        a status the API never sends (a proxy's 502 page, a 418)

Every class with a fixed status has it as a class attribute, so `except AuthenticationError` means "a 401".
Only UnexpectedStatus, which stands for any status the API does not use, takes its status as an argument.
The server raises only the classes that have a code of their own; the groups (AuthenticationError,
Conflict, ServerError) exist to be caught, and the SDK raises one of them, keeping the server's code, for a
code it does not know at that status (from a newer server).
"""

from __future__ import annotations


class ChippError(Exception):
    """Base of every error the API or the SDK raises: a stable code and a human message."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            # A code this SDK has no class for (a newer server's) is kept as the server sent it.
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


# Transport errors: the request got no HTTP response. Raised by the SDK only, chaining the httpx exception.


class TransportError(ChippError):
    """No response came back from the API; the httpx exception is the __cause__."""

    code = "transport_error"


class ConnectionFailed(TransportError):
    """The API could not be reached, or its response could not be read (refused, reset, DNS, protocol)."""

    code = "connection_error"


class TimedOut(TransportError):
    """Connecting, sending, waiting for the response or for a pooled connection took too long."""

    code = "timeout"


# Status errors: the server answered with a non-2xx status and (usually) the error envelope.


class APIError(ChippError):
    """The server answered with an error status: HTTP status, stable code, human message."""

    status: int = 500
    code = "internal_error"

    def __init__(self, message: str = "Internal server error", *, code: str | None = None) -> None:
        super().__init__(message, code=code)

    def to_body(self) -> dict[str, dict[str, str]]:
        """The error envelope this error renders as."""
        return {"error": {"code": self.code, "message": self.message}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class InvalidRequest(APIError):
    """A parameter or body failed validation (400)."""

    status, code = 400, "invalid_request"


class AuthenticationError(APIError):
    """The API key was not accepted (401): missing, malformed, unknown, revoked or expired."""

    status, code = 401, "unauthorized"


class Unauthorized(AuthenticationError):
    """Missing, malformed, unknown or revoked API key (401)."""

    code = "unauthorized"


class Expired(AuthenticationError):
    """The API key is past its expiry (401)."""

    code = "expired"


class Forbidden(APIError):
    """The key does not match the app or lacks a scope (403)."""

    status, code = 403, "forbidden"


class NotFound(APIError):
    """No such resource in this app, or no such route (404)."""

    status, code = 404, "not_found"


class MethodNotAllowed(APIError):
    """The route exists but not with this method (405)."""

    status, code = 405, "method_not_allowed"


class CursorExpired(APIError):
    """The event cursor is older than the kept events (410): list again, then follow from the latest."""

    status, code = 410, "cursor_expired"


class Conflict(APIError):
    """The request conflicts with what the server already holds (409)."""

    status, code = 409, "conflict"


class IdempotencyConflict(Conflict):
    """The Idempotency-Key was used before with another body (409)."""

    code = "idempotency_conflict"


class PayloadTooLarge(APIError):
    """The request body is over the limit (413)."""

    status, code = 413, "payload_too_large"


class RateLimited(APIError):
    """Too many requests in this window (429); retry_after is in seconds."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str = "Rate limit exceeded", retry_after: int = 1, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ServerError(APIError):
    """The server failed to answer (5xx); the same request may succeed later."""

    status, code = 500, "internal_error"


class InternalError(ServerError):
    """An unexpected server fault (500)."""

    code = "internal_error"


class ServiceUnavailable(ServerError):
    """A backing service (the database) cannot be reached (503)."""

    status, code = 503, "service_unavailable"


class InsufficientStorage(ServerError):
    """The server could not store the data: disk full (507)."""

    status, code = 507, "insufficient_storage"


class UnexpectedStatus(APIError):
    """An error status the API never sends (a proxy's 502 page, a 418); `status` is the response's."""

    code = "http_error"

    def __init__(self, message: str, status: int, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        # The one class whose status is not its own: it stands for every status the API does not use.
        self.status = status


# Every class the server sends, one per wire code.
WIRE_ERRORS: tuple[type[APIError], ...] = (
    InvalidRequest,
    Unauthorized,
    Expired,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    CursorExpired,
    IdempotencyConflict,
    PayloadTooLarge,
    RateLimited,
    InternalError,
    ServiceUnavailable,
    InsufficientStorage,
)

BY_CODE: dict[str, type[APIError]] = {cls.code: cls for cls in WIRE_ERRORS}

# For a code the SDK does not know (or a body that is not the envelope): the most general class of its status.
BY_STATUS: dict[int, type[APIError]] = {
    cls.status: cls
    for cls in (InvalidRequest, AuthenticationError, Forbidden, NotFound, MethodNotAllowed, CursorExpired, Conflict,
                PayloadTooLarge, RateLimited, ServerError, ServiceUnavailable, InsufficientStorage)
}


def error_from_response(status: int, body: object, retry_after: int | None = None) -> APIError:
    """Rebuild the error a server sent from its status and envelope (used by the SDK).

    The code picks the class when its status agrees with the response's; otherwise the status does, and the
    server's code is kept on the instance. A status the API never sends gives UnexpectedStatus.
    """
    code: str | None = None
    message = f"HTTP {status}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        envelope = body["error"]
        code = str(envelope["code"]) if "code" in envelope else None
        message = str(envelope.get("message", message))
    cls = BY_CODE.get(code) if code is not None else None
    if cls is None or cls.status != status:
        cls = BY_STATUS.get(status)
    if cls is None:
        return UnexpectedStatus(message, status, code=code)
    kept = code if code != cls.code else None
    if cls is RateLimited:
        return RateLimited(message, retry_after=retry_after or 1, code=kept)
    return cls(message, code=kept)
