"""Edge agents fetch packages here, by digest, with their edge's own token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from services.master.packages import ArtifactStore
from shared.auth import EdgeOrServiceAuth
from shared.errors import NotFound

router = APIRouter(tags=["artifacts"])


@router.get(
    "/artifacts/{digest}",
    summary="A stored package archive (normalised tar.gz), streamed from disk",
    response_class=FileResponse,
)
async def get_artifact(digest: str, request: Request, _: EdgeOrServiceAuth) -> FileResponse:
    store: ArtifactStore = request.app.state.artifacts
    path = store.path(digest)  # Invalid (422) unless sha256:<64 hex>
    if not path.is_file():
        raise NotFound(f"artifact {digest} is not in the store", field="digest")
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
