"""Desired deployments ("AI a runs on edge e") and the observed state the master reports."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.setup.ai_packages import service as ai_packages
from services.setup.common import get_or_404
from services.setup.deployments import bulk
from services.setup.deployments.schemas import (
    BulkRequest,
    CreateOp,
    DeploymentCreate,
    DeploymentUpdate,
    ObservedReports,
)
from services.setup.edges import service as edges
from services.setup.models import AiPackage, Deployment
from shared.contracts.fleet import DesiredState, ObservedState, PackageStatus
from shared.db import flush, utcnow
from shared.errors import Conflict, Invalid, NotFound
from shared.pagination import PageParams, fetch_page

DEPLOYABLE = (PackageStatus.UPLOADED, PackageStatus.BUILDING, PackageStatus.READY)


async def _deployable_ai(session: AsyncSession, ai_id: int, field: str) -> AiPackage:
    ai = await ai_packages.get(session, ai_id, field=field)
    if ai.status not in DEPLOYABLE:
        raise Invalid(f"AI {ai_id} is {ai.status} and cannot be deployed", field=field)
    return ai


async def _check_single_filename(
    session: AsyncSession, edge_id: int, filename: str, *, except_id: int | None = None
) -> None:
    stmt = select(Deployment.id).where(
        Deployment.edge_id == edge_id,
        Deployment.filename == filename,
        Deployment.desired == DesiredState.RUNNING,
        Deployment.allow_multiple.is_(False),
    )
    if except_id is not None:
        stmt = stmt.where(Deployment.id != except_id)
    clash = await session.scalar(stmt.limit(1))
    if clash is not None:
        raise Conflict(
            f"edge {edge_id} already runs an AI named {filename} (deployment {clash}); "
            "update that deployment, remove it first, or set allow_multiple",
            field="ai_id",
        )


async def create(
    session: AsyncSession,
    data: DeploymentCreate | CreateOp,
    *,
    requested_by: str,
    field_prefix: str = "",
) -> Deployment:
    await edges.get(session, data.edge_id, field=f"{field_prefix}edge_id")
    ai = await _deployable_ai(session, data.ai_id, f"{field_prefix}ai_id")
    if not data.allow_multiple:
        await _check_single_filename(session, data.edge_id, ai.filename)
    deployment = Deployment(
        edge_id=data.edge_id,
        ai_id=ai.id,
        filename=ai.filename,
        params=data.params,
        allow_multiple=data.allow_multiple,
        requested_by=requested_by,
        decision_id=data.decision_id,
        desired=DesiredState.RUNNING,
        observed=ObservedState.PENDING,
    )
    session.add(deployment)
    await flush(session)
    return deployment


async def get(session: AsyncSession, deployment_id: int, *, field: str = "id") -> Deployment:
    return await get_or_404(session, Deployment, deployment_id, what="deployment", field=field)


async def get_locked(session: AsyncSession, deployment_id: int, *, field: str = "id") -> Deployment:
    """The row, locked until the transaction ends (SELECT ... FOR UPDATE) and read afresh:
    concurrent writers of one deployment queue here instead of overwriting each other."""
    stmt = (
        select(Deployment)
        .where(Deployment.id == deployment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"deployment {deployment_id} does not exist", field=field)
    return row


async def list_page(session: AsyncSession, params: PageParams, **filters):
    stmt = select(Deployment).order_by(Deployment.id)
    for column in ("edge_id", "ai_id", "desired", "observed", "filename", "requested_by"):
        if filters.get(column) is not None:
            stmt = stmt.where(getattr(Deployment, column) == filters[column])
    return await fetch_page(session, stmt, params)


async def update_one(
    session: AsyncSession,
    deployment_id: int,
    data: DeploymentUpdate,
    *,
    requested_by: str,
    expected_generation: int | None = None,
    redeploy: bool = False,
    field_prefix: str = "",
) -> Deployment:
    deployment = await get_locked(session, deployment_id, field=f"{field_prefix}id")
    if deployment.desired != DesiredState.RUNNING:
        raise Conflict(f"deployment {deployment_id} is removed", field=f"{field_prefix}id")
    if expected_generation is not None and deployment.generation != expected_generation:
        raise Conflict(
            f"deployment {deployment_id} is at generation "
            f"{deployment.generation}, not {expected_generation}",
            field=f"{field_prefix}expected_generation",
        )
    changed = redeploy
    if data.ai_id is not None and data.ai_id != deployment.ai_id:
        ai = await _deployable_ai(session, data.ai_id, f"{field_prefix}ai_id")
        if ai.filename != deployment.filename and not deployment.allow_multiple:
            await _check_single_filename(
                session, deployment.edge_id, ai.filename, except_id=deployment.id
            )
        deployment.ai_id, deployment.filename = ai.id, ai.filename
        changed = True
    if data.params is not None and data.params != deployment.params:
        deployment.params = data.params
        changed = True
    if changed:
        deployment.generation += 1
        deployment.observed = ObservedState.PENDING
        deployment.observed_reason = None
        deployment.requested_by = requested_by
        deployment.decision_id = data.decision_id
    await flush(session)
    return deployment


async def remove(
    session: AsyncSession,
    deployment_id: int,
    *,
    requested_by: str,
    decision_id: str | None = None,
    field_prefix: str = "",
) -> Deployment:
    deployment = await get_locked(session, deployment_id, field=f"{field_prefix}id")
    if deployment.desired != DesiredState.REMOVED:
        deployment.desired = DesiredState.REMOVED
        deployment.generation += 1
        deployment.requested_by = requested_by
        deployment.decision_id = decision_id
        await flush(session)
    return deployment


async def record_observed(session: AsyncSession, data: ObservedReports) -> int:
    ids = [r.id for r in data.reports]
    existing = set(
        (await session.scalars(select(Deployment.id).where(Deployment.id.in_(ids)))).all()
    )
    missing = [i for i in ids if i not in existing]
    if missing:
        raise NotFound(f"deployments {missing[:10]} do not exist", field="reports.id")
    now = utcnow()
    for report in data.reports:
        await session.execute(
            update(Deployment)
            .where(Deployment.id == report.id)
            .values(
                observed=report.observed,
                observed_reason=report.reason,
                observed_at=now,
                observed_generation=report.generation,
                restarts=report.restarts,
            )
        )
    return len(data.reports)


async def apply_bulk(session: AsyncSession, data: BulkRequest) -> bulk.Applied:
    """Every operation in one transaction; the first failure names ``operations[i]`` and writes
    nothing. Set-based, at COPY speed (services.setup.deployments.bulk), with the checks and
    messages of the one-by-one routes above."""
    return await bulk.apply_bulk(session, data)
