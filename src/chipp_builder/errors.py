"""One exception class per API error code; the server raises them and the SDK maps responses back to them."""

from __future__ import annotations


class ChippError(Exception):
    """An API error: HTTP status, stable code, human message."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str = "Internal server error") -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, dict[str, str]]:
        """The error envelope this error renders as."""
        return {"error": {"code": self.code, "message": self.message}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class InvalidRequest(ChippError):
    """A parameter or body failed validation (400)."""

    status, code = 400, "invalid_request"


class Unauthorized(ChippError):
    """Missing, malformed, unknown or revoked API key (401)."""

    status, code = 401, "unauthorized"


class Expired(ChippError):
    """The API key is past its expiry (401)."""

    status, code = 401, "expired"


class Forbidden(ChippError):
    """The key does not match the app or lacks a scope (403)."""

    status, code = 403, "forbidden"


class NotFound(ChippError):
    """No such resource in this app, or no such route (404)."""

    status, code = 404, "not_found"


class MethodNotAllowed(ChippError):
    """The route exists but not with this method (405)."""

    status, code = 405, "method_not_allowed"


class IdempotencyConflict(ChippError):
    """The Idempotency-Key was used before with another body (409)."""

    status, code = 409, "idempotency_conflict"


class PayloadTooLarge(ChippError):
    """The request body is over the limit (413)."""

    status, code = 413, "payload_too_large"


class RateLimited(ChippError):
    """Too many requests in this window (429); retry_after is in seconds."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str = "Rate limit exceeded", retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InternalError(ChippError):
    """An unexpected server fault (500)."""

    status, code = 500, "internal_error"


class ServiceUnavailable(ChippError):
    """A backing service (the database) cannot be reached (503)."""

    status, code = 503, "service_unavailable"


class InsufficientStorage(ChippError):
    """The server could not store the data: disk full (507)."""

    status, code = 507, "insufficient_storage"


ALL_ERRORS: tuple[type[ChippError], ...] = (
    InvalidRequest,
    Unauthorized,
    Expired,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    IdempotencyConflict,
    PayloadTooLarge,
    RateLimited,
    InternalError,
    ServiceUnavailable,
    InsufficientStorage,
)

BY_CODE: dict[str, type[ChippError]] = {cls.code: cls for cls in ALL_ERRORS}


def error_from_response(status: int, body: object, retry_after: int | None = None) -> ChippError:
    """Rebuild the error a server sent from its status and envelope (used by the SDK)."""
    code, message = "internal_error", f"HTTP {status}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code", code))
        message = str(body["error"].get("message", message))
    cls = BY_CODE.get(code)
    if cls is None:
        err: ChippError = ChippError(message)
        err.status, err.code = status, code
        return err
    if cls is RateLimited:
        return RateLimited(message, retry_after=retry_after or 1)
    err = cls(message)
    err.status = status
    return err
