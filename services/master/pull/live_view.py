"""Live view through NAT, the master's part: an operator (the console) asks for an edge's live
view; the request goes to the edge over the connection its agent already holds (the MQTT notice
channel, topic ``<prefix>/<nid>/live``). The edge's YOLO worker then posts frames to the VMS until
the request's TTL runs out; the console renews it while someone watches."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path

from services.master.runners import RunnersDep
from shared.auth import OperatorAuth
from shared.contracts.live_view import LiveViewAsk, LiveViewRequest
from shared.errors import Unavailable

log = logging.getLogger("edge.master.live")

router = APIRouter(tags=["live view"])

Nid = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.post(
    "/edges/{nid}/live-view",
    summary="Start, renew (ttl_s > 0) or stop (ttl_s = 0) an edge's live view",
)
async def live_view(nid: Nid, body: LiveViewAsk, _: OperatorAuth, runners: RunnersDep) -> dict:
    request = LiveViewRequest(nid=nid, **body.model_dump())
    if not runners.reconciler.pull.notices.request_live_view(request):
        raise Unavailable(
            "this master has no MQTT broker (MASTER_MQTT_URL): it cannot reach the edge",
            headers={"Retry-After": "30"},
        )
    return {"sent": True, "nid": nid, "ttl_s": body.ttl_s}
