"""The fixed-window limiter (SPEC section 1): UTC minutes, counts per key, headers, Retry-After."""

from __future__ import annotations

import pytest

from chipp_builder.server.ratelimit import WINDOW_SECONDS, MemoryCounter, RateLimiter

T0 = 1_750_000_020  # a minute boundary


async def test_the_memory_counter_counts_each_key_in_each_window():
    counter = MemoryCounter()
    assert [await counter.hit("a", 1, 120) for _ in range(3)] == [1, 2, 3]
    assert await counter.hit("b", 1, 120) == 1


async def test_the_memory_counter_starts_again_in_a_new_window():
    counter = MemoryCounter()
    await counter.hit("a", 1, 120)
    await counter.hit("a", 1, 120)
    assert await counter.hit("a", 2, 120) == 1


async def test_the_memory_counter_forgets_past_windows():
    counter = MemoryCounter()
    for key in ("a", "b", "c"):
        await counter.hit(key, 1, 120)
    await counter.hit("a", 2, 120)
    assert {window for _, window in counter._counts} == {2}


async def test_the_memory_counter_close_forgets_everything():
    counter = MemoryCounter()
    await counter.hit("a", 1, 120)
    await counter.close()
    assert await counter.hit("a", 1, 120) == 1


def test_a_window_is_one_minute():
    assert WINDOW_SECONDS == 60


async def test_a_first_request_is_admitted_with_the_limit_less_one_remaining():
    decision = await RateLimiter(MemoryCounter(), 120).check("k", now=T0 + 10)
    assert (decision.allowed, decision.limit, decision.remaining, decision.reset_at) == (
        True,
        120,
        119,
        T0 + 60,
    )


async def test_the_limit_admits_exactly_limit_requests_per_window():
    limiter = RateLimiter(MemoryCounter(), 3)
    decisions = [await limiter.check("k", now=T0 + n) for n in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]


async def test_windows_are_utc_minutes():
    limiter = RateLimiter(MemoryCounter(), 1)
    assert (await limiter.check("k", now=T0 - 0.001)).reset_at == T0
    first = await limiter.check("k", now=T0)
    last = await limiter.check("k", now=T0 + 59.999)
    assert (first.allowed, last.allowed) == (True, False)
    assert first.reset_at == last.reset_at == T0 + 60
    assert (await limiter.check("k", now=T0 + 60)).allowed


@pytest.mark.parametrize(
    ("offset", "retry_after"), [(0, 60), (0.5, 60), (1, 59), (30.4, 30), (59, 1), (59.9999, 1)]
)
async def test_retry_after_is_the_seconds_to_the_next_minute_rounded_up_and_at_least_one(offset, retry_after):
    limiter = RateLimiter(MemoryCounter(), 1)
    await limiter.check("k", now=T0 + offset)
    decision = await limiter.check("k", now=T0 + offset)
    assert not decision.allowed
    assert decision.retry_after == retry_after


async def test_keys_are_limited_separately():
    limiter = RateLimiter(MemoryCounter(), 1)
    assert (await limiter.check("key:a", now=T0)).allowed
    assert (await limiter.check("addr:a", now=T0)).allowed
    assert not (await limiter.check("key:a", now=T0)).allowed


async def test_headers_carry_limit_remaining_and_reset():
    decision = await RateLimiter(MemoryCounter(), 120).check("k", now=T0 + 5)
    assert decision.headers() == [
        (b"x-ratelimit-limit", b"120"),
        (b"x-ratelimit-remaining", b"119"),
        (b"x-ratelimit-reset", str(T0 + 60).encode()),
    ]
