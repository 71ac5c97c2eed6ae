"""The console's JSON API for its own pages (session cookie; changes need the CSRF header): thin
routes that call setup, master, optimizer, VMS and analysis with the session's operator credential
(services.console.upstream)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from services.console.fleet import fleet_view
from services.console.live import Live, LiveDep, sse
from services.console.live_view import LiveViewsDep
from services.console.schemas import EdgeView, FleetView, PackagesView
from services.console.sessions import SessionAuth, SessionExpired, SessionStore, SessionStoreDep
from services.console.upstream import Upstreams, UpstreamsDep
from services.console.views import edge_view, packages_view
from shared.contracts.analysis import AnalysisResult, VideoAccepted, VideoProgress
from shared.contracts.clips import ClipPage
from shared.contracts.decisions import Action, ControlsOut, DecisionPage, PinOut, Policy, RolloutOut
from shared.contracts.deployments import DeploymentCreate, DeploymentOut
from shared.contracts.live_view import (
    DEFAULT_BUDGET_BPS,
    DEFAULT_FPS,
    DEFAULT_WIDTH,
    LiveViewSettings,
)
from shared.contracts.master import UploadAccepted
from shared.contracts.nodes import NodeSeries
from shared.errors import Invalid
from shared.input_checks import NID_PATTERN
from shared.streams import until_revoked

router = APIRouter(prefix="/api", tags=["console"])

# What the console passes on in a path: the ids the other services' tables hold (32-bit), the ids
# the analysis gateway makes.
INT32_MAX = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=INT32_MAX)]
VideoId = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,64}$", description="a video's id")]

# A video's events may pause while frames wait in the queue: no read deadline.
EVENTS_TIMEOUT = httpx.Timeout(10.0, read=None)
FILE_TIMEOUT = httpx.Timeout(10.0, read=60.0)
SESSION_CHECK_S = 0.5  # a signed-out session closes its streams within a second
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _while_signed_in(
    request: Request, store: SessionStore, stream: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """A live stream that ends with ``event: expired`` within a second of the session's end
    (expired or signed out), however quiet the stream is."""

    async def alive() -> bool:
        try:
            return await store.find(request) is not None
        except SessionExpired:
            return False

    return until_revoked(
        stream,
        alive,
        sse("expired", {"message": "your session has expired: sign in again"}),
        every=SESSION_CHECK_S,
    )


def _live(request: Request, live: Live, store: SessionStore, topic: str) -> StreamingResponse:
    return StreamingResponse(
        _while_signed_in(request, store, live.stream(topic)),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


class SessionState(BaseModel):
    signed_in: bool


@router.get("/session", summary="Whether the session is still valid")
async def session_state(session: SessionAuth) -> SessionState:
    return SessionState(signed_in=True)


# --- fleet and edges -------------------------------------------------------------------------


@router.get("/fleet", summary="Every edge with its state, AIs, cpu and memory")
async def fleet(up: UpstreamsDep, _: SessionAuth) -> FleetView:
    return await fleet_view(up)


@router.get("/fleet/events", summary="The fleet view as Server-Sent Events (event: fleet)")
async def fleet_events(
    live: LiveDep, store: SessionStoreDep, request: Request, _: SessionAuth
) -> StreamingResponse:
    return _live(request, live, store, "fleet")


@router.get("/edges/{edge_id}", summary="One edge: details, deployments, explain, routing, pin")
async def edge(edge_id: RowId, up: UpstreamsDep, _: SessionAuth) -> EdgeView:
    return await edge_view(up, edge_id)


@router.get(
    "/edges/{edge_id}/events",
    summary="The edge's view as Server-Sent Events (event: edge; problem when setup fails)",
)
async def edge_events(
    live: LiveDep, store: SessionStoreDep, edge_id: RowId, request: Request, _: SessionAuth
) -> StreamingResponse:
    return _live(request, live, store, f"edge:{edge_id}")


@router.get(
    "/nodes/{nid}/live",
    summary="The edge's live view as Server-Sent Events (frame: base64 JPEG; status)",
    description="While this stream is open the edge is asked to send its camera with its boxes "
    "drawn; several viewers of one edge share one upstream. Ends (event `expired`) within a "
    "second of the session's end.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def live_view(
    nid: Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")],
    request: Request,
    views: LiveViewsDep,
    store: SessionStoreDep,
    up: UpstreamsDep,
    _: SessionAuth,
    fps: Annotated[float, Query(gt=0, le=10)] = DEFAULT_FPS,
    width: Annotated[int, Query(ge=160, le=1920)] = DEFAULT_WIDTH,
    budget_bps: Annotated[int, Query(ge=8_000, le=10_000_000)] = DEFAULT_BUDGET_BPS,
) -> StreamingResponse:
    settings = LiveViewSettings(fps=fps, width=width, budget_bps=budget_bps)
    return StreamingResponse(
        _while_signed_in(request, store, views.stream(nid, settings, up)),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.get(
    "/clips", summary="Event clips, newest first (an edge's with ?nid=; started in [since, until])"
)
async def clips(
    up: UpstreamsDep,
    _: SessionAuth,
    nid: Annotated[str | None, Query(max_length=32)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ClipPage:
    params: dict[str, Any] = {"limit": limit}
    if nid:
        params["nid"] = nid
    for name, when in (("since", since), ("until", until)):
        if when is not None:
            params[name] = (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    return await up.vms.model("GET", "/clips", ClipPage, params=params)


@router.get("/clips/{clip_id}/video", summary="A clip (MP4); Range requests pass through")
async def clip_video(
    clip_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    request: Request,
    up: UpstreamsDep,
    _: SessionAuth,
) -> StreamingResponse:
    headers = {"Range": request.headers["range"]} if "range" in request.headers else None
    stack = contextlib.AsyncExitStack()
    response = await stack.enter_async_context(
        up.vms.stream(
            "GET", f"/clips/{clip_id}/video", headers=headers, request_timeout=FILE_TIMEOUT
        )
    )

    async def body() -> AsyncIterator[bytes]:
        async with stack:
            async for chunk in response.aiter_raw():
                yield chunk

    passed = ("content-length", "content-range", "accept-ranges")
    return StreamingResponse(
        body(),
        status_code=response.status_code,
        media_type="video/mp4",
        headers={k: response.headers[k] for k in passed if k in response.headers},
    )


@router.get("/nodes/{nid}/series", summary="A node's usage, environment or detections over time")
async def series(
    nid: Annotated[str, Path(pattern=NID_PATTERN, description='a node id, e.g. "0x01"')],
    up: UpstreamsDep,
    _: SessionAuth,
    kind: Literal["usage", "environment", "detections"] = "usage",
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 30,
    step: Annotated[
        str, Query(max_length=10, pattern=r"^[0-9]+[smhd]?$", description="10, 30s, 5m, 1h, 1d")
    ] = "10s",
) -> NodeSeries:
    end = datetime.now(UTC)
    params = {
        "kind": kind,
        "start": (end - timedelta(minutes=minutes)).isoformat(),
        "end": end.isoformat(),
        "step": step,
    }
    path = f"/nodes/{quote(nid, safe='')}/series"
    return await up.vms.model("GET", path, NodeSeries, params=params)


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    edge_id: int = Field(ge=1, le=INT32_MAX)
    ai_id: int = Field(ge=1, le=INT32_MAX)


@router.post(
    "/deployments",
    status_code=201,
    response_model=DeploymentOut,
    summary="Deploy an AI on an edge",
)
async def deploy(data: DeployIn, up: UpstreamsDep, _: SessionAuth) -> DeploymentOut:
    body = DeploymentCreate(edge_id=data.edge_id, ai_id=data.ai_id)
    return await up.setup.model(
        "POST", "/deployments", DeploymentOut, json=body.model_dump(mode="json", exclude_unset=True)
    )


@router.delete(
    "/deployments/{deployment_id}",
    response_model=DeploymentOut,
    summary="Remove an AI from its edge",
)
async def remove(deployment_id: RowId, up: UpstreamsDep, _: SessionAuth) -> DeploymentOut:
    return await up.setup.model("DELETE", f"/deployments/{deployment_id}", DeploymentOut)


class PinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


@router.put("/pins/{edge_id}", summary="Pin an edge: no policy touches it")
async def pin(
    edge_id: RowId, up: UpstreamsDep, _: SessionAuth, data: PinIn | None = None
) -> PinOut:
    body = (data or PinIn()).model_dump()
    return await up.optimizer.model("PUT", f"/pins/{edge_id}", PinOut, json=body)


@router.delete("/pins/{edge_id}", status_code=204, summary="Unpin an edge")
async def unpin(up: UpstreamsDep, edge_id: RowId, _: SessionAuth) -> Response:
    await up.optimizer.request("DELETE", f"/pins/{edge_id}")
    return Response(status_code=204)


# --- AI packages -----------------------------------------------------------------------------


@router.get("/ai-packages", summary="AI packages with their build status, and the rollouts")
async def ai_packages(up: UpstreamsDep, _: SessionAuth) -> PackagesView:
    return await packages_view(up)


@router.get(
    "/ai-packages/events",
    summary="The packages and rollouts as Server-Sent Events (event: packages)",
)
async def ai_packages_events(
    live: LiveDep, store: SessionStoreDep, request: Request, _: SessionAuth
) -> StreamingResponse:
    return _live(request, live, store, "packages")


@router.post(
    "/rollouts/{rollout_id}/{action}",
    summary="Pause, resume or roll back a version rollout (the optimizer's)",
)
async def rollout_action(
    rollout_id: RowId,
    action: Literal["pause", "resume", "rollback"],
    up: UpstreamsDep,
    _: SessionAuth,
) -> RolloutOut:
    return await up.optimizer.model("POST", f"/rollouts/{rollout_id}/{action}", RolloutOut)


@router.post(
    "/ai-packages",
    status_code=202,
    summary="Upload an AI package archive (raw body), passed on to the master as it arrives",
)
async def upload_package(up: UpstreamsDep, request: Request, _: SessionAuth) -> UploadAccepted:
    content_type = request.headers.get("content-type", "application/octet-stream")
    if content_type.startswith("multipart/"):
        raise Invalid("send the archive as the raw body", field="body")
    params = {
        k: v
        for k, v in request.query_params.items()
        if k in ("filename", "version", "ai_class", "condition", "description") and v
    }
    return await up.master.model(
        "POST",
        "/ai-packages",
        UploadAccepted,
        params=params,
        content=request.stream(),
        headers={"content-type": content_type},
    )


# --- decisions and the optimizer's switches --------------------------------------------------


@router.get("/decisions", summary="The optimizer's decision log, filtered")
async def decisions(
    up: UpstreamsDep,
    _: SessionAuth,
    edge: Annotated[str | None, Query(max_length=100)] = None,
    policy: Policy | None = None,
    action: Action | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> DecisionPage:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    for name, value in (("edge", edge), ("policy", policy), ("action", action)):
        if value:
            params[name] = value
    for name, when in (("since", since), ("until", until)):
        if when is not None:
            params[name] = (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    return await up.optimizer.model("GET", "/decisions", DecisionPage, params=params)


@router.get("/decisions/events", summary="New decisions as Server-Sent Events (event: decision)")
async def decision_events(
    live: LiveDep, store: SessionStoreDep, request: Request, _: SessionAuth
) -> StreamingResponse:
    return _live(request, live, store, "decisions")


@router.get("/control", summary="The optimizer's pause and dry-run switches")
async def control(up: UpstreamsDep, _: SessionAuth) -> ControlsOut:
    return await up.optimizer.model("GET", "/control", ControlsOut)


class ControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paused: bool | None = None
    dry_run: bool | None = None


@router.put("/control", summary="Pause or resume the optimizer; dry-run on or off")
async def set_control(data: ControlIn, up: UpstreamsDep, _: SessionAuth) -> ControlsOut:
    body = data.model_dump(exclude_none=True)
    return await up.optimizer.model("PUT", "/control", ControlsOut, json=body)


# --- detection (the analysis service) --------------------------------------------------------


@router.post(
    "/analyze",
    summary="Analyse one image (the raw body, JPEG or PNG)",
    response_model=AnalysisResult,
    response_model_exclude_none=True,
)
async def analyze(up: UpstreamsDep, request: Request, _: SessionAuth) -> AnalysisResult:
    image = await request.body()
    if not image:
        raise Invalid("the body is empty: send a JPEG or PNG image", field="body")
    content_type = request.headers.get("content-type", "image/jpeg")
    return await up.analysis.model(
        "POST", "/analyze", AnalysisResult, content=image, headers={"content-type": content_type}
    )


@router.post("/videos", status_code=202, summary="Upload a video for analysis (the raw body)")
async def upload_video(up: UpstreamsDep, request: Request, _: SessionAuth) -> VideoAccepted:
    return await up.analysis.model(
        "POST",
        "/videos",
        VideoAccepted,
        content=request.stream(),
        headers={"content-type": request.headers.get("content-type", "video/mp4")},
    )


def _video_id(video_id: str) -> str:
    if not video_id.isalnum() or len(video_id) > 64:
        raise Invalid("not a video id", field="video_id")
    return video_id


@router.get(
    "/videos/{video_id}",
    summary="A video's progress",
    response_model=VideoProgress,
    response_model_exclude_none=True,
)
async def video(video_id: VideoId, up: UpstreamsDep, _: SessionAuth) -> VideoProgress:
    return await up.analysis.model("GET", f"/videos/{_video_id(video_id)}", VideoProgress)


async def _relay(
    up: Upstreams, path: str, limits: httpx.Timeout
) -> tuple[httpx.Response, AsyncIterator[bytes]]:
    """An upstream stream opened (its error answer raised here), and its body to pass on; the
    stream is closed when the body ends or the browser goes."""
    stack = contextlib.AsyncExitStack()
    response = await stack.enter_async_context(
        up.analysis.stream("GET", path, request_timeout=limits)
    )

    async def body() -> AsyncIterator[bytes]:
        async with stack:
            async for chunk in response.aiter_raw():
                yield chunk

    return response, body()


@router.get("/videos/{video_id}/events", summary="Per-frame results as Server-Sent Events")
async def video_events(
    video_id: VideoId, request: Request, up: UpstreamsDep, store: SessionStoreDep, _: SessionAuth
) -> StreamingResponse:
    _response, body = await _relay(up, f"/videos/{_video_id(video_id)}/events", EVENTS_TIMEOUT)
    return StreamingResponse(
        _while_signed_in(request, store, body), media_type="text/event-stream", headers=SSE_HEADERS
    )


@router.get("/videos/{video_id}/annotated", summary="The video with its boxes drawn (MP4)")
async def video_annotated(video_id: VideoId, up: UpstreamsDep, _: SessionAuth) -> StreamingResponse:
    response, body = await _relay(up, f"/videos/{_video_id(video_id)}/annotated", FILE_TIMEOUT)
    headers = {"Content-Disposition": f'attachment; filename="{video_id}-annotated.mp4"'}
    if "content-length" in response.headers:
        headers["Content-Length"] = response.headers["content-length"]
    return StreamingResponse(body, media_type="video/mp4", headers=headers)
