"""Edge agents fetch packages here, by digest, with their edge's own token: an edge only the
archives of the AIs deployed on it (services.master.artifacts.access); whole, or as a binary
patch from a version they already have (services.master.artifacts.deltas)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from services.master.artifacts.access import ArtifactAccess, ArtifactAccessDep
from services.master.artifacts.deltas import FORMATS, HDIFF, SUFFIX, XOR, DeltaCacheDep
from services.master.context import ContextDep
from shared.auth import EdgeOrServiceAuth, Principal
from shared.errors import Forbidden, Invalid, NotFound

router = APIRouter(tags=["artifacts"])


@router.get(
    "/artifacts/{digest}",
    summary="A stored package archive (normalised tar), streamed from disk",
    response_class=FileResponse,
)
async def get_artifact(
    digest: str,
    ctx: ContextDep,
    access: ArtifactAccessDep,
    deltas: DeltaCacheDep,
    principal: EdgeOrServiceAuth,
) -> FileResponse:
    store = ctx.store
    path = store.path(digest)  # Invalid (422) unless sha256:<64 hex>
    if not path.is_file():
        raise NotFound(f"artifact {digest} is not in the store", field="digest")
    await _check_access(access, principal, digest)
    if principal.kind == "edge":
        deltas.traffic.sent("full", path.stat().st_size)
    # The digest names immutable content: it is its own ETag and may be cached forever.
    return FileResponse(
        path,
        media_type="application/x-tar",
        headers={
            "ETag": f'"{digest}"',
            "Cache-Control": "private, max-age=31536000, immutable",
            "Docker-Content-Digest": digest,
        },
    )


async def _check_access(access: ArtifactAccess, principal: Principal, digest: str) -> None:
    if principal.kind != "edge":
        return
    assert principal.nid is not None
    if not await access.allows(principal.nid, digest):
        raise Forbidden(
            f"an edge token fetches only the packages of the AIs deployed on its edge "
            f"({principal.nid}): {digest} is not one of them",
            field="digest",
        )


@router.get(
    "/artifacts/{digest}/delta",
    summary="A patch (HDiffPatch or tar-xor-zstd) from an archive the edge has to this one",
    response_class=FileResponse,
    responses={404: {"description": "no patch for this pair: fetch the whole archive"}},
)
async def get_delta(
    digest: str,
    ctx: ContextDep,
    access: ArtifactAccessDep,
    deltas: DeltaCacheDep,
    principal: EdgeOrServiceAuth,
    base: Annotated[
        str, Query(alias="from", description="sha256:<hex> of the archive the edge already has")
    ],
    formats: Annotated[
        str,
        Query(
            max_length=200,
            description="the patch formats the edge applies, comma-separated: "
            f"{', '.join(FORMATS)} (older agents: {HDIFF} only)",
        ),
    ] = HDIFF,
    memory: Annotated[
        int | None,
        Query(
            ge=0,
            le=1 << 50,
            description="bytes of memory the edge has available: no HDiffPatch patch it could "
            "not apply in that",
        ),
    ] = None,
) -> FileResponse:
    """Computed once per pair and cached. 404 when either archive is not stored or a patch
    would not save enough: the edge then fetches ``GET /artifacts/{digest}``. The edge checks
    the patched result against ``digest`` itself."""
    store = ctx.store
    store.path(digest)  # Invalid (422) unless sha256:<64 hex>
    store.path(base)
    if not store.exists(digest):
        raise NotFound(f"artifact {digest} is not in the store", field="digest")
    await _check_access(access, principal, digest)
    accepted = frozenset(f.strip() for f in formats.split(",") if f.strip())
    if not accepted or not accepted <= set(FORMATS):
        raise Invalid(f"formats must name some of {', '.join(FORMATS)}", field="formats")
    patch = await deltas.patch(base, digest, formats=accepted, memory=memory)
    if patch is None:
        raise NotFound(f"no patch from {base} to {digest}: fetch the whole archive", field="from")
    if principal.kind == "edge":
        deltas.traffic.sent("delta", patch.stat().st_size)
    return FileResponse(
        patch,
        media_type="application/octet-stream",
        headers={
            "Cache-Control": "private, max-age=31536000, immutable",
            "X-Delta-From": base,
            "X-Delta-To": digest,
            "X-Delta-Format": XOR if patch.suffix == SUFFIX[XOR] else HDIFF,
        },
    )
