"""Apply and remove deployments through the master: recorded in setup (the owner of desired state),
then converged at once. The same as calling setup's /deployments, for operators who talk to the master."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, status

from services.master.context import ContextDep
from shared.auth import OperatorAuth

router = APIRouter(prefix="/deployments", tags=["deployments"])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Run AI ai_id on edge edge_id (recorded in setup)")
async def apply_deployment(
    ctx: ContextDep, _: OperatorAuth,
    body: dict[str, Any] = Body(..., examples=[{"edge_id": 1, "ai_id": 2, "params": {}}]),
) -> dict[str, Any]:
    deployment = await ctx.setup.create_deployment(body)
    ctx.reconciler.trigger()
    return deployment


@router.patch("/{deployment_id}", summary="Switch the AI (e.g. a new version) or change params")
async def update_deployment(
    deployment_id: int, ctx: ContextDep, _: OperatorAuth, body: dict[str, Any] = Body(..., examples=[{"ai_id": 3}])
) -> dict[str, Any]:
    deployment = await ctx.setup.update_deployment(deployment_id, body)
    ctx.reconciler.trigger()
    return deployment


@router.delete("/{deployment_id}", summary="Stop the AI there (the row stays in setup with its observed state)")
async def remove_deployment(deployment_id: int, ctx: ContextDep, _: OperatorAuth) -> dict[str, Any]:
    deployment = await ctx.setup.remove_deployment(deployment_id)
    ctx.reconciler.trigger()
    return deployment
