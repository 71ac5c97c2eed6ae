"""Apply and remove deployments through the master: a pass-through to setup's /deployments (the
owner of desired state), for operators who talk to the master. Setup records the change and
then asks the master to reconcile: the one write path, whichever service the operator calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, status

from services.master.context import ContextDep
from shared.auth import OperatorAuth
from shared.contracts.deployments import DeploymentCreate, DeploymentOut, DeploymentUpdate

router = APIRouter(prefix="/deployments", tags=["deployments"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DeploymentOut,
    summary="Run AI ai_id on edge edge_id (recorded in setup)",
)
async def apply_deployment(
    ctx: ContextDep,
    _: OperatorAuth,
    body: Annotated[
        DeploymentCreate,
        Body(examples=[{"edge_id": 1, "ai_id": 1, "params": {}, "allow_multiple": True}]),
    ],
) -> DeploymentOut:
    return await ctx.setup.create_deployment(body)


@router.patch(
    "/{deployment_id}",
    response_model=DeploymentOut,
    summary="Switch the AI (e.g. a new version) or change params",
)
async def update_deployment(
    deployment_id: Annotated[int, Path(examples=[2])],
    ctx: ContextDep,
    _: OperatorAuth,
    body: Annotated[DeploymentUpdate, Body(examples=[{"params": {"CONFIDENCE": "0.5"}}])],
) -> DeploymentOut:
    return await ctx.setup.update_deployment(deployment_id, body)


@router.delete(
    "/{deployment_id}",
    response_model=DeploymentOut,
    summary="Stop the AI there (the row stays in setup with its observed state)",
)
async def remove_deployment(deployment_id: int, ctx: ContextDep, _: OperatorAuth) -> DeploymentOut:
    return await ctx.setup.remove_deployment(deployment_id)
