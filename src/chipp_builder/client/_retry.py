"""The retry policy, in one place for both clients: what is retried, and how long to wait before it.

Hand-written rather than tenacity: the rules are a few lines (Retry-After on 429, capped exponential
backoff with jitter on 5xx and transport errors, never a write the server cannot deduplicate), they must
drive a sync and an async loop alike with an injectable sleep, and the SDK stays at httpx + pydantic.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from chipp_builder.client._core import parse_retry_after

# 501 and 505 say the server will never do this, so a retry cannot help.
_NOT_TRANSIENT_5XX = frozenset({501, 505})
# Transport errors worth a second try; others (a bad URL scheme, a malformed request) fail the same way again.
_TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry a failed request and how long to wait first.

    A request is retried only when it is retry-safe (a GET, or a POST carrying an Idempotency-Key), at most
    `max_retries` times: on 429 after the server's Retry-After (given up at once when that is longer than
    `max_retry_after`), and on 5xx and transport errors after min(backoff_max, backoff_base * 2**attempt)
    seconds scaled by a random factor in [0.5, 1) so that many clients do not retry in lockstep.
    """

    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt + 1` after a 5xx or transport error."""
        # 2.0, not 2: int ** int is typed Any (a negative exponent would make it a float).
        ceiling = min(self.backoff_max, self.backoff_base * (2.0**attempt))
        return ceiling * (0.5 + 0.5 * self.random())

    def after_response(self, retry_safe: bool, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying this response, or None to hand it back (success or final error)."""
        status = response.status_code
        if attempt >= self.max_retries or not retry_safe:
            return None
        if status == 429:
            wait = parse_retry_after(response.headers)
            if wait is None:
                return self.backoff(attempt)
            return wait if wait <= self.max_retry_after else None
        if status >= 500 and status not in _NOT_TRANSIENT_5XX:
            wait = parse_retry_after(response.headers)
            # A 503 may say when to come back; otherwise back off.
            if wait is not None and wait <= self.max_retry_after:
                return wait
            return self.backoff(attempt)
        return None

    def after_error(self, retry_safe: bool, error: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying after a transport error, or None to raise it."""
        if attempt >= self.max_retries or not retry_safe or not isinstance(error, _TRANSIENT_ERRORS):
            return None
        return self.backoff(attempt)
