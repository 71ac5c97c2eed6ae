"""Event clips: resumable uploads from the edges, stored on disk with an index in Postgres.

An upload is named by the clip's SHA-256 (its id): ``start`` says where to go on (the bytes of a
partial upload already here, or all of them when the clip is stored: never stored twice);
``append`` takes the chunk at exactly that offset (a chunk cut by a dropped link is not kept, so
the edge resumes from the last whole one); the last chunk is checked against the id, the file
moved to ``<clips_dir>/<nid>/<id>.mp4`` and indexed. Retention deletes by age, then the oldest
beyond each edge's total and beyond the overall total."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.vms.models import clips as t
from services.vms.settings import VmsSettings
from shared.auth import Principal
from shared.deps import from_app_state
from shared.errors import Conflict, Forbidden, Invalid, NotFound

log = logging.getLogger("edge.vms.clips")

CLIP_ID = r"^[0-9a-f]{64}$"


class ClipUpload(BaseModel):
    """``POST /clips/uploads``: what the edge knows of the clip before its bytes."""

    clip_id: str = Field(pattern=CLIP_ID, description="SHA-256 of the file (hex)")
    nid: str = Field(min_length=1, max_length=32)
    event: str = Field(min_length=1, max_length=128, description="the event's id on the edge")
    started_at: datetime
    duration_s: float = Field(ge=0, le=3600)
    classes: list[str] = Field(default_factory=list, max_length=50)
    size: int = Field(gt=0)


class UploadState(BaseModel):
    clip_id: str
    offset: int = Field(description="bytes the VMS holds; the next chunk starts here")
    size: int
    complete: bool


class ClipStore:
    def __init__(self, settings: VmsSettings) -> None:
        self.settings = settings
        self.root = Path(settings.clips_dir).resolve()
        self.partial = self.root / ".partial"
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _part(self, clip_id: str) -> Path:
        return self.partial / f"{clip_id}.part"

    def _meta(self, clip_id: str) -> Path:
        return self.partial / f"{clip_id}.json"

    def final_path(self, nid: str, clip_id: str) -> Path:
        return self.root / nid / f"{clip_id}.mp4"

    async def start(
        self, session: AsyncSession, principal: Principal, body: ClipUpload
    ) -> UploadState:
        if principal.nid != body.nid:
            raise Forbidden(f"an edge uploads only its own clips: nid must be {principal.nid!r}")
        if body.size > self.settings.clip_max_bytes:
            raise Invalid(f"a clip is {self.settings.clip_max_bytes} bytes at most", field="size")
        stored = await session.scalar(select(t.c.size).where(t.c.id == body.clip_id))
        if stored is not None:
            return UploadState(clip_id=body.clip_id, offset=stored, size=stored, complete=True)
        async with self._locks[body.clip_id]:
            self.partial.mkdir(parents=True, exist_ok=True)
            meta = self._meta(body.clip_id)
            if not meta.exists():
                meta.write_text(body.model_dump_json())
                self._part(body.clip_id).touch()
            known = ClipUpload.model_validate_json(meta.read_text())
            if known.size != body.size or known.nid != body.nid:
                raise Conflict("an upload of this clip with another size or edge is under way")
            offset = self._part(body.clip_id).stat().st_size
        return UploadState(clip_id=body.clip_id, offset=offset, size=body.size, complete=False)

    async def append(
        self, session: AsyncSession, principal: Principal, clip_id: str, offset: int, chunk: bytes
    ) -> UploadState:
        async with self._locks[clip_id]:
            meta_path = self._meta(clip_id)
            if not meta_path.exists():
                stored = await session.scalar(select(t.c.size).where(t.c.id == clip_id))
                if stored is not None:
                    return UploadState(clip_id=clip_id, offset=stored, size=stored, complete=True)
                raise NotFound(f"no upload of clip {clip_id}: start it first")
            meta = ClipUpload.model_validate_json(meta_path.read_text())
            if principal.nid != meta.nid:
                raise Forbidden("an edge uploads only its own clips")
            part = self._part(clip_id)
            held = part.stat().st_size
            if offset != held:
                raise Conflict(
                    f"Upload-Offset is {offset}, the VMS holds {held} bytes: send from {held}",
                    field="Upload-Offset",
                )
            if held + len(chunk) > meta.size:
                raise Invalid("the chunk goes past the clip's size", field="body")
            await asyncio.to_thread(_append, part, chunk)
            held += len(chunk)
            if held < meta.size:
                return UploadState(clip_id=clip_id, offset=held, size=meta.size, complete=False)
            await self._finish(session, meta)
            return UploadState(clip_id=clip_id, offset=held, size=meta.size, complete=True)

    async def _finish(self, session: AsyncSession, meta: ClipUpload) -> None:
        part = self._part(meta.clip_id)
        digest = await asyncio.to_thread(_sha256, part)
        if digest != meta.clip_id:
            part.unlink(missing_ok=True)
            self._meta(meta.clip_id).unlink(missing_ok=True)
            raise Invalid("the clip's bytes do not match its id (SHA-256): upload it again")
        target = self.final_path(meta.nid, meta.clip_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        await session.execute(
            insert(t)
            .values(
                id=meta.clip_id,
                nid=meta.nid,
                event=meta.event,
                started_at=meta.started_at,
                duration_s=meta.duration_s,
                classes=meta.classes,
                size=meta.size,
                path=str(target.relative_to(self.root)),
                stored_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing()
        )
        await session.commit()
        self._meta(meta.clip_id).unlink(missing_ok=True)
        log.info("clip %s of %s stored (%d bytes)", meta.clip_id[:12], meta.nid, meta.size)
        await self.retention(session)

    async def retention(self, session: AsyncSession) -> int:
        """Age, then each edge's total, then the overall total (oldest first)."""
        s = self.settings
        cutoff = datetime.now(UTC) - timedelta(days=s.clips_max_age_days)
        rows = (
            await session.execute(
                select(t.c.id, t.c.nid, t.c.size, t.c.path, t.c.started_at).order_by(
                    t.c.started_at.desc()
                )
            )
        ).all()
        doomed: list[Any] = []
        per_edge: dict[str, int] = defaultdict(int)
        total = 0
        for row in rows:
            if row.started_at < cutoff:
                doomed.append(row)
                continue
            per_edge[row.nid] += row.size
            total += row.size
            if per_edge[row.nid] > s.clips_max_bytes_per_edge or total > s.clips_max_bytes:
                doomed.append(row)
                per_edge[row.nid] -= row.size
                total -= row.size
        if doomed:
            await session.execute(delete(t).where(t.c.id.in_([r.id for r in doomed])))
            await session.commit()
            for row in doomed:
                (self.root / row.path).unlink(missing_ok=True)
            log.info("clip retention: %d clip(s) deleted", len(doomed))
        self._sweep_partial()
        return len(doomed)

    def _sweep_partial(self) -> None:
        if not self.partial.exists():
            return
        cutoff = time.time() - self.settings.clips_partial_max_age_s
        for path in self.partial.iterdir():
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

    async def list(
        self,
        session: AsyncSession,
        nid: str | None,
        limit: int,
        offset: int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        """Clips newest first; with since/until, those whose start lies in [since, until]
        (a time without a zone is taken as UTC)."""
        where = [] if nid is None else [t.c.nid == nid]
        if since is not None:
            where.append(t.c.started_at >= _aware(since))
        if until is not None:
            where.append(t.c.started_at <= _aware(until))
        if since is not None and until is not None and _aware(until) < _aware(since):
            raise Invalid("until is before since", field="until")
        total = await session.scalar(select(func.count()).select_from(t).where(*where))
        rows = (
            await session.execute(
                select(t).where(*where).order_by(t.c.started_at.desc()).limit(limit).offset(offset)
            )
        ).mappings()
        return {
            "items": [_public(r) for r in rows],
            "total": total or 0,
            "limit": limit,
            "offset": offset,
        }

    async def get(self, session: AsyncSession, clip_id: str) -> dict[str, Any]:
        row = (await session.execute(select(t).where(t.c.id == clip_id))).mappings().first()
        if row is None:
            raise NotFound(f"no clip {clip_id}")
        return _public(row)

    async def file(self, session: AsyncSession, clip_id: str) -> Path:
        path = await session.scalar(select(t.c.path).where(t.c.id == clip_id))
        if path is None or not (self.root / path).is_file():
            raise NotFound(f"no clip {clip_id}")
        return self.root / path


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _public(row: Any) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "nid", "event", "duration_s", "size")}
    out["classes"] = list(row["classes"])
    out["started_at"] = row["started_at"].isoformat()
    out["stored_at"] = row["stored_at"].isoformat()
    return out


def _append(path: Path, chunk: bytes) -> None:
    with open(path, "ab") as f:
        f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


ClipStoreDep = Annotated[ClipStore, Depends(from_app_state("clips", ClipStore))]
