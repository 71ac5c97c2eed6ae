from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse

from services.master.builds.service import BuildRunnerDep
from services.master.context import ContextDep
from services.master.reconcile.service import ReconcilerDep
from services.master.sites.membership import MembershipDep
from shared.auth import OperatorAuth, ReaderAuth
from shared.contracts.master import LeaseHolder, ReconcilePass, ReconcileTriggered

router = APIRouter(tags=["reconcile"])


@router.post(
    "/reconcile",
    summary="Converge now (setup calls this after every desired-state change)",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReconcileTriggered,
    responses={200: {"model": ReconcilePass, "description": "with ?wait=true: the pass run"}},
)
async def reconcile(
    reconciler: ReconcilerDep,
    _: OperatorAuth,
    wait: Annotated[bool, Query(description="run the pass now and answer its summary")] = False,
) -> JSONResponse:
    shared = reconciler.pull.shared
    if shared is not None and not shared.leads:
        # Another process of this site reconciles: it hears the ask through Postgres.
        await shared.ask_reconcile()
        held = await shared.lease.holder()
        asked = ReconcileTriggered(leader=LeaseHolder.model_validate(held) if held else None)
        return JSONResponse(asked.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    if wait:
        ran = ReconcilePass.model_validate(await reconciler.run_once())
        return JSONResponse(ran.model_dump(mode="json"))
    reconciler.trigger()
    asked = ReconcileTriggered()
    return JSONResponse(
        asked.model_dump(mode="json", exclude_none=True), status_code=status.HTTP_202_ACCEPTED
    )


@router.get(
    "/status",
    summary="The last reconcile pass (per-edge observed workloads) and builds under way",
)
async def master_status(
    ctx: ContextDep,
    reconciler: ReconcilerDep,
    membership: MembershipDep,
    builds: BuildRunnerDep,
    _: ReaderAuth,
) -> dict[str, Any]:
    return {
        "reconcile": {
            "period_s": ctx.settings.reconcile_seconds,
            "passes": reconciler.passes,
            "last": reconciler.last,
        },
        "site": {
            **membership.status(),
            "serving": sorted(reconciler.served.values()),
            "builds_for_fleet": ctx.settings.builds_for_fleet,
        },
        "builds_in_flight": sorted(builds.in_flight()),
        "registry": ctx.registry.host if ctx.registry else None,
        "artifacts": len(ctx.store.digests()),
        "board": (
            {"shared": False}
            if reconciler.pull.shared is None
            else {"shared": True, **await reconciler.pull.shared.status()}
        ),
    }
