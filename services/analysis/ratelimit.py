"""Token buckets per caller and one for everyone, in Redis (one atomic script), with an
in-process fallback while Redis is down (each gateway process then limits on its own).

A bucket holds at most ``capacity`` tokens and gains ``rate`` tokens a second; a request takes
one token from its caller's bucket and from the global one, or from neither: when either is
short, it is refused with the seconds until it would have been allowed.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("edge.analysis.ratelimit")

# KEYS: bucket keys; ARGV: cost, then rate and capacity per key. Time is Redis's own clock, so
# every gateway process shares one notion of "now".
TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = tonumber(ARGV[1])
local levels = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local cap = tonumber(ARGV[2 * i + 1])
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1])
  local ts = tonumber(b[2])
  if tokens == nil then tokens = cap; ts = now end
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  levels[i] = tokens
  if tokens < cost then wait = math.max(wait, (cost - tokens) / rate) end
end
-- A refusal changes nothing (the level follows from the last take); a take writes the level and
-- the time in full precision (tostring would keep 14 digits: 0.1 ms of a 10-digit epoch).
if wait == 0 then
  for i, key in ipairs(KEYS) do
    local rate = tonumber(ARGV[2 * i])
    local cap = tonumber(ARGV[2 * i + 1])
    local left = string.format('%.17g', levels[i] - cost)
    redis.call('HSET', key, 'tokens', left, 'ts', string.format('%.6f', now))
    redis.call('EXPIRE', key, math.ceil(cap / rate) + 1)
  end
end
return tostring(wait)
"""


@dataclass(frozen=True)
class Bucket:
    key: str
    rate: float
    capacity: float


class LocalBuckets:
    """The same arithmetic in this process (the fallback)."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, buckets: list[Bucket], cost: float = 1.0) -> float:
        now = time.monotonic()
        levels = []
        wait = 0.0
        for b in buckets:
            tokens, ts = self._state.get(b.key, (b.capacity, now))
            tokens = min(b.capacity, tokens + max(0.0, now - ts) * b.rate)
            levels.append(tokens)
            if tokens < cost:
                wait = max(wait, (cost - tokens) / b.rate)
        if wait == 0:
            for b, tokens in zip(buckets, levels, strict=True):
                self._state[b.key] = (tokens - cost, now)
        return wait


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        rate: float,
        capacity: float,
        global_rate: float,
        global_capacity: float,
    ):
        self.redis = redis
        self.prefix = prefix
        self.rate, self.capacity = rate, capacity
        self.global_rate, self.global_capacity = global_rate, global_capacity
        self.local = LocalBuckets()
        self._script = redis.register_script(TAKE_SCRIPT)
        self.degraded = False

    def buckets_for(self, caller: str) -> list[Bucket]:
        buckets = []
        if self.rate > 0:
            buckets.append(Bucket(f"{self.prefix}:bucket:{caller}", self.rate, self.capacity))
        if self.global_rate > 0:
            buckets.append(
                Bucket(f"{self.prefix}:bucket:*", self.global_rate, self.global_capacity)
            )
        return buckets

    async def take(self, caller: str) -> float:
        """0 when allowed (a token taken), else the seconds to wait."""
        buckets = self.buckets_for(caller)
        if not buckets:
            return 0.0
        args: list[float] = [1.0]
        for b in buckets:
            args += [b.rate, b.capacity]
        try:
            wait = float(await self._script(keys=[b.key for b in buckets], args=args))
            self.degraded = False
            return wait
        except RedisError as exc:
            if not self.degraded:
                log.warning("rate limit falls back to this process: Redis unreachable (%s)", exc)
            self.degraded = True
            return self.local.take(buckets)


def retry_after(wait_s: float) -> int:
    """Whole seconds for the Retry-After header, at least 1."""
    return max(1, math.ceil(wait_s))
