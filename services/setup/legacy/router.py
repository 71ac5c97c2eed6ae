"""The field's setup routes, same names and fields; answers in the field's envelope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.setup.ai_packages import service as ai_packages
from services.setup.ai_packages.schemas import AiPackageCreate
from services.setup.legacy import service
from services.setup.legacy.schemas import AiRequest, DeviceRequest, InfoRequest, UploadRequest
from services.setup.master_client import MasterDep
from shared.auth import OperatorAuth, ReaderAuth
from shared.db import SessionDep
from shared.legacy import LegacyRoute, envelope, form_or_json, legacy_openapi_body

router = APIRouter(tags=["legacy (field compatible)"], route_class=LegacyRoute)


@router.post("/request_upload_edgeAi", openapi_extra=legacy_openapi_body(UploadRequest))
async def request_upload(
    _: OperatorAuth,
    req: Annotated[UploadRequest, Depends(form_or_json(UploadRequest))],
    session: SessionDep,
    master: MasterDep,
):
    data = AiPackageCreate(
        **req.model_dump(include={"filename", "version", "ai_class", "condition", "description"})
    )
    if master.enabled:
        # The field's upload names a folder on the master: refused at once when it is not there.
        await master.check_package_folder(data.filename, data.version, data.ai_class)
    ai = await ai_packages.create(session, data, master)
    await service.record(session, "request_upload_edgeAi", req.model_dump(), f"AI {ai.id} recorded")
    return envelope(
        f"upload of {ai.filename} {ai.version} class {ai.ai_class} requested", aid=ai.id
    )


@router.post("/request_remove_edgeAi", openapi_extra=legacy_openapi_body(AiRequest))
async def request_remove(
    _: OperatorAuth,
    req: Annotated[AiRequest, Depends(form_or_json(AiRequest))],
    session: SessionDep,
    master: MasterDep,
):
    ai = await ai_packages.remove(session, req.aid, master)
    await service.record(session, "request_remove_edgeAi", req.model_dump(), f"AI {ai.id} removed")
    return envelope(f"removal of AI {ai.id} requested")


@router.post("/request_deploy_aiToDevice", openapi_extra=legacy_openapi_body(DeviceRequest))
async def request_deploy(
    _: OperatorAuth,
    req: Annotated[DeviceRequest, Depends(form_or_json(DeviceRequest))],
    session: SessionDep,
    master: MasterDep,
):
    ids = await service.deploy(session, req, master)
    await service.record(
        session, "request_deploy_aiToDevice", req.model_dump(), f"deployments {ids}"
    )
    return envelope(f"deployment of AI {req.aid} requested on {len(ids)} edge(s)", deployments=ids)


@router.post("/request_undeploy_aiFromDevice", openapi_extra=legacy_openapi_body(DeviceRequest))
async def request_undeploy(
    _: OperatorAuth,
    req: Annotated[DeviceRequest, Depends(form_or_json(DeviceRequest))],
    session: SessionDep,
    master: MasterDep,
):
    ids = await service.undeploy(session, req, master)
    await service.record(
        session, "request_undeploy_aiFromDevice", req.model_dump(), f"deployments {ids}"
    )
    return envelope(
        f"undeployment of AI {req.aid} requested on {len(ids)} deployment(s)", deployments=ids
    )


@router.get("/get_uploadedAiInfo")
async def get_uploaded_ai_info(
    _: ReaderAuth,
    req: Annotated[InfoRequest, Depends(form_or_json(InfoRequest))],
    session: SessionDep,
):
    ai = await ai_packages.get(session, req.id, field="id")
    return envelope(
        "success",
        id=ai.id,
        filename=ai.filename,
        version=ai.version,
        ai_class=ai.ai_class,
        status=ai.status,
    )
