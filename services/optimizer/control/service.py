"""Operator controls: pause, dry-run, pins, per-policy tuning (persisted over the settings)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.optimizer import models as m
from services.optimizer.control.schemas import ControlsIn, CycleIn, PinIn
from services.optimizer.decisions.service import find_edges
from services.optimizer.engine import store
from services.optimizer.engine.runner import DecisionRunner
from shared.contracts.decisions import ControlsOut, PinOut, Policy, RolloutOut, RolloutStatus
from shared.contracts.policies import (
    POLICY_MODELS,
    POLICY_OUTS,
    POLICY_PATCHES,
    PolicyChangeOut,
    PolicyOut,
    PolicyPatch,
)
from shared.db import after_commit, flush, utcnow
from shared.errors import Conflict, Invalid, NotFound

log = logging.getLogger("optimizer.control")


async def read_controls(session: AsyncSession, runner: DecisionRunner) -> ControlsOut:
    values = await store.controls(session, runner.settings)
    return ControlsOut(
        paused=bool(values["paused"]),
        dry_run=bool(values["dry_run"]),
        leader=await runner.lease.holder(),
        replica=runner.lease.me,
        last_cycle=runner.last_cycle,
    )


async def set_controls(
    session: AsyncSession, runner: DecisionRunner, data: ControlsIn, by: str
) -> ControlsOut:
    for name in ("paused", "dry_run"):
        value = getattr(data, name)
        if value is not None:
            await store.set_control(session, name, value, by)
    await flush(session)
    if data.paused is False or data.dry_run is False:
        after_commit(session, _request(runner, full=True))  # catch up with what was held back
    return await read_controls(session, runner)


async def list_pins(session: AsyncSession, runner: DecisionRunner) -> list[PinOut]:
    rows = (await session.scalars(select(m.Pin).order_by(m.Pin.edge_id))).all()
    names = {e.id: e.name for e in runner.fleet.edges.values()} if runner.fleet else {}
    return [
        PinOut(
            edge_id=r.edge_id,
            edge_name=names.get(r.edge_id),
            reason=r.reason,
            created_at=r.created_at,
            created_by=r.created_by,
        )
        for r in rows
    ]


async def pin(
    session: AsyncSession, runner: DecisionRunner, key: str, data: PinIn, by: str
) -> PinOut:
    [edge] = (await find_edges(runner, [key]))[1]
    now = utcnow()
    stmt = insert(m.Pin).values(edge_id=edge.id, reason=data.reason, created_at=now, created_by=by)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["edge_id"], set_={"reason": data.reason})
    )
    row = await session.get_one(m.Pin, edge.id, populate_existing=True)
    return PinOut(
        edge_id=edge.id,
        edge_name=edge.name,
        reason=row.reason,
        created_at=row.created_at,
        created_by=row.created_by,
    )


async def unpin(session: AsyncSession, runner: DecisionRunner, key: str) -> None:
    [edge] = (await find_edges(runner, [key]))[1]
    deleted = await session.scalar(
        delete(m.Pin).where(m.Pin.edge_id == edge.id).returning(m.Pin.edge_id)
    )
    if deleted is None:
        raise NotFound(f"edge {edge.name} is not pinned", field="edge")
    after_commit(session, _request(runner, edge_ids={edge.id}))


def _request(
    runner: DecisionRunner, *, full: bool = False, edge_ids: set[int] | None = None
) -> Callable[[], Awaitable[None]]:
    """A cycle request for after the commit (the cycle reads the controls and pins anew)."""

    async def request() -> None:
        runner.request(full=full, edge_ids=edge_ids)

    return request


def known_policy(name: str) -> Policy:
    """The policy named; 404 for any other name."""
    if name not in POLICY_MODELS:
        raise NotFound(f"no policy {name!r}; policies: {', '.join(POLICY_MODELS)}", field="name")
    return Policy(name)


def _policy(
    runner: DecisionRunner, name: Policy, overrides: dict[str, dict[str, Any]]
) -> PolicyOut:
    defaults = getattr(runner.settings.policies(), name)
    effective = getattr(runner.policies(overrides), name)
    return POLICY_OUTS[name](
        name=name,
        enabled=effective.enabled,
        effective=effective,
        defaults=defaults,
        overrides=POLICY_PATCHES[name].model_validate(overrides.get(name) or {}),
    )


async def list_policies(session: AsyncSession, runner: DecisionRunner) -> list[PolicyOut]:
    overrides = await store.overrides(session)
    return [_policy(runner, Policy(name), overrides) for name in POLICY_MODELS]


async def tune_policy(
    session: AsyncSession, runner: DecisionRunner, name: Policy, patch: PolicyPatch, by: str
) -> PolicyOut:
    """``patch`` (the policy's own change body, checked field by field) over the changes already
    made; the whole checked again as the policy's model before anything is written."""
    changes = patch.changes()
    overrides = await store.overrides(session)
    merged = {**(overrides.get(name) or {}), **changes}
    try:
        POLICY_MODELS[name].model_validate(
            {**getattr(runner.settings.policies(), name).model_dump(), **merged}
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise Invalid(f"{field}: {err['msg']}", field=field) from exc
    stmt = insert(m.PolicyOverride).values(policy=name, config=merged, updated_at=utcnow())
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["policy"], set_={"config": merged, "updated_at": utcnow()}
        )
    )
    session.add(m.PolicyChange(policy=name, changed_by=by, changes=changes, reset=False))
    await flush(session)
    log.info("policy %s changed by %s: %s", name, by, json.dumps(changes, sort_keys=True))
    overrides[name] = merged
    return _policy(runner, name, overrides)


