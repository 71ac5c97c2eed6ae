"""The token a deployed AI posts to the VMS with.

The master mints nothing. On the agent runtime the agent hands its workloads the edge's own token
(which it renews), so the master sends none. On kubernetes and docker there is no agent: the
master asks setup for a token of that edge (``POST /edges/{id}/workload-token``, a grant of the
master's credential only), revocable and expiring like any edge token, and reuses it until half
of its lifetime is gone, so a workload's environment changes (and it restarts) only then.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from services.master.setup_client import SetupClient
from shared.contracts.fleet import FleetEdge
from shared.contracts.master import Runtime

# An answer without an expiry is asked for again after this long.
DEFAULT_LIFETIME_S = 3600.0


@dataclass(frozen=True)
class _Cached:
    token: str
    renew_after: float
    expires: float


class WorkloadTokens:
    def __init__(self, setup: SetupClient):
        self.setup = setup
        self._cache: dict[int, _Cached] = {}  # edge id -> its token

    async def for_edges(
        self, edges: list[FleetEdge], runtimes: Mapping[int, Runtime]
    ) -> dict[str, str]:
        """nid -> token, for the edges not on the agent runtime that have running deployments."""
        now = time.time()
        out: dict[str, str] = {}
        for edge in edges:
            if runtimes.get(edge["id"], Runtime.AGENT) in (Runtime.AGENT, Runtime.AGENT_PULL):
                continue
            cached = self._cache.get(edge["id"])
            if cached is None or cached.renew_after <= now:
                answer = await self.setup.workload_token(edge["id"])
                expires = float(answer.expires_at or now + DEFAULT_LIFETIME_S)
                cached = _Cached(answer.token, now + (expires - now) / 2, expires)
                self._cache[edge["id"]] = cached
            out[edge["nid"]] = cached.token
        return out
