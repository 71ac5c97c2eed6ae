"""Edge agents fetch packages here, by digest, with their edge's own token: an edge only the
archives of the AIs deployed on it (services.master.artifacts.access)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from services.master.packages import ArtifactStore
from services.master.runners import Runners
from shared.auth import EdgeOrServiceAuth
from shared.errors import Forbidden, NotFound

router = APIRouter(tags=["artifacts"])


@router.get(
    "/artifacts/{digest}",
    summary="A stored package archive (normalised tar.gz), streamed from disk",
    response_class=FileResponse,
)
async def get_artifact(digest: str, request: Request, principal: EdgeOrServiceAuth) -> FileResponse:
    store: ArtifactStore = request.app.state.artifacts
    path = store.path(digest)  # Invalid (422) unless sha256:<64 hex>
    if not path.is_file():
        raise NotFound(f"artifact {digest} is not in the store", field="digest")
    if principal.kind == "edge":
        assert principal.nid is not None
        runners: Runners = request.app.state.runners
        if not await runners.reconciler.artifact_access.allows(principal.nid, digest):
            raise Forbidden(
                f"an edge token fetches only the packages of the AIs deployed on its edge "
                f"({principal.nid}): {digest} is not one of them",
                field="digest",
            )
    # The digest names immutable content: it is its own ETag and may be cached forever.
    return FileResponse(
        path,
        media_type="application/gzip",
        headers={
            "ETag": f'"{digest}"',
            "Cache-Control": "private, max-age=31536000, immutable",
            "Docker-Content-Digest": digest,
        },
    )
