from __future__ import annotations

from fastapi import APIRouter, status

from services.setup.deployments import service
from services.setup.deployments.schemas import (
    BulkRequest,
    BulkResponse,
    DeploymentCreate,
    DeploymentOut,
    DeploymentUpdate,
    ObservedReports,
)
from services.setup.master_client import MasterDep
from shared.auth import OperatorAuth, Principal, ReaderAuth, ServiceAuth
from shared.contracts.fleet import DesiredState, ObservedState
from shared.contracts.master import ObservedRecorded
from shared.db import SessionDep
from shared.pagination import Page, PageDep

router = APIRouter(prefix="/deployments", tags=["deployments"])


def _who(principal: Principal) -> str:
    return "operator" if principal.kind == "operator" else "service"


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DeploymentOut)
async def create_deployment(
    data: DeploymentCreate, session: SessionDep, master: MasterDep, who: OperatorAuth
):
    """Desired state: AI ``ai_id`` runs on edge ``edge_id``. The master converges to it."""
    deployment = await service.create(session, data, requested_by=_who(who))
    await master.request_reconcile(session, edge_ids=[deployment.edge_id])
    return deployment


@router.get("", response_model=Page[DeploymentOut])
async def list_deployments(
    session: SessionDep,
    _: ReaderAuth,
    page: PageDep,
    edge_id: int | None = None,
    ai_id: int | None = None,
    desired: DesiredState | None = None,
    observed: ObservedState | None = None,
    filename: str | None = None,
):
    items, total = await service.list_page(
        session,
        page,
        edge_id=edge_id,
        ai_id=ai_id,
        desired=desired,
        observed=observed,
        filename=filename,
    )
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.post(
    "/bulk",
    response_model=BulkResponse,
    summary="Apply many changes in one transaction (optimizer)",
)
async def bulk(data: BulkRequest, session: SessionDep, master: MasterDep, _: OperatorAuth):
    applied = await service.apply_bulk(session, data)
    if applied.edge_ids:
        await master.request_reconcile(session, edge_ids=applied.edge_ids)
    return BulkResponse(results=applied.results)


@router.post("/observed", summary="Observed state of deployments (the master reports)")
async def observed(data: ObservedReports, session: SessionDep, _: ServiceAuth) -> ObservedRecorded:
    return ObservedRecorded(updated=await service.record_observed(session, data))


@router.get("/{deployment_id}", response_model=DeploymentOut)
async def get_deployment(deployment_id: int, session: SessionDep, _: ReaderAuth):
    return await service.get(session, deployment_id)


@router.patch("/{deployment_id}", response_model=DeploymentOut)
async def update_deployment(
    deployment_id: int,
    data: DeploymentUpdate,
    session: SessionDep,
    master: MasterDep,
    who: OperatorAuth,
):
    """Change the AI (e.g. a new version: a rolling replace) or its params."""
    deployment = await service.update_one(session, deployment_id, data, requested_by=_who(who))
    await master.request_reconcile(session, edge_ids=[deployment.edge_id])
    return deployment


@router.delete("/{deployment_id}", response_model=DeploymentOut)
async def remove_deployment(
    deployment_id: int, session: SessionDep, master: MasterDep, who: OperatorAuth
):
    """Desired state: the AI no longer runs there. The row stays, with the master's observed
    state."""
    deployment = await service.remove(session, deployment_id, requested_by=_who(who))
    await master.request_reconcile(session, edge_ids=[deployment.edge_id])
    return deployment
