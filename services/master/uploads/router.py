from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from fastapi import Path as PathParam

from services.master.builds import engine, field_folder
from services.master.builds.service import BuildRunnerDep
from services.master.context import ContextDep
from services.master.packages import parse_manifest
from services.master.uploads import retrained, service
from services.master.uploads.schemas import AI_CLASS, FILENAME
from shared.auth import OperatorAuth, ServiceAuth
from shared.contracts.master import UploadAccepted
from shared.versions import validate_version

router = APIRouter(prefix="/ai-packages", tags=["ai packages"])

UPLOAD_DOC = """
Upload an AI package archive (zip or tar.gz with `aipackage.yaml` at its root).

Send it either as the raw body (`Content-Type: application/gzip`, `application/zip` or
`application/octet-stream`, names in the query string) or as `multipart/form-data` with the file
in the field `archive`. `filename`, `version` and `ai_class`, when given, must match the manifest.
The body is streamed to disk; the package is validated before anything is stored; the AI is
recorded in setup and its image built in the background (watch `status` on the AI).
"""


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadAccepted,
    summary="Upload an AI package archive",
    description=UPLOAD_DOC,
    openapi_extra={
        "parameters": [
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
            for n in ("filename", "version", "ai_class", "condition", "description")
        ],
        "requestBody": {
            "content": {
                "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"archive": {"type": "string", "format": "binary"}},
                    }
                },
            }
        },
    },
)
async def upload_ai_package(
    request: Request, ctx: ContextDep, builds: BuildRunnerDep, _: OperatorAuth
) -> UploadAccepted:
    limit = ctx.settings.max_upload_bytes
    path, fields = await service.receive_body(request, ctx.store.tmp_dir, limit)
    try:
        return await service.accept(ctx, builds, path, fields, kind="archive")
    finally:
        path.unlink(missing_ok=True)


@router.get(
    "/folders/{filename}",
    summary="Whether the package folder for these names is in the master's package directory",
    description="Setup asks this before it records a field upload (/request_upload_edgeAi), so a "
    "missing folder is refused at once. 422 naming `filename` when there is none, or when a field "
    "folder (no aipackage.yaml) has no Dockerfile with a CMD or ENTRYPOINT.",
)
async def package_folder(
    filename: Annotated[str, PathParam(pattern=FILENAME)],
    version: str,
    ai_class: Annotated[str, Query(pattern=AI_CLASS)],
    ctx: ContextDep,
    _: ServiceAuth,
) -> dict[str, str]:
    version = validate_version(version)
    folder = service.find_package_folder(ctx, filename, ai_class, version)
    manifest = "own"
    if field_folder.needs_derived_manifest(folder):
        body = await asyncio.to_thread(
            field_folder.derive_manifest, folder, filename, version, ai_class
        )
        manifest = "derived"
        # A Dockerfile this master cannot carry out is refused now, naming the line.
        derived = parse_manifest(body.encode())
        text = await asyncio.to_thread(engine.read_dockerfile, folder, derived)
        await engine.check_dockerfile(ctx.settings, ctx.registry, derived, text)
    return {
        "filename": filename,
        "version": version,
        "ai_class": ai_class,
        "folder": folder.name,
        "manifest": manifest,
    }


@router.post(
    "/{ai_id}/versions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadAccepted,
    summary="A new version of a package from a training pipeline: the changed weights file only",
    description="Multipart form: `file` (the new weights), `version` (the new version), and "
    "optionally `title`, `description` and `path` (where the file goes in the package; default: "
    "the manifest's first model, else the file's name). The new package is the base version's "
    "with that file replaced and the manifest's version and description changed; it is stored, "
    "recorded and built like any upload, and the optimizer's version policy rolls it out. Edges "
    "running the base version fetch it as a binary patch.",
)
async def upload_new_version(
    ai_id: int,
    ctx: ContextDep,
    builds: BuildRunnerDep,
    _: OperatorAuth,
    file: Annotated[UploadFile, File(description="the new weights file")],
    version: Annotated[str, Form(max_length=40)],
    title: Annotated[str | None, Form(max_length=200)] = None,
    description: Annotated[str | None, Form(max_length=2000)] = None,
    path: Annotated[str | None, Form(max_length=1024)] = None,
) -> UploadAccepted:
    try:
        return await retrained.new_version(
            ctx,
            builds,
            ai_id,
            upload=file,
            version=version,
            title=title,
            description=description,
            path=path,
        )
    finally:
        await file.close()
