"""The Redis window counter: one atomic round trip per request, shared by every worker and host."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from chipp_builder.server.ratelimit import CounterUnavailable, FallbackCounter, MemoryCounter

# INCR and the first EXPIRE in one script: Redis runs it atomically, so no two workers can read the same
# count, and a window's key can never be left without its expiry (as it could between two separate calls).
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""

# The 304's count: its own key counted as above, and the key's own count read (not counted), in one round trip.
_HIT_AND_PEEK_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {count, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""

DEFAULT_PREFIX = "chipp:ratelimit:"


class RedisCounter:
    """Fixed-window counts in Redis, under `prefix`; every failure is raised as CounterUnavailable."""

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        *,
        socket_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        max_connections: int = 50,
    ) -> None:
        self.prefix = prefix
        # The timeouts matter only when Redis is silent (a refused connection fails at once), and then only
        # for one probe per retry period; they are not shorter so that a busy event loop, slow to read a
        # prompt answer, is not mistaken for an outage (which would loosen the limit to per process).
        # A blocking pool: a burst of requests waits (briefly: a hit takes well under a millisecond) for one
        # of max_connections connections, where the default pool would fail the hits beyond its size.
        # No client-side retries: redis-py's default retries with backoff would turn one dead Redis into
        # seconds of waiting per request; the fallback counter decides when to try again instead.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._client = Redis.from_pool(pool)
        self._hit = self._client.register_script(_HIT_SCRIPT)
        self._hit_and_peek = self._client.register_script(_HIT_AND_PEEK_SCRIPT)

    def key_for(self, key: str, window: int) -> str:
        """The Redis key holding `key`'s count in `window`."""
        return f"{self.prefix}{window}:{key}"

    async def hit(self, key: str, window: int, ttl: int) -> int:
        """Count one request of `key` in `window` across every process and return the count so far."""
        try:
            # EVALSHA: one round trip (the script is loaded once, on the first NOSCRIPT answer).
            return int(await self._hit(keys=[self.key_for(key, window)], args=[ttl]))
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError and refused connections
            raise CounterUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def hit_and_peek(self, key: str, other: str, window: int, ttl: int) -> tuple[int, int]:
        """Count `key` across every process; return its count and `other`'s (uncounted)."""
        try:
            keys = [self.key_for(key, window), self.key_for(other, window)]
            count, peeked = await self._hit_and_peek(keys=keys, args=[ttl])
            return int(count), int(peeked)
        except (RedisError, OSError) as exc:
            raise CounterUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def shared_counter(url: str, prefix: str = DEFAULT_PREFIX, retry_seconds: float = 5.0) -> FallbackCounter:
    """The counter for several workers: Redis, falling back to this process's memory while it is down."""
    return FallbackCounter(RedisCounter(url, prefix), MemoryCounter(), retry_seconds=retry_seconds)
