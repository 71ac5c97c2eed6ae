"""Result cache keyed by the image's SHA-256 and the model: Redis (TTL, size bound) in front,
an in-process LRU behind it that keeps answering while Redis is down.

The worker writes Redis entries in the same transaction as the job's result (see queue.py); the
gateway keeps every result it hands out in its LRU too.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.contracts.analysis import AnalysisResult

log = logging.getLogger("edge.analysis.cache")


def cache_key(prefix: str, model: str, sha256: str) -> str:
    return f"{prefix}:cache:{model}:{sha256}"


def index_key(prefix: str) -> str:
    """Sorted set of cache keys by time written: the size bound evicts the oldest."""
    return f"{prefix}:cache-index"


class LocalLru:
    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str) -> str | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
        if self.size <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class ResultCache:
    def __init__(self, redis: Redis, prefix: str, *, local_entries: int):
        self.redis = redis
        self.prefix = prefix
        self.local = LocalLru(local_entries)
        self.degraded = False

    async def get(self, model: str, sha256: str) -> AnalysisResult | None:
        key = cache_key(self.prefix, model, sha256)
        raw: str | bytes | None
        try:
            raw = await self.redis.get(key)
            self.degraded = False
        except RedisError as exc:
            if not self.degraded:
                log.warning("result cache falls back to this process: Redis unreachable (%s)", exc)
            self.degraded = True
            raw = None
        if raw is None:
            raw = self.local.get(key)
        if raw is None:
            return None
        return AnalysisResult.model_validate_json(raw)

    def remember(self, result: AnalysisResult) -> None:
        if result.status == "done":
            self.local.put(
                cache_key(self.prefix, result.model, result.image_sha256), result.model_dump_json()
            )
