from __future__ import annotations

from datetime import timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.clusters.schemas import ClusterCreate, ClusterUpdate
from services.setup.common import apply_changes, get_or_404
from services.setup.models import Cluster, Edge, Master
from shared.contracts.registry import ClusterOut
from shared.db import flush
from shared.errors import Conflict
from shared.pagination import PageParams, fetch_page

DEFAULT_CLUSTER = "default"


async def create(session: AsyncSession, data: ClusterCreate) -> Cluster:
    cluster = Cluster(**data.model_dump())
    session.add(cluster)
    await flush(session)
    return cluster


async def get(session: AsyncSession, cluster_id: int, *, field: str = "id") -> Cluster:
    return await get_or_404(session, Cluster, cluster_id, what="cluster", field=field)


async def get_or_create_default(session: AsyncSession) -> Cluster:
    cluster = await session.scalar(select(Cluster).where(Cluster.name == DEFAULT_CLUSTER))
    if cluster is None:
        cluster = await create(
            session,
            ClusterCreate(
                name=DEFAULT_CLUSTER, description="created for edges registered without a cluster"
            ),
        )
    return cluster


async def list_page(
    session: AsyncSession, params: PageParams, *, name: str | None, runtime: str | None
):
    stmt = select(Cluster).order_by(Cluster.id)
    if name:
        stmt = stmt.where(Cluster.name.ilike(f"%{name}%"))
    if runtime:
        stmt = stmt.where(Cluster.runtime == runtime)
    return await fetch_page(session, stmt, params)


async def update(session: AsyncSession, cluster_id: int, data: ClusterUpdate) -> Cluster:
    cluster = await get(session, cluster_id)
    apply_changes(cluster, data.model_dump(exclude_unset=True, exclude_none=True))
    await flush(session)
    return cluster


async def delete(session: AsyncSession, cluster_id: int) -> None:
    cluster = await get(session, cluster_id)
    if await session.scalar(select(exists().where(Edge.cluster_id == cluster_id))):
        raise Conflict(
            f"cluster {cluster_id} still has edges; move or delete them first", field="id"
        )
    await session.delete(cluster)
    await flush(session)


async def describe(
    session: AsyncSession, clusters: list[Cluster], silent_after_s: float
) -> list[ClusterOut]:
    """The clusters as answered: each with the master serving it and when it was last seen."""
    ids = {c.master_id for c in clusters if c.master_id is not None}
    masters = (
        {m.id: m for m in (await session.scalars(select(Master).where(Master.id.in_(ids)))).all()}
        if ids
        else {}
    )
    now = (await session.execute(select(func.now()))).scalar_one()
    out = []
    for c in clusters:
        item = ClusterOut.model_validate(c)
        m = masters.get(c.master_id) if c.master_id is not None else None
        if m is not None:
            item.master_name = m.name
            item.master_last_seen_at = m.last_seen_at
            fresh = m.last_seen_at is not None and now - m.last_seen_at <= timedelta(
                seconds=silent_after_s
            )
            item.master_state = "live" if fresh else "silent"
        out.append(item)
    return out
