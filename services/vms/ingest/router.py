"""Ingest routes: the field's /usage and /save_edgeData (envelope answers), our /detections and
/batch.

IngestFastPath (fastpath.py) answers all four ahead of the framework; the handlers here serve
what it passes on: the field's posts with form fields or a query string. Our /detections and
/batch are declared here for the OpenAPI document only. Bodies are parsed with orjson rather than
by FastAPI's body models; the models document the bodies in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.vms.ingest.schemas import (
    BatchIn,
    BatchOut,
    DetectionsIn,
    EnvironmentIn,
    StoredOut,
    UsageIn,
)
from services.vms.ingest.service import IngestDep, IngestService
from services.vms.settings import SettingsDep, VmsSettings
from shared.auth import Principal, bearer_token, identify, keys_of, revocations_of
from shared.legacy import LegacyRoute, legacy_openapi_body

legacy_router = APIRouter(tags=["ingest (field)"], route_class=LegacyRoute)
router = APIRouter(tags=["ingest"])

_SUCCESS = b'{"code":"0000","message":"success"}'
_ENVELOPE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"example": {"code": "0000", "message": "success"}}}}
}


def _principal(request: Request, settings: VmsSettings) -> Principal:
    # Called inline rather than as a dependency: a sync dependency costs a thread hop per request.
    return identify(settings, bearer_token(request), revocations_of(request), keys_of(request))


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


@legacy_router.post(
    "/usage",
    summary="Resource usage from an edge (the field's payload)",
    description="The field's monitoring program posts this every second. Numbers may be strings. "
    "Answer: the field's envelope, stored and committed when code is 0000.",
    openapi_extra=legacy_openapi_body(UsageIn),
    responses=_ENVELOPE_DOC,
)
async def post_usage(request: Request, ingest: IngestDep, settings: SettingsDep) -> Response:
    await ingest.ingest_one(
        _principal(request, settings), "usage", await _legacy_body(request), legacy=True
    )
    return Response(_SUCCESS, media_type="application/json")


@legacy_router.post(
    "/save_edgeData",
    summary="Environment analysis result (the field's payload)",
    description="nid, date (yyyymmdd), time (hhmmss, in "
    "VMS_FIELD_TIMEZONE), result (the class code).",
    openapi_extra=legacy_openapi_body(EnvironmentIn),
    responses=_ENVELOPE_DOC,
)
async def post_environment(request: Request, ingest: IngestDep, settings: SettingsDep) -> Response:
    await ingest.ingest_one(
        _principal(request, settings), "environment", await _legacy_body(request), legacy=True
    )
    return Response(_SUCCESS, media_type="application/json")


def _answered_by_the_fast_path() -> None:
    """The endpoint of a route that only documents its operation: IngestFastPath answers every
    POST to it before the framework routes anything (services/vms/ingest/fastpath.py)."""
    raise RuntimeError("answered by IngestFastPath; this route only documents the operation")


def _json_request(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"content": {"application/json": {"schema": model.model_json_schema()}}}
    return {"requestBody": {**schema, "required": True}}


# Our two ingest routes have one path: the fast path. These declarations give them their place
# in the OpenAPI document (and its x-auth line); they never run.
router.add_api_route(
    "/detections",
    _answered_by_the_fast_path,
    methods=["POST"],
    summary="The YOLO worker's per-second summary",
    response_model=StoredOut,
    openapi_extra=_json_request(DetectionsIn),
)
router.add_api_route(
    "/batch",
    _answered_by_the_fast_path,
    methods=["POST"],
    summary="Many records of any kind in one request",
    description="Each record is validated on its own: the valid ones are committed together, the "
    "others are reported by index with the field and the problem. 200 once the stored ones are "
    "committed.",
    response_model=BatchOut,
    response_model_exclude_none=True,
    openapi_extra=_json_request(BatchIn),
)
