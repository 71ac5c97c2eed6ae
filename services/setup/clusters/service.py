from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.clusters.schemas import ClusterCreate, ClusterUpdate
from services.setup.common import apply_changes, get_or_404
from services.setup.models import Cluster, Edge
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
