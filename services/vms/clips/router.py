"""Event clips: the edges upload them resumably (``POST /clips/uploads``, then ``PATCH
/clips/uploads/{id}`` chunks at ``Upload-Offset``); operators and services list them and fetch
the file (HTTP range requests: a <video> seeks)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import FileResponse

from services.vms.clips.service import CLIP_ID, ClipStoreDep, ClipUpload, UploadState
from shared.auth import EdgeAuth, ReaderAuth
from shared.contracts.clips import Clip, ClipPage
from shared.db import SessionDep
from shared.errors import Invalid

router = APIRouter(prefix="/clips", tags=["clips"])

ClipId = Annotated[str, Path(pattern=CLIP_ID, description="the clip's SHA-256 (hex)")]


@router.post(
    "/uploads",
    response_model=UploadState,
    summary="Start or resume a clip's upload: where the next chunk starts",
)
async def start_upload(
    body: ClipUpload, store: ClipStoreDep, session: SessionDep, principal: EdgeAuth
) -> UploadState:
    return await store.start(session, principal, body)


@router.patch(
    "/uploads/{clip_id}",
    response_model=UploadState,
    summary="One chunk of a clip at Upload-Offset (409 names the offset the VMS holds)",
)
async def upload_chunk(
    clip_id: ClipId,
    request: Request,
    store: ClipStoreDep,
    session: SessionDep,
    principal: EdgeAuth,
    upload_offset: Annotated[int, Header(ge=0)],
) -> UploadState:
    chunk = await request.body()
    if not chunk:
        raise Invalid("an empty chunk", field="body")
    if len(chunk) > store.settings.clip_chunk_max_bytes:
        raise Invalid(
            f"a chunk is {store.settings.clip_chunk_max_bytes} bytes at most", field="body"
        )
    return await store.append(session, principal, clip_id, upload_offset, chunk)


@router.get(
    "",
    response_model=ClipPage,
    summary="Clips, newest first (an edge's with ?nid=; started in [since, until] if given)",
)
async def list_clips(
    store: ClipStoreDep,
    session: SessionDep,
    _: ReaderAuth,
    nid: Annotated[str | None, Query(max_length=32)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> dict[str, Any]:
    return await store.list(session, nid, limit, offset, since=since, until=until)


@router.get("/{clip_id}", response_model=Clip, summary="One clip's index entry")
async def get_clip(
    clip_id: ClipId, store: ClipStoreDep, session: SessionDep, _: ReaderAuth
) -> dict[str, Any]:
    return await store.get(session, clip_id)


@router.get(
    "/{clip_id}/video",
    summary="The clip (MP4), with HTTP range requests",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "the range asked for"}},
)
async def clip_video(
    clip_id: ClipId, store: ClipStoreDep, session: SessionDep, _: ReaderAuth
) -> FileResponse:
    path = await store.file(session, clip_id)
    return FileResponse(
        path, media_type="video/mp4", filename=f"{clip_id}.mp4", content_disposition_type="inline"
    )
