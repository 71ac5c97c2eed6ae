"""Queries over the master's own tables: staged package uploads and build records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.master.models import BuildJob, BuildState, PackageUpload
from shared.db import utcnow


async def record_upload(
    session: AsyncSession,
    *,
    filename: str,
    ai_class: str,
    version: str,
    digest: str,
    size: int,
    manifest: dict[str, Any],
    source: str,
) -> None:
    """The package now known under these names (a re-upload of the same names replaces it)."""
    values = dict(
        filename=filename,
        ai_class=ai_class,
        version=version,
        package_digest=digest,
        package_size=size,
        manifest=manifest,
        source=source,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    stmt = insert(PackageUpload).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["filename", "ai_class", "version"],
        set_={
            k: stmt.excluded[k]
            for k in ("package_digest", "package_size", "manifest", "source", "updated_at")
        },
    )
    await session.execute(stmt)


async def find_upload(
    session: AsyncSession, filename: str, ai_class: str, version: str
) -> PackageUpload | None:
    return await session.scalar(
        select(PackageUpload).where(
            PackageUpload.filename == filename,
            PackageUpload.ai_class == ai_class,
            PackageUpload.version == version,
        )
    )


async def forget_upload(
    session: AsyncSession, filename: str, ai_class: str, version: str, *, digest: str | None = None
) -> None:
    """The upload under these names goes (only if it holds ``digest``, when given)."""
    stmt = delete(PackageUpload).where(
        PackageUpload.filename == filename,
        PackageUpload.ai_class == ai_class,
        PackageUpload.version == version,
    )
    if digest is not None:
        stmt = stmt.where(PackageUpload.package_digest == digest)
    await session.execute(stmt)


async def uploads_with_digest(session: AsyncSession, digest: str) -> list[PackageUpload]:
    return list(
        (
            await session.scalars(
                select(PackageUpload).where(PackageUpload.package_digest == digest)
            )
        ).all()
    )


async def start_job(session: AsyncSession, ai_id: int) -> BuildJob:
    job = await session.get(BuildJob, ai_id, with_for_update=True)
    if job is None:
        job = BuildJob(ai_id=ai_id, state=BuildState.RUNNING, attempts=0)
        session.add(job)
    job.state = BuildState.RUNNING
    job.attempts = (job.attempts or 0) + 1
    job.reason = None
    job.started_at = utcnow()
    job.finished_at = None
    await session.flush()
    return job


async def finish_job(
    session: AsyncSession, ai_id: int, *, state: BuildState, **fields: Any
) -> None:
    job = await session.get(BuildJob, ai_id)
    if job is None:
        return
    job.state = state
    job.finished_at = utcnow()
    for key, value in fields.items():
        setattr(job, key, value)
    await session.flush()


async def get_job(session: AsyncSession, ai_id: int) -> BuildJob | None:
    return await session.get(BuildJob, ai_id)
