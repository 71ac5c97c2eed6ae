"""What agents behind NAT call, each with its edge's own token: their desired set, and their
observed state. An edge reads and reports only its own (the token's node id)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from edge_common.vocabulary import WorkloadState
from services.master.reconcile.service import ReconcilerDep
from shared.auth import EdgeAuth
from shared.contracts.updates import DesiredSet, ObservedSet
from shared.errors import Unavailable

router = APIRouter(tags=["edges behind NAT"])


@router.get(
    "/edges/me/desired",
    response_model=DesiredSet,
    summary="This edge's desired workloads (the agent pulls them on an update notice)",
)
async def my_desired(principal: EdgeAuth, reconciler: ReconcilerDep) -> DesiredSet:
    assert principal.nid is not None
    desired = reconciler.pull.board.desired(principal.nid)
    if desired is not None:
        return desired
    if reconciler.passes == 0:
        # A master just started knows nothing yet: "run nothing" would stop the edge's AIs.
        raise Unavailable(
            "the master has not finished its first reconcile pass yet",
            headers={"Retry-After": "5"},
        )
    if reconciler.pull.board.held(principal.nid):
        # Restarted while a deployment here waits for its AI: a set without it would stop it.
        raise Unavailable(
            "a deployment of this edge waits for its AI to be built; the master answers once it "
            "is ready (keep what runs)",
            headers={"Retry-After": "10"},
        )
    return reconciler.pull.board.empty(principal.nid)


@router.post(
    "/edges/me/observed",
    summary="What this edge's agent runs (and which desired set it applied)",
)
async def my_observed(body: ObservedSet, principal: EdgeAuth, reconciler: ReconcilerDep) -> dict:
    assert principal.nid is not None
    pull = reconciler.pull
    board = pull.board.edge(principal.nid)
    before = board.observed
    pull.board.report(principal.nid, body)
    for seconds in body.patch_apply_seconds:
        pull.patch_apply.observe(seconds)
    running = {w.name for w in body.workloads if w.state == WorkloadState.RUNNING}
    if (
        body.notice_sent_at is not None
        and body.applied_tag == board.tag
        and board.latency_tag != board.tag
        and set(board.committed) <= running
    ):
        board.latency_tag = board.tag
        pull.notice_to_running.observe(max(0.0, time.time() - body.notice_sent_at))
    if _states(before) != _states(body):
        reconciler.trigger()  # setup hears about the change at once, not at the next period
    return {"accepted": True, "tag": board.tag}


def _states(observed: ObservedSet | None) -> list[tuple]:
    if observed is None:
        return []
    return sorted((w.name, w.state, w.generation, w.restarts, w.reason) for w in observed.workloads)
