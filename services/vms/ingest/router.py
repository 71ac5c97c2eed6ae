"""Ingest routes: the field's /usage and /save_edgeData (envelope answers), our /detections and /batch.

Bodies are read and parsed here (orjson) rather than by FastAPI's body models: the hot path is
lighter that way, and the legacy routes also take form fields. The models still document the
bodies in the OpenAPI schema.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.vms.ingest.schemas import BatchIn, BatchOut, DetectionsIn, EnvironmentIn, StoredOut, UsageIn
from services.vms.ingest.service import IngestService, Rejected
from shared.auth import Principal, bearer_token, identify, revocations_of
from shared.legacy import LegacyRoute, legacy_openapi_body

legacy_router = APIRouter(tags=["ingest (field)"], route_class=LegacyRoute)
router = APIRouter(tags=["ingest"])

_SUCCESS = b'{"code":"0000","message":"success"}'
_ENVELOPE_DOC = {200: {"content": {"application/json": {"example": {"code": "0000", "message": "success"}}}}}


def _service(request: Request) -> IngestService:
    return request.app.state.ingest


def _principal(request: Request) -> Principal:
    # Called inline rather than as a dependency: a sync dependency costs a thread hop per request.
    return identify(request.app.state.settings, bearer_token(request), revocations_of(request))


async def _legacy_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    if "form" in content_type:
        form = await request.form()
        data: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    else:
        raw = await request.body()
        data = IngestService.parse_json(raw) if raw else {}
    if isinstance(data, dict) and request.query_params:
        for key, value in request.query_params.items():
            data.setdefault(key, value)
    return data


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise Rejected("a JSON body is required", field="body", reason="invalid")
    return IngestService.parse_json(raw)


@legacy_router.post(
    "/usage",
    summary="Resource usage from an edge (the field's payload)",
    description="The field's monitoring program posts this every second. Numbers may be strings. "
    "Answer: the field's envelope, stored and committed when code is 0000.",
    openapi_extra=legacy_openapi_body(UsageIn),
    responses=_ENVELOPE_DOC,
)
async def post_usage(request: Request) -> Response:
    await _service(request).ingest_one(_principal(request), "usage", await _legacy_body(request), legacy=True)
    return Response(_SUCCESS, media_type="application/json")


@legacy_router.post(
    "/save_edgeData",
    summary="Environment analysis result (the field's payload)",
    description="nid, date (yyyymmdd), time (hhmmss, in VMS_FIELD_TIMEZONE), result (the class code).",
    openapi_extra=legacy_openapi_body(EnvironmentIn),
    responses=_ENVELOPE_DOC,
)
async def post_environment(request: Request) -> Response:
    await _service(request).ingest_one(_principal(request), "environment", await _legacy_body(request), legacy=True)
    return Response(_SUCCESS, media_type="application/json")


@router.post(
    "/detections",
    summary="The YOLO worker's per-second summary",
    response_model=StoredOut,
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": DetectionsIn.model_json_schema()}}, "required": True}},
)
async def post_detections(request: Request) -> dict[str, Any]:
    record = await _service(request).ingest_one(_principal(request), "detections", await _json_body(request), legacy=False)
    return {"code": "0000", "message": "success", "status": "stored", "nid": record.nid, "known": record.values["known"]}


@router.post(
    "/batch",
    summary="Many records of any kind in one request",
    description="Each record is validated on its own: the valid ones are committed together, the others "
    "are reported by index with the field and the problem. 200 once the stored ones are committed.",
    response_model=BatchOut,
    response_model_exclude_none=True,
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": BatchIn.model_json_schema()}}, "required": True}},
)
async def post_batch(request: Request) -> dict[str, Any]:
    return await _service(request).ingest_batch(_principal(request), await _json_body(request))
