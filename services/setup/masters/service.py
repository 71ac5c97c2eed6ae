from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.clusters import service as clusters
from services.setup.common import apply_changes, get_or_404
from services.setup.masters.schemas import (
    MasterCreate,
    MasterHeartbeat,
    MasterOut,
    MasterRegister,
    MasterUpdate,
)
from services.setup.models import Cluster, Master
from shared.db import flush
from shared.errors import Conflict, Invalid, NotFound
from shared.pagination import PageParams, fetch_page

log = logging.getLogger("edge.setup.masters")


def state_of(master: Master | None, now: datetime, silent_after_s: float) -> str:
    """live (heard from lately), silent (not since silent_after_s), record (never registered)."""
    if master is None or master.last_seen_at is None:
        return "record"
    return "live" if now - master.last_seen_at <= timedelta(seconds=silent_after_s) else "silent"


async def _now(session: AsyncSession) -> datetime:
    """The database clock (the one last_seen_at is written with)."""
    return (await session.execute(select(func.now()))).scalar_one()


async def describe(
    session: AsyncSession, masters: list[Master], silent_after_s: float
) -> list[MasterOut]:
    """The masters as answered: with the clusters each serves and its state."""
    ids = [m.id for m in masters]
    served: dict[int, list[str]] = {}
    if ids:
        rows = await session.execute(
            select(Cluster.master_id, Cluster.name)
            .where(Cluster.master_id.in_(ids))
            .order_by(Cluster.name)
        )
        for master_id, name in rows:
            if master_id is not None:
                served.setdefault(master_id, []).append(name)
    now = await _now(session)
    out = []
    for m in masters:
        item = MasterOut.model_validate(m)
        item.clusters = served.get(m.id, [])
        item.state = state_of(m, now, silent_after_s)  # type: ignore[assignment]
        out.append(item)
    return out


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


# --- a master's own registration and heartbeats -----------------------------------------------


async def register(session: AsyncSession, data: MasterRegister, silent_after_s: float) -> Master:
    """Record (or refresh) the master named ``data.name`` as serving ``data.clusters``.

    Every named cluster must exist (422 naming ``clusters``); one that another *live* master
    serves is refused (409 naming ``clusters``) and nothing is written. A cluster whose master is
    silent is taken over (logged). Clusters the master served before and no longer names are
    released. Rows are locked: two masters claiming one cluster at once are serialised."""
    master = await session.scalar(select(Master).where(Master.name == data.name).with_for_update())
    wanted: list[Cluster] = []
    if data.clusters:
        found = (
            await session.scalars(
                select(Cluster)
                .where(Cluster.name.in_(data.clusters))
                .order_by(Cluster.id)
                .with_for_update()
            )
        ).all()
        by_name = {c.name: c for c in found}
        missing = [n for n in data.clusters if n not in by_name]
        if missing:
            raise Invalid(
                f"clusters: no cluster named {', '.join(map(repr, missing))}; create it first "
                "(POST /clusters)",
                field="clusters",
            )
        wanted = [by_name[n] for n in data.clusters]
    now = await _now(session)
    owners = {
        m.id: m
        for m in (
            await session.scalars(
                select(Master).where(Master.id.in_({c.master_id for c in wanted if c.master_id}))
            )
        ).all()
    }
    for cluster in wanted:
        owner = owners.get(cluster.master_id) if cluster.master_id else None
        if owner is None or (master is not None and owner.id == master.id):
            continue
        if state_of(owner, now, silent_after_s) == "live":
            raise Conflict(
                f"cluster {cluster.name!r} is served by master {owner.name!r} ({owner.url}), "
                "which is live; stop it or move the cluster off it first",
                field="clusters",
            )
        log.warning(
            "master %s takes cluster %s over from the silent master %s",
            data.name,
            cluster.name,
            owner.name,
        )
    if master is None:
        master = Master(name=data.name, url=data.url or "", description=data.description)
        session.add(master)
    else:
        master.url = data.url or master.url
        master.description = data.description
    master.last_seen_at = now
    master.health = data.health.model_dump(mode="json")
    if wanted and master.cluster_id is None:
        master.cluster_id = wanted[0].id  # the field's single cluster of a master
    await flush(session)
    keep = {c.id for c in wanted}
    for cluster in wanted:
        cluster.master_id = master.id
    released = (await session.scalars(select(Cluster).where(Cluster.master_id == master.id))).all()
    for cluster in released:
        if cluster.id not in keep:
            cluster.master_id = None
    await flush(session)
    return master


async def heartbeat(session: AsyncSession, master_id: int, data: MasterHeartbeat) -> Master:
    master = await session.get(Master, master_id, with_for_update=True)
    if master is None:
        raise NotFound(
            f"master {master_id} does not exist; register again (POST /masters/register)",
            field="id",
        )
    master.last_seen_at = await _now(session)
    master.health = data.health.model_dump(mode="json")
    await flush(session)
    return master
