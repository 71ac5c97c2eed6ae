"""The gateway's routes: POST /analyze, GET /jobs/{id}, GET /queue."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from services.analysis.gateway import Gateway, GatewayDep
from services.analysis.videos import VideosDep
from shared.auth import (
    AnyPrincipal,
    AuthenticatedAuth,
    Principal,
    ReaderAuth,
    identify_connection,
    principal_alive,
)
from shared.contracts.analysis import (
    AnalysisResult,
    AnalyzeMetadata,
    JobAccepted,
    Mode,
    VideoAccepted,
    VideoProgress,
)
from shared.errors import DomainError, Invalid, Unauthorized
from shared.streams import serve_until_revoked, until_revoked

router = APIRouter(tags=["analysis"])

# The last event of a video's stream when the token that opened it is revoked or expires.
REVOKED_EVENT = (
    'event: end\ndata: {"status": "revoked", "message": "the token that opened this stream was '
    'revoked or has expired"}\n\n'
)

_BINARY = {"schema": {"type": "string", "format": "binary"}}
# The bodies the handlers read themselves, documented for clients (and schema-driven fuzzing).
ANALYZE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/jpeg": _BINARY,
            "image/png": _BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "metadata": {
                            "type": "string",
                            "description": "JSON: nid, camera_time, mode, detections",
                        },
                    },
                }
            },
        },
    }
}
VIDEO_BODY = {
    "requestBody": {
        "required": True,
        "content": {"video/mp4": _BINARY, "application/octet-stream": _BINARY},
    }
}


# Ids the gateway makes (hex): documented, so that a client (or a fuzzer) knows what one is.
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,64}$", description="a job's id")]
VideoId = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,64}$", description="a video's id")]


def _metadata(raw: str | None, **query: object) -> AnalyzeMetadata:
    data: dict = {k: v for k, v in query.items() if v is not None}
    if raw:
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise Invalid(f"metadata is not valid JSON: {exc.msg}", field="metadata") from None
        if not isinstance(loaded, dict):
            raise Invalid("metadata must be a JSON object", field="metadata")
        data.update(loaded)
    try:
        return AnalyzeMetadata.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"metadata.{where}: {first['msg']}", field=f"metadata.{where}") from None


@router.post(
    "/analyze",
    summary="Analyse one image (JPEG or PNG)",
    description=(
        "The image as the multipart part `image` (with an optional part `metadata`, JSON: `nid`, "
        "`camera_time`, `mode`, `detections` = the edge's own boxes) or as the raw body (metadata "
        "from the query: `nid`, `camera_time`, `mode`). Answers the server's detections and, when "
        "edge boxes came, the fused result. Synchronous (504 after the deadline; the job goes on), "
        "or `?async=true`: 202 with a job id to poll. A repeated image is answered from the cache "
        "(`cached: true`) at once. Every result carries `count`: boxes per class name. "
        "`?annotate=true` (synchronous only): the answer is `multipart/mixed` with two parts, "
        "the JSON result (`application/json`) and the picture with the boxes, class names and "
        "scores drawn (`image/jpeg`). 429 + Retry-After when the caller's token bucket is empty, "
        "503 + "
        "Retry-After when the queue is full or Redis is unreachable."
    ),
    response_model=AnalysisResult | JobAccepted,
    response_model_exclude_none=True,
    responses={
        200: {"content": {"multipart/mixed": {"schema": {"type": "string", "format": "binary"}}}},
        202: {"model": JobAccepted},
    },
    openapi_extra={**ANALYZE_BODY, "x-rate-limited": True},  # its 429 (shared.api_docs)
)
async def analyze(
    request: Request,
    gateway: GatewayDep,
    principal: AnyPrincipal,
    async_: Annotated[bool, Query(alias="async")] = False,
    annotate: Annotated[
        bool, Query(description="answer multipart/mixed: the JSON result and the annotated JPEG")
    ] = False,
    nid: str | None = None,
    camera_time: datetime | None = None,
    mode: Mode | None = None,
) -> Response:
    if principal.kind == "anonymous":
        raise Unauthorized()  # before a byte of the body is read
    content_type = request.headers.get("content-type", "")
    if "multipart/form-data" in content_type:
        form = await request.form(max_files=1, max_fields=2)
        upload = form.get("image")
        if upload is None or not hasattr(upload, "read"):
            raise Invalid("the multipart part image (a file) is missing", field="image")
        image = await upload.read()
        raw_meta = form.get("metadata")
        meta = _metadata(
            raw_meta if isinstance(raw_meta, str) else None,
            nid=nid,
            camera_time=camera_time,
            mode=mode,
        )
    else:
        image = await request.body()
        meta = _metadata(None, nid=nid, camera_time=camera_time, mode=mode)
    if annotate and async_:
        raise Invalid(
            "annotate=true needs a synchronous request (not async=true)", field="annotate"
        )
    answer = await gateway.analyze(principal, image, meta, wait=not async_)
    status = 202 if isinstance(answer, JobAccepted) else 200
    body = answer.model_dump(mode="json", by_alias=True, exclude_none=True)
    if annotate and isinstance(answer, AnalysisResult):
        drawn = await gateway.annotate(image, answer)
        return multipart_mixed(
            [("application/json", json.dumps(body).encode()), ("image/jpeg", drawn)]
        )
    return JSONResponse(body, status_code=status)


def multipart_mixed(parts: list[tuple[str, bytes]]) -> Response:
    """A ``multipart/mixed`` body (RFC 2046): each part its Content-Type and bytes."""
    boundary = secrets.token_hex(16)
    chunks = []
    for content_type, data in parts:
        chunks.append(
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
        )
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return Response(b"".join(chunks), media_type=f"multipart/mixed; boundary={boundary}")


@router.get(
    "/jobs/{job_id}",
    summary="A job's state: queued (202) or its result (200)",
    description="The operator and the services read any job; an edge token only the jobs that "
    "edge posted (403 for another's).",
    response_model=AnalysisResult | JobAccepted,
)
async def job(job_id: JobId, gateway: GatewayDep, principal: ReaderAuth) -> JSONResponse:
    if not job_id.isalnum() or len(job_id) > 64:
        raise Invalid("not a job id", field="job_id")
    answer = await gateway.job(job_id, principal)
    status = 202 if isinstance(answer, JobAccepted) else 200
    return JSONResponse(
        answer.model_dump(mode="json", by_alias=True, exclude_none=True), status_code=status
    )


@router.get("/queue", summary="Queue depth, jobs in work, workers")
async def queue(gateway: GatewayDep, _: ReaderAuth) -> dict:
    return await gateway.queue_stats()


@router.post(
    "/videos",
    status_code=202,
    summary="Upload a video; its frames are analysed through the queue",
    description="The raw body (MP4/MOV, AVI or MKV/WebM), streamed to disk "
    "(`ANALYSIS_VIDEO_MAX_BYTES`, 413 above). Its size, frame count and duration are read from "
    "the container's headers and checked before any frame is decoded (422 naming the limit: "
    "`ANALYSIS_VIDEO_MAX_PIXELS`, `ANALYSIS_VIDEO_MAX_FRAMES`, `ANALYSIS_VIDEO_MAX_DURATION_S`). "
    "The upload takes one token of the caller's rate limit and each frame one more before it is "
    "queued. 202 with the video's id, frame count, fps and size; follow "
    "`/videos/{id}/events` for per-frame results, download `/videos/{id}/annotated` when done, "
    "`POST /videos/{id}/cancel` to stop it. 422 when the body is empty or not a video.",
    openapi_extra=VIDEO_BODY,
    response_model=VideoAccepted,
)
async def upload_video(
    request: Request, videos: VideosDep, principal: AnyPrincipal
) -> dict[str, Any]:
    return await videos.upload(principal, request)


@router.get(
    "/videos/{video_id}",
    summary="A video's progress: analysing, rendering, done or failed",
    description="An edge token reads (here, in its events and its annotated file) only the videos "
    "that edge uploaded; the operator and the services read any.",
    response_model=VideoProgress,
    response_model_exclude_none=True,
)
async def video_status(
    video_id: VideoId, videos: VideosDep, principal: ReaderAuth
) -> dict[str, Any]:
    return await videos.status(_video_id(video_id), principal)


@router.get(
    "/videos/{video_id}/events",
    summary="Per-frame results as Server-Sent Events",
    description="`event: frame` per frame (`frame`, `time_s`, `status`, `detections` with class, "
    "class_id, confidence, box, and the running `fps`), from the first frame (a late listener "
    "gets the earlier frames first), then one `event: end`.",
    response_class=StreamingResponse,
)
async def video_events(
    video_id: VideoId, request: Request, videos: VideosDep, principal: ReaderAuth
) -> StreamingResponse:
    await videos.status(_video_id(video_id), principal)
    return StreamingResponse(
        until_revoked(
            videos.events(video_id, principal), principal_alive(request, principal), REVOKED_EVENT
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/videos/{video_id}/annotated",
    summary="The video with its boxes drawn (MP4)",
    response_class=FileResponse,
)
async def video_annotated(
    video_id: VideoId, videos: VideosDep, principal: ReaderAuth
) -> FileResponse:
    path = await videos.annotated(_video_id(video_id), principal)
    return FileResponse(path, media_type="video/mp4", filename=f"{video_id}-annotated.mp4")


@router.post(
    "/videos/{video_id}/cancel",
    summary="Cancel a video being analysed or rendered",
    description="No more of its frames are queued, its files are removed and its event stream "
    "ends with `cancelled`. The edge that uploaded it, the operator or a service only (403 for "
    "another edge); 409 when the video is already done, failed or cancelled.",
)
async def cancel_video(video_id: VideoId, videos: VideosDep, principal: AuthenticatedAuth) -> dict:
    return await videos.cancel(_video_id(video_id), principal)


def _video_id(video_id: str) -> str:
    if not video_id.isalnum() or len(video_id) > 64:
        raise Invalid("not a video id", field="video_id")
    return video_id


@router.websocket("/ws/frames")
async def camera_frames(websocket: WebSocket, gateway: GatewayDep) -> None:
    """Camera frames one at a time: each binary message is a JPEG or PNG, each answer the frame's
    result as JSON (as `POST /analyze` answers it), or `{"error": {...}}` for a bad frame (the
    connection stays open). Bearer auth in the handshake; a refused token closes with 1008, and so
    does an open socket within a second of its token's revocation or expiry."""
    try:
        principal = identify_connection(websocket)
        if principal.kind == "anonymous":
            raise Unauthorized()
    except DomainError as exc:
        await websocket.close(code=1008, reason=exc.message)
        return
    await websocket.accept()
    await serve_until_revoked(
        websocket,
        _frames(websocket, gateway, principal),
        principal_alive(websocket, principal),
        reason="the token that opened this connection was revoked or has expired",
    )


async def _frames(websocket: WebSocket, gateway: Gateway, principal: Principal) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("bytes")
            if frame is None:
                await websocket.send_json(
                    {
                        "error": {
                            "type": "invalid",
                            "field": "frame",
                            "message": "send each frame as a binary message (JPEG or PNG)",
                        }
                    }
                )
                continue
            try:
                answer = await gateway.analyze(principal, frame, AnalyzeMetadata(), wait=True)
            except DomainError as exc:
                await websocket.send_json({"error": exc.to_dict()})
                continue
            await websocket.send_json(
                answer.model_dump(mode="json", by_alias=True, exclude_none=True)
            )
    except WebSocketDisconnect:
        return
