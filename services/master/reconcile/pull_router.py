"""What agents behind NAT call, each with its edge's own token: their desired set, and their
observed state. An edge reads and reports only its own (the token's node id)."""

from __future__ import annotations

from fastapi import APIRouter, Response

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
async def my_desired(
    principal: EdgeAuth, reconciler: ReconcilerDep, response: Response
) -> DesiredSet:
    assert principal.nid is not None
    desired = reconciler.pull.board.desired(principal.nid)
    if desired is not None:
        # As the fast path answers (a set that arrived just after it looked comes here).
        response.headers["ETag"] = f'"{desired.tag}"'
        return desired
    shared = reconciler.pull.shared
    if shared is not None and not shared.leads:
        # Another process leads: it writes every set it commits (held edges: none yet).
        raise Unavailable(
            "the leading master process has not published a set for this edge yet",
            headers={"Retry-After": "5"},
        )
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
    at = None
    if pull.shared is not None:
        at = await pull.shared.post_report(principal.nid, body)  # reaches the leader, any process
        if not pull.shared.leads:
            known = pull.board.known(principal.nid)
            return {"accepted": True, "tag": known.tag if known is not None else ""}
    if pull.take_report(principal.nid, body, at=at):
        reconciler.trigger()  # setup hears about the change at once, not at the next period
    return {"accepted": True, "tag": pull.board.edge(principal.nid).tag}
