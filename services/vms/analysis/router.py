"""The analysis server's inbox: ``POST /analysis`` takes a frame (multipart ``image`` +
``metadata``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from services.vms.analysis import service
from services.vms.nodes.directory import DirectoryDep
from shared.auth import AnyPrincipal, ReaderAuth, ServiceAuth
from shared.contracts.analysis import (
    InboxClaim,
    InboxClaimRequest,
    InboxResult,
    InboxResultRecorded,
)
from shared.db import SessionDep
from shared.errors import Invalid, Unauthorized

router = APIRouter(prefix="/analysis", tags=["analysis"])

MAX_IMAGE_BYTES = 8 * 1024 * 1024


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Queue a frame for precise re-analysis",
    description="Multipart: `image` (JPEG or PNG) and `metadata` (JSON: nid, ts, reason, model, "
    "model_version, conf_threshold, detections ...). An edge posts with its own token; the frame "
    "is stored and queued (`status: queued`).",
)
async def queue_frame(
    request: Request, session: SessionDep, directory: DirectoryDep, principal: AnyPrincipal
) -> dict:
    if principal.kind == "anonymous":
        raise Unauthorized()  # before the body: a stranger learns nothing of it
    if "multipart/form-data" not in request.headers.get("content-type", ""):
        raise Invalid("send multipart/form-data with the parts image and metadata", field="body")
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("image")
    image = await upload.read() if isinstance(upload, UploadFile) else b""
    metadata = form.get("metadata")
    return await service.accept(
        session,
        directory,
        principal,
        image=image,
        metadata_raw=metadata if isinstance(metadata, str) else None,
        max_image_bytes=MAX_IMAGE_BYTES,
    )


@router.get("", summary="Queued and analysed frames, newest first")
async def list_frames(
    session: SessionDep,
    _: ReaderAuth,
    nid: str | None = None,
    status_: Annotated[
        Literal["queued", "analysing", "done", "failed"] | None, Query(alias="status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> dict:
    return await service.list_page(session, nid=nid, status=status_, limit=limit, offset=offset)


@router.get("/{request_id}/image", summary="The frame as it was sent", response_class=Response)
async def frame_image(request_id: int, session: SessionDep, who: ReaderAuth) -> Response:
    data = await service.image(session, request_id, who)
    media = "image/png" if data.startswith(service.PNG_MAGIC) else "image/jpeg"
    return Response(data, media_type=media)


@router.post(
    "/claim",
    summary="Claim queued frames for analysis (the analysis service)",
    description="Marks up to `limit` queued frames (or frames whose lease ran out) `analysing` "
    "until `lease_s` from now and answers them; fetch each image from `/analysis/{id}/image`.",
)
async def claim_frames(body: InboxClaimRequest, session: SessionDep, _: ServiceAuth) -> InboxClaim:
    return await service.claim(session, limit=body.limit, lease_s=body.lease_s)


@router.put(
    "/{request_id}/result",
    summary="Record a frame's analysis result (the analysis service)",
    description="`status` done or failed, the server's `detections` (source server) and the "
    "`fused` result. Idempotent: the first result of a frame is kept.",
)
async def record_result(
    request_id: int, body: InboxResult, session: SessionDep, _: ServiceAuth
) -> InboxResultRecorded:
    return await service.record_result(session, request_id, body)
