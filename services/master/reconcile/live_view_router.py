"""Live view through NAT, the master's part: an operator (the console) asks for an edge's live
view; the request goes to the edge over the connection the master already has with it: the pull
agent's MQTT topic ``<prefix>/<nid>/live``, or the push agent's API (``PUT /live-view``). The
edge's YOLO worker then posts frames to the VMS until the request's TTL runs out; the console
renews it while someone watches."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path

from services.master.drivers.base import DriverError, DriverUnavailable, EdgeTarget
from services.master.reconcile.service import ReconcilerDep
from shared.auth import OperatorAuth
from shared.contracts.live_view import LiveViewAsk, LiveViewRequest
from shared.errors import Conflict, NotFound, Unavailable

log = logging.getLogger("edge.master.live")

router = APIRouter(tags=["live view"])

Nid = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.post(
    "/edges/{nid}/live-view",
    summary="Start, renew (ttl_s > 0) or stop (ttl_s = 0) an edge's live view",
)
async def live_view(
    nid: Nid, body: LiveViewAsk, _: OperatorAuth, reconciler: ReconcilerDep
) -> dict:
    request = LiveViewRequest(nid=nid, **body.model_dump())
    reached = reconciler.reached.get(nid)
    if reached is None and reconciler.pull.board.known(nid) is not None:
        reached = (reconciler.pull.driver, EdgeTarget(name=nid, nid=nid))
    if reached is None:
        raise NotFound(
            f"edge {nid} is not one this master has reached: it has no AI deployed here yet, or "
            "the first reconcile pass has not run"
        )
    driver, target = reached
    try:
        await driver.request_live_view(target, request)
    except DriverUnavailable as exc:
        raise Unavailable(f"edge {nid}: {exc}", headers={"Retry-After": "5"}) from exc
    except DriverError as exc:
        raise Conflict(f"edge {nid}: {exc}") from exc
    return {"sent": True, "nid": nid, "runtime": driver.kind, "ttl_s": body.ttl_s}
