"""Which package archives an edge's token may fetch: those of the AIs deployed on that edge.

The rule: an edge reads only its own. An edge fetches the archive of every AI with a deployment
*desired running* on it; a removed deployment needs no archive (the agent stops what it runs), so
its AI's archive is no longer the edge's to fetch. The view comes from setup's fleet snapshot,
the one each reconcile pass reads anyway (``remember``); an archive not in it (a deployment made
since the last pass) makes one more snapshot read before the fetch is refused. Concurrent misses
share one read: a request reuses a read that started after it arrived.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import Depends

from services.master.setup_client import SetupClient
from shared.contracts.fleet import DesiredState, FleetSnapshot
from shared.deps import from_app_state


def digests_by_nid(snapshot: FleetSnapshot) -> dict[str, frozenset[str]]:
    """Per edge node id: the package digests of the AIs with a deployment desired running there."""
    nids = {e["id"]: e["nid"] for e in snapshot["edges"]}
    digests = {
        a["id"]: a["package_digest"] for a in snapshot["ai_packages"] if a.get("package_digest")
    }
    out: dict[str, set[str]] = {}
    for dep in snapshot["deployments"]:
        if dep["desired"] != DesiredState.RUNNING:
            continue
        nid, digest = nids.get(dep["edge_id"]), digests.get(dep["ai_id"])
        if nid is not None and digest is not None:
            out.setdefault(nid, set()).add(digest)
    return {nid: frozenset(found) for nid, found in out.items()}


class ArtifactAccess:
    """The edges' view of their deployed archives, from the latest fleet snapshot."""

    def __init__(self, setup: SetupClient):
        self._setup = setup
        self._by_nid: dict[str, frozenset[str]] = {}
        self._read_lock = asyncio.Lock()
        self._last_read_started = float("-inf")  # time.monotonic() of the last on-demand read

    def remember(self, snapshot: FleetSnapshot) -> None:
        """Take the view of a snapshot read elsewhere (the reconcile pass)."""
        self._by_nid = digests_by_nid(snapshot)

    def known(self, nid: str, digest: str) -> bool:
        return digest in self._by_nid.get(nid, frozenset())

    async def allows(self, nid: str, digest: str) -> bool:
        """Whether edge ``nid`` may fetch ``digest``: from the view, else after one fresh read."""
        if self.known(nid, digest):
            return True
        arrived = time.monotonic()
        async with self._read_lock:
            if self._last_read_started < arrived:  # no read since this request came in
                self._last_read_started = time.monotonic()
                self.remember(await self._setup.snapshot())
        return self.known(nid, digest)


ArtifactAccessDep = Annotated[
    ArtifactAccess, Depends(from_app_state("artifact_access", ArtifactAccess))
]
