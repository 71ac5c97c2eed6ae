"""Edge agents fetch packages here, by digest, with their edge's own token: an edge only the
archives of the AIs deployed on it (services.master.artifacts.access); whole, or as a binary
patch from a version they already have (services.master.artifacts.deltas).

An archive is also served in parts (HTTP ``Range``): an agent whose link dropped mid-download
asks for the rest (``Range: bytes=<what it has>-``, ``If-Range`` with the ETag it started with)
and gets a 206; a range past the end is a 416 naming the size."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import FileResponse

from services.master.artifacts.access import ArtifactAccess, ArtifactAccessDep
from services.master.artifacts.deltas import FORMATS, HDIFF, SUFFIX, XOR, DeltaCacheDep
from services.master.artifacts.fastpath import artifact_headers
from services.master.context import ContextDep
from shared.api_docs import documented_error
from shared.auth import EdgeOrServiceAuth, Principal
from shared.errors import Forbidden, Invalid, NotFound, RangeNotSatisfiable

router = APIRouter(tags=["artifacts"])

_ONE_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.ASCII | re.IGNORECASE)


def requested_range(
    value: str | None, if_range: str | None, validators: tuple[str, str], size: int
) -> tuple[int, int] | None:
    """The bytes ``[start, end)`` a GET asks for with ``Range``, or None for the whole file (no
    ``Range``, or an ``If-Range`` matching neither of ``validators``, the ETag and the
    Last-Modified date: the file is not the one the caller has part of). One range only:
    ``bytes=<first>-``, ``bytes=<first>-<last>`` or ``bytes=-<suffix length>``. FileResponse then
    sends exactly this range; what it would refuse is refused here, in the platform's form."""
    if value is None or (if_range is not None and if_range not in validators):
        return None
    match = _ONE_RANGE.match(value)
    if match is None or not (match[1] or match[2]):
        raise Invalid(
            "Range must be one byte range: bytes=<first>-[<last>] or bytes=-<suffix length>",
            field="Range",
        )
    first, last = match[1], match[2]
    if not first:  # the last <suffix length> bytes
        start, end = max(size - int(last), 0), size
    else:
        start, end = int(first), size if not last else min(int(last) + 1, size)
    if start >= size:
        raise RangeNotSatisfiable(size)
    if start >= end:
        raise Invalid("Range: the last byte is before the first", field="Range")
    return start, end


@router.get(
    "/artifacts/{digest}",
    summary="A stored package archive (normalised tar), streamed from disk, whole or a range",
    response_class=FileResponse,
    responses={
        206: {
            "description": "The byte range asked for (``Range: bytes=<first>-``, the rest of an "
            "interrupted download), with ``Content-Range``"
        },
        416: documented_error("416"),
    },
)
async def get_artifact(
    digest: str,
    ctx: ContextDep,
    access: ArtifactAccessDep,
    deltas: DeltaCacheDep,
    principal: EdgeOrServiceAuth,
    range_: Annotated[
        str | None,
        Header(
            alias="Range",
            description="one byte range, e.g. bytes=1048576- (the rest from that offset): "
            "answered 206",
        ),
    ] = None,
    if_range: Annotated[
        str | None,
        Header(
            alias="If-Range",
            description="the ETag of the archive the caller has part of: the range is sent "
            "only if it is still this archive, else the whole archive (200)",
        ),
    ] = None,
) -> FileResponse:
    store = ctx.store
    path = store.path(digest)  # Invalid (422) unless sha256:<64 hex>
    if not path.is_file():
        raise NotFound(f"artifact {digest} is not in the store", field="digest")
    await _check_access(access, principal, digest)
    stat = path.stat()
    headers = artifact_headers(digest, stat.st_mtime)
    part = requested_range(
        range_, if_range, (headers["ETag"], headers["Last-Modified"]), stat.st_size
    )
    if principal.kind == "edge":
        deltas.traffic.sent("full", stat.st_size if part is None else part[1] - part[0])
    return FileResponse(
        path,
        stat_result=stat,
        media_type="application/x-tar",
        headers=headers,
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
