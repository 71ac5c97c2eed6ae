from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.clusters import service as clusters
from services.setup.common import apply_changes, get_or_404
from services.setup.masters.schemas import MasterCreate, MasterUpdate
from services.setup.models import Master
from shared.db import flush
from shared.pagination import PageParams, fetch_page


async def create(session: AsyncSession, data: MasterCreate) -> Master:
    if data.cluster_id is not None:
        await clusters.get(session, data.cluster_id, field="cluster_id")
    master = Master(**data.model_dump(exclude={"ip", "port"}))
    session.add(master)
    await flush(session)
    return master


async def get(session: AsyncSession, master_id: int) -> Master:
    return await get_or_404(session, Master, master_id, what="master")


async def list_page(
    session: AsyncSession, params: PageParams, *, name: str | None, cluster_id: int | None
):
    stmt = select(Master).order_by(Master.id)
    if name:
        stmt = stmt.where(Master.name.ilike(f"%{name}%"))
    if cluster_id is not None:
        stmt = stmt.where(Master.cluster_id == cluster_id)
    return await fetch_page(session, stmt, params)


async def update(session: AsyncSession, master_id: int, data: MasterUpdate) -> Master:
    master = await get(session, master_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("cluster_id") is not None:
        await clusters.get(session, changes["cluster_id"], field="cluster_id")
    apply_changes(master, {k: v for k, v in changes.items() if v is not None or k == "cluster_id"})
    await flush(session)
    return master


async def delete(session: AsyncSession, master_id: int) -> None:
    await session.delete(await get(session, master_id))
    await flush(session)
