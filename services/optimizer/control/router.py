from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from services.optimizer.control import service
from services.optimizer.control.schemas import ControlsIn, CycleIn, PinIn
from services.optimizer.engine.runner import RunnerDep
from shared.auth import OperatorAuth, Principal, ReaderAuth
from shared.contracts.decisions import (
    CHANGED_VIA_HEADER,
    ChangedVia,
    ControlsOut,
    PinOut,
    Policy,
    RolloutOut,
)
from shared.contracts.policies import (
    POLICY_OUTS,
    POLICY_PATCHES,
    AnyPolicyOut,
    PolicyChangeOut,
    PolicyOut,
    PolicyPatch,
)
from shared.db import SessionDep

# A policy's name: a dropdown in the docs; an unknown name still answers 404 (the service's).
PolicyName = Annotated[
    str, Path(examples=["environment"], json_schema_extra={"enum": [p.value for p in Policy]})
]

router = APIRouter(tags=["control"])


@router.get(
    "/control", response_model=ControlsOut, summary="Pause, dry-run, leadership and the last cycle"
)
async def read_controls(runner: RunnerDep, session: SessionDep, _: ReaderAuth) -> ControlsOut:
    return await service.read_controls(session, runner)


@router.put(
    "/control", response_model=ControlsOut, summary="Pause or resume; dry-run on or off (persisted)"
)
async def set_controls(
    data: ControlsIn, runner: RunnerDep, session: SessionDep, who: OperatorAuth
) -> ControlsOut:
    return await service.set_controls(session, runner, data, who.kind)


@router.get("/pins", response_model=list[PinOut], summary="Edges an operator froze")
async def list_pins(runner: RunnerDep, session: SessionDep, _: ReaderAuth) -> list[PinOut]:
    return await service.list_pins(session, runner)


@router.put(
    "/pins/{edge}",
    response_model=PinOut,
    summary="Freeze an edge (id, name or nid): no policy touches it",
)
async def pin(
    edge: str, runner: RunnerDep, session: SessionDep, who: OperatorAuth, data: PinIn | None = None
) -> PinOut:
    return await service.pin(session, runner, edge, data or PinIn(), who.kind)


@router.delete("/pins/{edge}", status_code=status.HTTP_204_NO_CONTENT, summary="Unfreeze an edge")
async def unpin(edge: str, runner: RunnerDep, session: SessionDep, _: OperatorAuth) -> Response:
    await service.unpin(session, runner, edge)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/policies",
    response_model=list[AnyPolicyOut],
    summary="Every policy: defaults, overrides, effective",
)
async def list_policies(runner: RunnerDep, session: SessionDep, _: ReaderAuth) -> list[PolicyOut]:
    return await service.list_policies(session, runner)


def changed_by(request: Request, who: Principal) -> str:
    """Who changed a setting, and from which client (the X-Changed-Via header)."""
    given = request.headers.get(CHANGED_VIA_HEADER, "")
    via = given if given in {v.value for v in ChangedVia} else ChangedVia.API.value
    return f"{who.name or who.kind} ({via})"


@router.get(
    "/policies/changes",
    response_model=list[PolicyChangeOut],
    summary="Who changed which policy's settings, newest first",
)
async def policy_changes(
    session: SessionDep, _: ReaderAuth, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[PolicyChangeOut]:
    return await service.policy_changes(session, limit)


def _tuning_route(policy: Policy, patch: type[PolicyPatch]) -> None:
    """``PATCH /policies/<policy>``: its body is the policy's own change model (an unknown or
    misspelled setting, a value of the wrong type: 422 naming the field, nothing written)."""

    async def tune_policy(
        changes: PolicyPatch,
        request: Request,
        session: SessionDep,
        who: OperatorAuth,
        runner: RunnerDep,
    ) -> PolicyOut:
        by = changed_by(request, who)
        return await service.tune_policy(session, runner, policy, changes, by)

    tune_policy.__annotations__["changes"] = Annotated[patch, Body(examples=[{"enabled": False}])]
    router.add_api_route(
        f"/policies/{policy.value}",
        tune_policy,
        methods=["PATCH"],
        response_model=POLICY_OUTS[policy],
        summary=f"Enable/disable or tune the {policy.value} policy (persisted)",
        name=f"tune_{policy.value}",
    )


for _policy, _patch in POLICY_PATCHES.items():
    _tuning_route(_policy, _patch)


@router.patch("/policies/{name}", include_in_schema=False)
async def tune_unknown_policy(name: str, _: OperatorAuth) -> None:
    """Any other name: 404 naming the policies."""
    service.known_policy(name)


@router.delete(
    "/policies/{name}/overrides",
    response_model=AnyPolicyOut,
    summary="Back to the settings' defaults",
)
async def reset_policy(
    name: PolicyName,
    request: Request,
    session: SessionDep,
    who: OperatorAuth,
    runner: RunnerDep,
) -> PolicyOut:
    by = changed_by(request, who)
    return await service.reset_policy(session, runner, name, by)


@router.post(
    "/cycle",
    summary="Run a decision cycle now (whole fleet, or the edges named) and return its summary",
)
async def run_cycle(
    runner: RunnerDep, _: OperatorAuth, data: CycleIn | None = None
) -> dict[str, Any]:
    return await service.run_cycle(runner, data)


@router.get("/rollouts", response_model=list[RolloutOut], summary="Version rollouts, newest first")
async def list_rollouts(session: SessionDep, _: ReaderAuth) -> list[RolloutOut]:
    return await service.list_rollouts(session)


@router.post(
    "/rollouts/{rollout_id}/pause",
    response_model=RolloutOut,
    summary="Pause an active rollout: no new wave starts until it is resumed",
)
async def pause_rollout(
    rollout_id: int, runner: RunnerDep, session: SessionDep, _: OperatorAuth
) -> RolloutOut:
    return await service.set_rollout_paused(session, runner, rollout_id, True)


@router.post(
    "/rollouts/{rollout_id}/resume",
    response_model=RolloutOut,
    summary="Resume a paused rollout (its wave's timeout counts from now)",
)
async def resume_rollout(
    rollout_id: int, runner: RunnerDep, session: SessionDep, _: OperatorAuth
) -> RolloutOut:
    return await service.set_rollout_paused(session, runner, rollout_id, False)


@router.post(
    "/rollouts/{rollout_id}/rollback",
    response_model=RolloutOut,
    summary="Roll a rollout back: its edges go back to the version they ran before, for good",
)
async def roll_back_rollout(
    rollout_id: int, runner: RunnerDep, session: SessionDep, _: OperatorAuth
) -> RolloutOut:
    return await service.roll_back(session, runner, rollout_id)
