from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.optimizer import models as m


async def page(
    session: AsyncSession,
    *,
    edge_id: int | None,
    policy: str | None,
    action: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[m.Decision], int]:
    stmt = select(m.Decision)
    if edge_id is not None:
        stmt = stmt.where(m.Decision.edge_id == edge_id)
    if policy is not None:
        stmt = stmt.where(m.Decision.policy == policy)
    if action is not None:
        stmt = stmt.where(m.Decision.action == action)
    if outcome is not None:
        stmt = stmt.where(m.Decision.outcome == outcome)
    if since is not None:
        stmt = stmt.where(m.Decision.at >= since)
    if until is not None:
        stmt = stmt.where(m.Decision.at < until)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = (
        await session.scalars(
            stmt.order_by(m.Decision.at.desc(), m.Decision.id).limit(limit).offset(offset)
        )
    ).all()
    return list(rows), int(total or 0)


async def by_ids(session: AsyncSession, ids: list[str]) -> dict[str, m.Decision]:
    if not ids:
        return {}
    return {
        d.id: d
        for d in (await session.scalars(select(m.Decision).where(m.Decision.id.in_(ids)))).all()
    }


async def edge_memory(session: AsyncSession, edge_id: int) -> dict[str, dict]:
    rows = await session.execute(
        select(m.EdgeMemory.policy, m.EdgeMemory.data).where(m.EdgeMemory.edge_id == edge_id)
    )
    return {p: d for p, d in rows}


async def route(session: AsyncSession, nid: str) -> m.Route | None:
    return await session.get(m.Route, nid)


async def pinned(session: AsyncSession, edge_id: int) -> bool:
    return await session.get(m.Pin, edge_id) is not None