async def reset_policy(
    session: AsyncSession, runner: DecisionRunner, name: str, by: str
) -> PolicyOut:
    policy = known_policy(name)
    await session.execute(delete(m.PolicyOverride).where(m.PolicyOverride.policy == policy))
    session.add(m.PolicyChange(policy=policy, changed_by=by, changes={}, reset=True))
    log.info("policy %s reset to the settings' defaults by %s", policy, by)
    return _policy(
        runner, policy, {k: v for k, v in (await store.overrides(session)).items() if k != policy}
    )


async def policy_changes(session: AsyncSession, limit: int) -> list[PolicyChangeOut]:
    rows = await session.scalars(
        select(m.PolicyChange).order_by(m.PolicyChange.id.desc()).limit(limit)
    )
    return [PolicyChangeOut.model_validate(r) for r in rows.all()]


async def run_cycle(runner: DecisionRunner, data: CycleIn | None) -> dict[str, Any]:
    if data is None or not data.edges:
        return await runner.run_cycle(trigger="manual")
    _, edges = await find_edges(runner, data.edges, field="edges")
    ids = {edge.id for edge in edges}
    return await runner.run_cycle(scope_edge_ids=ids, trigger="manual")


async def list_rollouts(session: AsyncSession) -> list[RolloutOut]:
    rows = (await session.scalars(select(m.Rollout).order_by(m.Rollout.started_at.desc()))).all()
    return [RolloutOut.model_validate(r) for r in rows]


async def set_rollout_paused(
    session: AsyncSession, runner: DecisionRunner, rollout_id: int, paused: bool
) -> RolloutOut:
    """Pause an active rollout (no new wave) or resume a paused one (its current wave's timeout
    counts from now). Halted, completed and superseded rollouts answer 409."""
    row = await session.get(m.Rollout, rollout_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no rollout {rollout_id}", field="rollout_id")
    want, need = (
        (RolloutStatus.PAUSED, RolloutStatus.ACTIVE)
        if paused
        else (RolloutStatus.ACTIVE, RolloutStatus.PAUSED)
    )
    if row.status != want:
        if row.status != need:
            verb = "paused" if paused else "resumed"
            article = "an" if need == RolloutStatus.ACTIVE else "a"
            raise Conflict(
                f"rollout {rollout_id} is {row.status}: "
                f"only {article} {need} rollout can be {verb}",
                field="rollout_id",
            )
        row.status = want
        if not paused:
            row.wave_started_at = utcnow()
        await flush(session)
        after_commit(session, _request(runner, full=True))
    return RolloutOut.model_validate(row)


ROLLBACK_FROM = (
    RolloutStatus.ACTIVE,
    RolloutStatus.PAUSED,
    RolloutStatus.HALTED,
    RolloutStatus.COMPLETED,
)


async def roll_back(session: AsyncSession, runner: DecisionRunner, rollout_id: int) -> RolloutOut:
    """Stop a rollout for good and send its members back: the next whole-fleet cycle (requested
    for after the commit) moves every edge it upgraded back to the version it ran before, through
    the normal write path (one bulk request to setup, a ``rollback`` decision of the version
    policy per edge), and no edge is upgraded to this version again. Again on a rolled-back
    rollout: the same answer; a superseded one answers 409 (a newer version's rollout governs)."""
    row = await session.get(m.Rollout, rollout_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no rollout {rollout_id}", field="rollout_id")
    if row.status != RolloutStatus.ROLLED_BACK:
        if row.status not in ROLLBACK_FROM:
            raise Conflict(
                f"rollout {rollout_id} is {row.status}: a newer version's rollout governs "
                f"{row.filename}",
                field="rollout_id",
            )
        row.status = RolloutStatus.ROLLED_BACK
        await flush(session)
        after_commit(session, _request(runner, full=True))
    return RolloutOut.model_validate(row)
