from __future__ import annotations

from fastapi import APIRouter, Request, status

from services.master.context import ContextDep
from services.master.uploads import service
from services.master.uploads.schemas import UploadAccepted
from shared.auth import OperatorAuth

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
                    "schema": {"type": "object", "properties": {"archive": {"type": "string", "format": "binary"}}}
                },
            }
        },
    },
)
async def upload_ai_package(request: Request, ctx: ContextDep, _: OperatorAuth) -> UploadAccepted:
    path, fields = await service.receive_body(request, ctx.store.tmp_dir, ctx.settings.max_upload_bytes)
    try:
        return await service.accept(ctx, path, fields, kind="archive")
    finally:
        path.unlink(missing_ok=True)
