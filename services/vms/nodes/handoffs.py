"""Which helper edge may post detections for which source node: the optimizer's current hand-off.

During an overload hand-off the helper edge analyses the source edge's camera. It posts the
detections under the source's nid with its own token, marked ``analysed_by`` = its nid; the VMS
accepts such a summary only while the optimizer's routing for the source (``GET /routing/{nid}``,
contract ``EdgeRouting``) says this helper analyses it. So the helper holds no credential of the
source edge, and once the hand-off ends (or the optimizer never made it) its posts are refused.

Answers are cached per source: a yes for ``VMS_HANDOFF_CACHE_S`` (a hand-back is seen at most that
late), a no or an unreachable optimizer for ``VMS_HANDOFF_MISS_CACHE_S`` (a helper posting every
second costs the optimizer one call a second at most per source). An unreachable optimizer is a
no: refusing is the safe side, and the helper keeps the summaries in its buffer and retries.
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.vms.settings import VmsSettings
from shared.contracts.routing import EdgeRouting
from shared.errors import DomainError
from shared.service_client import ServiceClient

log = logging.getLogger("edge.vms.handoffs")


class HandoffCheck:
    def __init__(self, settings: VmsSettings):
        self.settings = settings
        self._optimizer = ServiceClient(
            "optimizer",
            settings.optimizer_url,
            token=settings.own_credential(),
            timeout=settings.notify_timeout_s,
        )
        # source nid -> (helper nid or None, valid until monotonic time)
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        await self._optimizer.aclose()

    async def allows(self, helper_nid: str, source_nid: str) -> bool:
        """The optimizer's current hand-off says ``helper_nid`` analyses ``source_nid``."""
        cached = self._fresh(source_nid)
        if cached is not None:
            return cached[0] == helper_nid
        lock = self._locks.setdefault(source_nid, asyncio.Lock())
        async with lock:  # one call per source at a time; the others read its answer
            cached = self._fresh(source_nid)
            if cached is None:
                cached = (await self._ask(source_nid),)
        return cached[0] == helper_nid

    def _fresh(self, source_nid: str) -> tuple[str | None] | None:
        entry = self._cache.get(source_nid)
        if entry is None or entry[1] < time.monotonic():
            return None
        return (entry[0],)

    async def _ask(self, source_nid: str) -> str | None:
        try:
            routing = await self._optimizer.model("GET", f"/routing/{source_nid}", EdgeRouting)
        except DomainError as exc:
            log.warning("hand-off of %s unknown (optimizer: %s): refused", source_nid, exc)
            helper = None
        else:
            helper = routing.helper_nid if routing.helped_by(routing.helper_nid or "") else None
        ttl = self.settings.handoff_cache_s if helper else self.settings.handoff_miss_cache_s
        self._cache[source_nid] = (helper, time.monotonic() + ttl)
        if len(self._cache) > 10_000:  # bounded: drop the expired ones
            now = time.monotonic()
            self._cache = {k: v for k, v in self._cache.items() if v[1] >= now}
        return helper
