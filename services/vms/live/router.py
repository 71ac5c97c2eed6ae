"""Live view through NAT, the VMS's part: an edge's YOLO worker posts its annotated frames here
(its own token, its own node only) while a live-view request holds; the console waits for them
(``GET /live/{nid}/next``) and streams them to the browsers watching."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.vms.live.hub import LiveHubDep
from shared.auth import EdgeAuth, Principal, ReaderAuth
from shared.contracts.live_view import LiveFeedState
from shared.errors import Forbidden, Invalid

router = APIRouter(prefix="/live", tags=["live view"])

MAX_FRAME_BYTES = 2 * 1024 * 1024
Nid = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]


class LiveProblem(BaseModel):
    detail: str = Field(min_length=1, max_length=500, description="why no frame comes")


def _own(nid: str, principal: Principal) -> None:
    if principal.nid != nid:
        raise Forbidden(
            f"an edge posts only its own frames: nid must be {principal.nid!r}", field="nid"
        )


@router.post("/{nid}/frame", summary="An edge's live-view frame (JPEG body)", status_code=202)
async def post_frame(
    nid: Nid,
    request: Request,
    hub: LiveHubDep,
    principal: EdgeAuth,
    x_live_seq: Annotated[int, Header(ge=0)] = 0,
) -> dict:
    _own(nid, principal)
    jpeg = await request.body()
    if len(jpeg) > MAX_FRAME_BYTES:
        raise Invalid(f"a frame is {MAX_FRAME_BYTES} bytes at most", field="body")
    if not jpeg.startswith(b"\xff\xd8"):
        raise Invalid("the body must be a JPEG image", field="body")
    seq = hub.put_frame(nid, jpeg, x_live_seq)
    return {"seq": seq}


@router.post("/{nid}/problem", summary="An edge says why it sends no frame", status_code=202)
async def post_problem(nid: Nid, body: LiveProblem, hub: LiveHubDep, principal: EdgeAuth) -> dict:
    _own(nid, principal)
    hub.put_problem(nid, body.detail)
    return {"accepted": True}


@router.get("/{nid}", summary="What an edge has sent for its live view (counters, problem)")
async def live_state(nid: Nid, hub: LiveHubDep, _: ReaderAuth) -> LiveFeedState:
    return hub.feed(nid).state()


@router.get(
    "/{nid}/next",
    summary="The edge's next live frame after `after` (JPEG; 204 when none came in `wait_s`)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 204: {"description": "no new frame"}},
)
async def next_frame(
    nid: Nid,
    hub: LiveHubDep,
    _: ReaderAuth,
    after: Annotated[int, Query(ge=0)] = 0,
    wait_s: Annotated[float, Query(ge=0, le=30)] = 5.0,
) -> Response:
    feed = await hub.next_frame(nid, after, wait_s)
    current = hub.feed(nid)
    headers = {"Cache-Control": "no-store"}
    if current.problem:
        headers["X-Live-Problem"] = current.problem[:500]
    if feed is None:
        return Response(status_code=204, headers=headers)
    headers.update({"X-Live-Seq": str(feed.seq), "X-Live-Edge-Seq": str(feed.edge_seq)})
    return Response(feed.jpeg, media_type="image/jpeg", headers=headers)
