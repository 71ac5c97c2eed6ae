from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.ai_packages.schemas import AiPackageCreate, AiPackageUpdate
from services.setup.common import apply_changes, get_or_404
from services.setup.master_client import MasterCalls
from services.setup.models import AiPackage, Deployment
from shared.contracts.fleet import DesiredState, PackageStatus
from shared.db import flush
from shared.errors import Conflict
from shared.pagination import PageParams, fetch_page
from shared.versions import version_key


async def create(
    session: AsyncSession, data: AiPackageCreate, master: MasterCalls, *, request_build: bool = True
) -> AiPackage:
    key = version_key(data.version)
    clash = await session.scalar(
        select(AiPackage.id).where(
            AiPackage.filename == data.filename,
            AiPackage.ai_class == data.ai_class,
            AiPackage.version_key == key,
        )
    )
    if clash is not None:
        raise Conflict(
            f"{data.filename} class {data.ai_class} version "
            f"{data.version} already exists (AI {clash})",
            field="version",
        )
    ai = AiPackage(**data.model_dump(), version_key=key, status=PackageStatus.UPLOADED)
    session.add(ai)
    await flush(session)
    if request_build:
        master.request_build(session, ai.id)
    return ai


async def get(session: AsyncSession, ai_id: int, *, field: str = "id") -> AiPackage:
    return await get_or_404(session, AiPackage, ai_id, what="AI package", field=field)


async def list_page(session: AsyncSession, params: PageParams, **filters):
    stmt = select(AiPackage).order_by(
        AiPackage.filename, AiPackage.ai_class, AiPackage.version_key.desc()
    )
    for column in ("filename", "ai_class", "status", "condition"):
        if filters.get(column) is not None:
            stmt = stmt.where(getattr(AiPackage, column) == filters[column])
    return await fetch_page(session, stmt, params)


async def update(
    session: AsyncSession, ai_id: int, data: AiPackageUpdate, master: MasterCalls
) -> AiPackage:
    ai = await get(session, ai_id)
    changes = data.model_dump(exclude_unset=True)
    ready = PackageStatus.READY
    became_ready = changes.get("status") == ready and ai.status != ready
    apply_changes(ai, changes)
    await flush(session)
    if became_ready:
        await master.request_reconcile(session, ai_id=ai.id)
    return ai


async def remove(session: AsyncSession, ai_id: int, master: MasterCalls) -> AiPackage:
    """Mark removed (the master deletes its image and artifact); refused while it is deployed."""
    ai = await get(session, ai_id)
    in_use = await session.scalar(
        select(
            exists().where(Deployment.ai_id == ai_id, Deployment.desired == DesiredState.RUNNING)
        )
    )
    if in_use:
        raise Conflict(
            f"AI {ai_id} is deployed on at least one edge; undeploy it first", field="id"
        )
    if ai.status != PackageStatus.REMOVED:
        ai.status = PackageStatus.REMOVED
        await flush(session)
        await master.request_removal(session, ai.id)
    return ai
