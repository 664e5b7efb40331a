"""Fixed one-minute windows per key, counted behind a tiny protocol: in memory or in Redis."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 60
CONDITIONAL_CEILING = 10  # requests answered 304 per window: this many times the limit (SPEC section 12)

log = logging.getLogger("chipp_builder.ratelimit")


class CounterUnavailable(Exception):
    """A shared counter could not be reached; the caller may count elsewhere."""


class WindowCounter(Protocol):
    """Counts hits of a key in one window."""

    async def hit(self, key: str, window: int, ttl: int) -> int:
        """Count one request of `key` in `window` and return the count so far."""
        ...

    async def hit_and_peek(self, key: str, other: str, window: int, ttl: int) -> tuple[int, int]:
        """Count one request of `key` in `window`; return its count and, uncounted, `other`'s."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryCounter:
    """One process's counter: a dict of the current windows, pruned as windows pass."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._window = 0

    async def hit(self, key: str, window: int, ttl: int) -> int:
        """Count one request of `key` in `window` in this process and return the count so far."""
        if window != self._window:
            # A new window: forget the ones that can no longer be asked about.
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            self._window = max(self._window, window)
        count = self._counts.get((key, window), 0) + 1
        self._counts[(key, window)] = count
        return count

    async def hit_and_peek(self, key: str, other: str, window: int, ttl: int) -> tuple[int, int]:
        """Count `key` in this process; return its count and `other`'s."""
        return await self.hit(key, window, ttl), self._counts.get((other, window), 0)

    async def close(self) -> None:
        """Forget every count."""
        self._counts.clear()


class FallbackCounter:
    """A shared counter that degrades to a local one while it is unreachable, and returns to it by itself.

    Policy: a request must never fail or stall because the shared counter is down, so while it is, this
    process counts its own window (the limit then holds per process, not across them). One warning is
    logged when the shared counter is lost and one info line when it is back. While it is down, one
    request per `retry_seconds` probes it; every other request goes straight to the local counter, so an
    outage costs at most one socket timeout per process per retry period.
    """

    def __init__(self, primary: WindowCounter, fallback: WindowCounter, retry_seconds: float = 5.0) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_seconds = retry_seconds
        self._retry_at: float | None = None  # None while the primary is healthy

    @property
    def degraded(self) -> bool:
        """Whether requests are being counted locally because the primary is unreachable."""
        return self._retry_at is not None

    def _primary_due(self) -> bool:
        """Whether to ask the primary: it is healthy, or this request is the probe (which pushes the next one
        out, so concurrent requests do not all wait)."""
        if self._retry_at is None:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.retry_seconds
        return True

    def _lost(self, exc: CounterUnavailable) -> None:
        if self._retry_at is None:
            log.warning("rate-limit counter unreachable (%s); counting per process until it returns", exc)
        self._retry_at = time.monotonic() + self.retry_seconds

    def _reached(self) -> None:
        if self._retry_at is not None:
            self._retry_at = None
            log.info("rate-limit counter reachable again; counting shared windows")

    async def hit(self, key: str, window: int, ttl: int) -> int:
        """Count on the primary when it answers, else locally."""
        if not self._primary_due():
            return await self.fallback.hit(key, window, ttl)
        try:
            count = await self.primary.hit(key, window, ttl)
        except CounterUnavailable as exc:
            self._lost(exc)
            return await self.fallback.hit(key, window, ttl)
        self._reached()
        return count

    async def hit_and_peek(self, key: str, other: str, window: int, ttl: int) -> tuple[int, int]:
        """As hit: on the primary when it answers, else locally."""
        if not self._primary_due():
            return await self.fallback.hit_and_peek(key, other, window, ttl)
        try:
            counts = await self.primary.hit_and_peek(key, other, window, ttl)
        except CounterUnavailable as exc:
            self._lost(exc)
            return await self.fallback.hit_and_peek(key, other, window, ttl)
        self._reached()
        return counts

    async def close(self) -> None:
        """Close both counters."""
        try:
            await self.primary.close()
        finally:
            await self.fallback.close()


@dataclass(frozen=True, slots=True)
class Decision:
    """The limiter's answer for one request."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The X-RateLimit-* headers for an admitted request."""
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_at).encode()),
        ]


class RateLimiter:
    """`limit` requests per UTC minute per key."""

    def __init__(self, counter: WindowCounter, limit: int) -> None:
        self.counter = counter
        self.limit = limit

    async def check(self, key: str, now: float | None = None) -> Decision:
        """Count this request and say whether it is admitted."""
        now = time.time() if now is None else now
        window = int(now // WINDOW_SECONDS)
        reset_at = (window + 1) * WINDOW_SECONDS
        count = await self.counter.hit(key, window, WINDOW_SECONDS * 2)
        retry_after = max(1, math.ceil(reset_at - now))
        return Decision(
            allowed=count <= self.limit,
            limit=self.limit,
            remaining=max(0, self.limit - count),
            reset_at=reset_at,
            retry_after=retry_after,
        )

    async def check_conditional(self, key: str, now: float | None = None) -> Decision:
        """Count a request answered 304 against its own ceiling (ten times the limit), not against `key`'s
        limit; the decision's headers show `key`'s own count, unchanged."""
        now = time.time() if now is None else now
        window = int(now // WINDOW_SECONDS)
        reset_at = (window + 1) * WINDOW_SECONDS
        conditional, count = await self.counter.hit_and_peek("304:" + key, key, window, WINDOW_SECONDS * 2)
        return Decision(
            allowed=conditional <= self.limit * CONDITIONAL_CEILING,
            limit=self.limit,
            remaining=max(0, self.limit - count),
            reset_at=reset_at,
            retry_after=max(1, math.ceil(reset_at - now)),
        )
