"""Fixed one-minute windows per key, counted behind a tiny protocol: in memory or in Redis."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 60


class WindowCounter(Protocol):
    """Counts hits of a key in one window."""

    async def hit(self, key: str, window: int, ttl: int) -> int:
        """Count one request of `key` in `window` and return the count so far."""
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
        if window != self._window:
            # A new window: forget the ones that can no longer be asked about.
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            self._window = max(self._window, window)
        count = self._counts.get((key, window), 0) + 1
        self._counts[(key, window)] = count
        return count

    async def close(self) -> None:
        self._counts.clear()


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
