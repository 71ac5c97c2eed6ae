"""The gateway's routes: POST /analyze, GET /jobs/{id}, GET /queue."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.analysis.gateway import Gateway
from shared.auth import AnyPrincipal, ReaderAuth
from shared.contracts.analysis import AnalysisResult, AnalyzeMetadata, JobAccepted, Mode
from shared.errors import Invalid

router = APIRouter(tags=["analysis"])


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


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
        "(`cached: true`) at once. 429 + Retry-After when the caller's token bucket is empty, 503 + "
        "Retry-After when the queue is full or Redis is unreachable."
    ),
    response_model=AnalysisResult | JobAccepted,
    response_model_exclude_none=True,
    responses={202: {"model": JobAccepted}},
)
async def analyze(
    request: Request,
    principal: AnyPrincipal,
    async_: Annotated[bool, Query(alias="async")] = False,
    nid: str | None = None,
    camera_time: datetime | None = None,
    mode: Mode | None = None,
) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if "multipart/form-data" in content_type:
        form = await request.form(max_files=1, max_fields=2)
        upload = form.get("image")
        if upload is None or not hasattr(upload, "read"):
            raise Invalid("the multipart part image (a file) is missing", field="image")
        image = await upload.read()
        raw_meta = form.get("metadata")
        meta = _metadata(raw_meta if isinstance(raw_meta, str) else None, nid=nid, camera_time=camera_time, mode=mode)
    else:
        image = await request.body()
        meta = _metadata(None, nid=nid, camera_time=camera_time, mode=mode)
    answer = await _gateway(request).analyze(principal, image, meta, wait=not async_)
    status = 202 if isinstance(answer, JobAccepted) else 200
    return JSONResponse(answer.model_dump(mode="json", by_alias=True, exclude_none=True), status_code=status)


@router.get(
    "/jobs/{job_id}",
    summary="A job's state: queued (202) or its result (200)",
    response_model=AnalysisResult | JobAccepted,
)
async def job(job_id: str, request: Request, _: ReaderAuth) -> JSONResponse:
    if not job_id.isalnum() or len(job_id) > 64:
        raise Invalid("not a job id", field="job_id")
    answer = await _gateway(request).job(job_id)
    status = 202 if isinstance(answer, JobAccepted) else 200
    return JSONResponse(answer.model_dump(mode="json", by_alias=True, exclude_none=True), status_code=status)


@router.get("/queue", summary="Queue depth, jobs in work, workers")
async def queue(request: Request, _: ReaderAuth) -> dict:
    return await _gateway(request).queue_stats()

