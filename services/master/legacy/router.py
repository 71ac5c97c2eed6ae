"""The field's master routes, same names and fields, answered in the field's envelope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.master.builds import field_folder
from services.master.builds.removal import RemovalsDep
from services.master.builds.service import BuildRunnerDep
from services.master.context import ContextDep
from services.master.legacy.schemas import DeviceAi, RemoveEdgeAi, UploadEdgeAi
from services.master.uploads import service as uploads
from services.master.uploads.schemas import UploadFields
from shared.auth import OperatorAuth
from shared.legacy import LegacyRoute, envelope, form_or_json, legacy_openapi_body
from shared.versions import validate_version

router = APIRouter(tags=["legacy (field compatible)"], route_class=LegacyRoute)


@router.post(
    "/upload_edgeAI",
    openapi_extra=legacy_openapi_body(UploadEdgeAi),
    summary="Build and push the package folder named filename from the master's package directory",
)
async def upload_edge_ai(
    _: OperatorAuth,
    req: Annotated[UploadEdgeAi, Depends(form_or_json(UploadEdgeAi))],
    ctx: ContextDep,
    builds: BuildRunnerDep,
) -> dict[str, Any]:
    version = validate_version(req.version)
    folder = uploads.find_package_folder(ctx, req.filename, req.ai_class, version)
    fields = UploadFields(filename=req.filename, version=version, ai_class=req.ai_class)
    async with field_folder.with_manifest(
        folder,
        ctx.store.tmp_dir,
        ctx.limits,
        filename=req.filename,
        version=version,
        ai_class=req.ai_class,
    ) as source:
        accepted = await uploads.accept(ctx, builds, source, fields, kind="folder")
    return envelope(
        f"{req.filename} {version} class {req.ai_class} stored; build {accepted.build}",
        aid=accepted.ai.id,
        package_digest=accepted.package_digest,
    )


@router.post(
    "/remove_edgeAI",
    openapi_extra=legacy_openapi_body(RemoveEdgeAi),
    summary="Delete an AI and its image",
)
async def remove_edge_ai(
    _: OperatorAuth,
    req: Annotated[RemoveEdgeAi, Depends(form_or_json(RemoveEdgeAi))],
    ctx: ContextDep,
    removals: RemovalsDep,
) -> dict[str, Any]:
    result = await removals.remove(req.id, first=lambda: ctx.setup.delete_ai(req.id))
    return envelope(f"AI {req.id} removed (image {result['image']}, artifact {result['artifact']})")


# Setup owns the desired state: the deployment is recorded there, and setup then asks the
# master to reconcile.
@router.post(
    "/deploy_aiToDevice",
    openapi_extra=legacy_openapi_body(DeviceAi),
    summary="Run the AI on its edge(s)",
)
async def deploy_ai(
    _: OperatorAuth, req: Annotated[DeviceAi, Depends(form_or_json(DeviceAi))], ctx: ContextDep
) -> dict[str, Any]:
    answer = await ctx.setup.legacy("/request_deploy_aiToDevice", req.model_dump(exclude_none=True))
    return envelope(
        f"deployment of AI {req.aid} applied", deployments=answer.get("deployments", [])
    )


@router.post(
    "/undeploy_aiFromDevice",
    openapi_extra=legacy_openapi_body(DeviceAi),
    summary="Stop the AI on its edge(s)",
)
async def undeploy_ai(
    _: OperatorAuth, req: Annotated[DeviceAi, Depends(form_or_json(DeviceAi))], ctx: ContextDep
) -> dict[str, Any]:
    answer = await ctx.setup.legacy(
        "/request_undeploy_aiFromDevice", req.model_dump(exclude_none=True)
    )
    return envelope(
        f"undeployment of AI {req.aid} applied", deployments=answer.get("deployments", [])
    )
