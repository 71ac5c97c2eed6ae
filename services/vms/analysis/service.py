"""Frames sent up for precise re-analysis: validated, stored and queued (the analysis server's
inbox)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.vms.models import analysis_requests as t
from services.vms.nodes.directory import NodeDirectory
from shared.auth import Principal
from shared.contracts.analysis import InboxClaim, InboxFrame, InboxResult, InboxResultRecorded
from shared.errors import Forbidden, Invalid, NotFound, Unauthorized

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LIST_COLUMNS = (
    t.c.id,
    t.c.nid,
    t.c.received_at,
    t.c.ts,
    t.c.reason,
    t.c.metadata,
    t.c.image_sha256,
    t.c.status,
    t.c.result,
    t.c.authenticated,
)


def _parse_metadata(raw: str | None) -> dict[str, Any]:
    if raw is None:
        raise Invalid("the metadata part (JSON) is missing", field="metadata")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Invalid(f"metadata is not valid JSON: {exc.msg}", field="metadata") from exc
    if not isinstance(data, dict):
        raise Invalid("metadata must be a JSON object", field="metadata")
    return data


def _parse_ts(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise Invalid(f"{value!r} is not an ISO 8601 time", field="metadata.ts") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


async def accept(
    session: AsyncSession,
    directory: NodeDirectory,
    principal: Principal,
    *,
    image: bytes,
    metadata_raw: str | None,
    max_image_bytes: int,
) -> dict[str, Any]:
    if principal.kind == "anonymous":
        raise Unauthorized()
    metadata = _parse_metadata(metadata_raw)
    if not image:
        raise Invalid("the image part is missing or empty", field="image")
    if len(image) > max_image_bytes:
        raise Invalid(f"the image is over {max_image_bytes} bytes", field="image")
    if not (image.startswith(JPEG_MAGIC) or image.startswith(PNG_MAGIC)):
        raise Invalid("the image must be a JPEG or PNG", field="image")
    nid = metadata.get("nid")
    if principal.kind == "edge":
        if nid not in (None, principal.nid):
            raise Forbidden(
                f"this token is for node {principal.nid}, not {nid}", field="metadata.nid"
            )
        nid = principal.nid
    if not isinstance(nid, str) or not nid:
        raise Invalid("metadata.nid is required", field="metadata.nid")
    if not await directory.is_known(nid, from_token=principal.kind == "edge"):
        raise NotFound(f"node {nid} is not registered", field="metadata.nid")
    row = {
        "nid": nid,
        "received_at": datetime.now(UTC),
        "ts": _parse_ts(metadata.get("ts")),
        "reason": str(metadata.get("reason") or "")[:64] or None,
        "metadata": metadata,
        "image": image,
        "image_sha256": hashlib.sha256(image).hexdigest(),
        "status": "queued",
        "authenticated": principal.kind == "edge",
    }
    new_id = (await session.execute(insert(t).values(**row).returning(t.c.id))).scalar_one()
    return {"id": new_id, "nid": nid, "status": "queued", "image_sha256": row["image_sha256"]}


async def list_page(
    session: AsyncSession, *, nid: str | None, status: str | None, limit: int, offset: int
) -> dict[str, Any]:
    stmt = select(*LIST_COLUMNS)
    count = select(func.count()).select_from(t)
    for column, value in ((t.c.nid, nid), (t.c.status, status)):
        if value is not None:
            stmt, count = stmt.where(column == value), count.where(column == value)
    rows = (
        (await session.execute(stmt.order_by(t.c.id.desc()).limit(limit).offset(offset)))
        .mappings()
        .all()
    )
    items = [
        {
            **r,
            "received_at": r["received_at"].isoformat(),
            "ts": r["ts"].isoformat() if r["ts"] else None,
        }
        for r in rows
    ]
    return {
        "items": items,
        "total": (await session.execute(count)).scalar_one(),
        "limit": limit,
        "offset": offset,
    }


async def image(
    session: AsyncSession, request_id: int, principal: Principal | None = None
) -> bytes:
    row = (
        await session.execute(select(t.c.image, t.c.nid).where(t.c.id == request_id))
    ).one_or_none()
    if row is None:
        raise NotFound(f"analysis request {request_id} does not exist", field="id")
    if principal is not None and principal.kind == "edge" and row.nid != principal.nid:
        raise Forbidden("an edge token reads only its own frames", field="request_id")
    return row.image


# The analysis service's side of the inbox: claim queued frames under a lease, record results.
# A claimed frame is "analysing" with {"lease_until": ...} in result until its result comes;
# a lease that ran out makes it claimable again (its analyser stopped).
CLAIM_SQL = text("""
UPDATE vms.analysis_requests AS r
SET status = 'analysing', result = jsonb_build_object('lease_until', CAST(:until AS timestamptz))
WHERE r.id IN (
    SELECT id FROM vms.analysis_requests
    WHERE status = 'queued'
       OR (status = 'analysing' AND CAST(result->>'lease_until' AS timestamptz) < now())
    ORDER BY id LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING r.id, r.nid, r.ts, r.reason, r.metadata, r.image_sha256
""")


async def claim(session: AsyncSession, *, limit: int, lease_s: float) -> InboxClaim:
    until = datetime.now(UTC) + timedelta(seconds=lease_s)
    rows = (await session.execute(CLAIM_SQL, {"until": until, "limit": limit})).mappings().all()
    frames = [InboxFrame.model_validate(dict(r)) for r in sorted(rows, key=lambda r: r["id"])]
    return InboxClaim(frames=frames, lease_until=until)


async def record_result(
    session: AsyncSession, request_id: int, body: InboxResult
) -> InboxResultRecorded:
    """Idempotent: the first result of a frame is kept, a repeat answers ``written: false``."""
    result = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    stmt = (
        t.update()
        .where(t.c.id == request_id, t.c.status != "done")
        .values(status=body.status, result=result)
        .returning(t.c.id)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is not None:
        return InboxResultRecorded(id=request_id, status=body.status, written=True)
    found = await session.execute(select(t.c.status).where(t.c.id == request_id))
    current = found.scalar_one_or_none()
    if current is None:
        raise NotFound(f"analysis request {request_id} does not exist", field="id")
    return InboxResultRecorded(id=request_id, status=current, written=False)
