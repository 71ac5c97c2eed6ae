from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse

from services.master.context import ContextDep
from shared.auth import OperatorAuth, ReaderAuth

router = APIRouter(tags=["reconcile"])


@router.post("/reconcile", summary="Converge now (setup calls this after every desired-state change)")
async def reconcile(
    ctx: ContextDep, _: OperatorAuth, wait: bool = Query(False, description="run the pass now and answer its summary")
) -> JSONResponse:
    if wait:
        return JSONResponse(await ctx.reconciler.run_once())
    ctx.reconciler.trigger()
    return JSONResponse({"status": "triggered"}, status_code=status.HTTP_202_ACCEPTED)


@router.get("/status", summary="The last reconcile pass (per-edge observed workloads) and builds under way")
async def master_status(ctx: ContextDep, _: ReaderAuth) -> dict[str, Any]:
    s = ctx.settings
    return {
        "reconcile": {"period_s": s.reconcile_seconds, "passes": ctx.reconciler.passes, "last": ctx.reconciler.last},
        "builds_in_flight": sorted(ctx.builds.in_flight()),
        "registry": ctx.registry.host if ctx.registry else None,
        "artifacts": len(ctx.store.digests()),
    }
