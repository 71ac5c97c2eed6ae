"""The token a deployed AI posts to the VMS with.

The master mints nothing. On the agent runtime the agent hands its workloads the edge's own token
(which it renews), so the master sends none. On kubernetes and docker there is no agent: the
master asks setup for a token of that edge (``POST /edges/{id}/workload-token``, a grant of the
master's credential only), revocable and expiring like any edge token, and reuses it until half
of its lifetime is gone, so a workload's environment changes (and it restarts) only then.
"""

from __future__ import annotations

import time
from typing import Any

from services.master.setup_client import SetupClient

AGENT_RUNTIME = "agent"


class WorkloadTokens:
    def __init__(self, setup: SetupClient):
        self.setup = setup
        self._cache: dict[
            int, tuple[str, float, float]
        ] = {}  # edge id -> (token, renew after, expires)

    async def for_edges(
        self, edges: list[dict[str, Any]], runtimes: dict[int, str]
    ) -> dict[str, str]:
        """nid -> token, for the edges not on the agent runtime that have running deployments."""
        now = time.time()
        out: dict[str, str] = {}
        for edge in edges:
            if runtimes.get(edge["id"], AGENT_RUNTIME) == AGENT_RUNTIME:
                continue
            cached = self._cache.get(edge["id"])
            if cached is None or cached[1] <= now:
                answer = await self.setup.workload_token(edge["id"])
                expires = float(answer.get("expires_at") or now + 3600)
                cached = (answer["token"], now + (expires - now) / 2, expires)
                self._cache[edge["id"]] = cached
            out[edge["nid"]] = cached[0]
        return out
