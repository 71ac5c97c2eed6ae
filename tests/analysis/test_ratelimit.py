"""The token bucket's arithmetic against the real Redis: exact to the configured rate."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from services.analysis.ratelimit import Bucket, LocalBuckets, RateLimiter
from tests.analysis.conftest import REDIS_URL


async def count_accepted(take, seconds: float) -> tuple[int, float]:
    """Takes for ``seconds``; the clock starts once the first take (filling the bucket) is back."""
    assert await take() == 0
    accepted = 1
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        accepted += (await take()) == 0
    return accepted, time.perf_counter() - started


async def test_the_redis_bucket_is_exact_to_the_rate(prefix):
    # Thousands of refused calls between the tokens; capacity = 1 s of the rate, so that a stall
    # of this (shared) machine shorter than that loses no token.
    redis = Redis.from_url(REDIS_URL)
    try:
        limiter = RateLimiter(
            redis, prefix, rate=100.0, capacity=100.0, global_rate=0, global_capacity=1
        )
        accepted, elapsed = await count_accepted(lambda: limiter.take("edge:0x01"), 1.5)
        expected = 100 + 100 * elapsed
        assert expected - 2 <= accepted <= expected + 1, (accepted, expected)
        assert not limiter.degraded
    finally:
        await redis.aclose()


async def test_the_in_process_fallback_is_exact_too():
    buckets = LocalBuckets()
    spec = [Bucket("x", 100.0, 100.0)]

    async def take() -> float:
        return buckets.take(spec)

    accepted, elapsed = await count_accepted(take, 1.0)
    expected = 100 + 100 * elapsed
    assert expected - 2 <= accepted <= expected + 1, (accepted, expected)
    # Refused: the seconds until one token is there.
    empty = LocalBuckets()
    one = [Bucket("y", 0.5, 1.0)]
    assert empty.take(one) == 0 and 1.9 < empty.take(one) <= 2.0
