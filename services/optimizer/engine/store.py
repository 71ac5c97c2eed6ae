"""What the runner reads from and writes to the optimizer's own tables around one cycle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.optimizer import models as m
from services.optimizer.model.context import FocusRequest, RolloutState, RolloutStatus, RouteState
from services.optimizer.model.plan import DecisionRecord
from services.optimizer.settings import OptimizerSettings
from shared.contracts.decisions import Outcome, op_wire
from shared.db import utcnow

# A decision waiting for its outcome: id, when, its operations as sent (JSON).
PendingDecision = tuple[str, datetime, list[dict[str, Any]]]


async def controls(session: AsyncSession, settings: OptimizerSettings) -> dict[str, Any]:
    values = {"paused": settings.paused, "dry_run": settings.dry_run}
    for row in (await session.scalars(select(m.Control))).all():
        values[row.name] = row.value
    return values


async def set_control(session: AsyncSession, name: str, value: Any, by: str) -> None:
    stmt = insert(m.Control).values(name=name, value=value, updated_at=utcnow(), updated_by=by)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"], set_={"value": value, "updated_at": utcnow(), "updated_by": by}
        )
    )


async def overrides(session: AsyncSession) -> dict[str, dict[str, Any]]:
    return {r.policy: r.config for r in (await session.scalars(select(m.PolicyOverride))).all()}


async def pins(session: AsyncSession) -> set[int]:
    return set((await session.scalars(select(m.Pin.edge_id))).all())


async def memory(session: AsyncSession) -> dict[tuple[str, int], dict[str, Any]]:
    rows = await session.execute(
        select(m.EdgeMemory.policy, m.EdgeMemory.edge_id, m.EdgeMemory.data)
    )
    return {(p, e): d for p, e, d in rows}


async def rollouts(session: AsyncSession) -> list[RolloutState]:
    out = []
    for r in (
        await session.scalars(select(m.Rollout).where(m.Rollout.status != RolloutStatus.SUPERSEDED))
    ).all():
        out.append(
            RolloutState(
                id=r.id,
                filename=r.filename,
                to_version=r.to_version,
                to_version_key=r.to_version_key,
                status=RolloutStatus(r.status),
                wave=r.wave,
                wave_started_at=r.wave_started_at,
                started_at=r.started_at,
                members={int(k): v for k, v in r.members.items()},
                previous={int(k): v for k, v in r.previous.items()},
                failed=set(r.failed),
            )
        )
    return out


async def routes(session: AsyncSession) -> dict[str, RouteState]:
    out = {}
    for r in (await session.scalars(select(m.Route))).all():
        out[r.nid] = RouteState(
            r.nid,
            r.edge_id,
            r.analysis,
            r.helper_nid,
            r.route_low_confidence,
            r.low_confidence_share,
            r.frames_sent_up_share,
            r.decision_id,
        )
    return out


async def focus(session: AsyncSession, now: datetime) -> list[FocusRequest]:
    rows = (await session.scalars(select(m.FocusEvent).where(m.FocusEvent.expires_at > now))).all()
    return [FocusRequest(r.nid, r.expires_at, r.classes) for r in rows]


async def add_focus(
    session: AsyncSession, nid: str, classes: list[str], at: datetime, ttl_s: float
) -> datetime:
    expires = at + timedelta(seconds=ttl_s)
    # Old events are of no further use once expired (the decisions keep their record).
    await session.execute(
        delete(m.FocusEvent).where(m.FocusEvent.expires_at < at - timedelta(hours=1))
    )
    session.add(m.FocusEvent(nid=nid, classes=classes, at=at, expires_at=expires))
    return expires


def decision_rows(
    decisions: list[DecisionRecord],
    cycle_id: str,
    *,
    dry_run: bool,
    outcome_of: Callable[[DecisionRecord], tuple[Outcome, str | None]],
) -> list[dict[str, Any]]:
    rows = []
    for d in decisions:
        outcome, detail = outcome_of(d)
        rows.append(
            {
                "id": d.id,
                "at": d.at,
                "cycle_id": cycle_id,
                "policy": d.policy,
                "edge_id": d.edge_id,
                "edge_name": d.edge_name,
                "nid": d.nid,
                "deployment_id": d.deployment_id,
                "action": d.action,
                "reason": d.reason,
                "inputs": d.inputs,
                "operations": [op_wire(op) for op in d.operations],
                "dry_run": dry_run,
                "outcome": outcome,
                "outcome_detail": detail,
                "outcome_at": None if outcome == Outcome.PENDING else d.at,
            }
        )
    return rows


async def save_decisions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 2000):
        await session.execute(insert(m.Decision), rows[start : start + 2000])


async def save_memory(
    session: AsyncSession, changes: dict[tuple[str, int], dict[str, Any] | None]
) -> None:
    forget = [(p, e) for (p, e), d in changes.items() if d is None]
    keep = [
        {"policy": p, "edge_id": e, "data": d, "updated_at": utcnow()}
        for (p, e), d in changes.items()
        if d is not None
    ]
    for p, e in forget:
        await session.execute(
            delete(m.EdgeMemory).where(m.EdgeMemory.policy == p, m.EdgeMemory.edge_id == e)
        )
    if keep:
        stmt = insert(m.EdgeMemory)
        for start in range(0, len(keep), 2000):
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["edge_id", "policy"],
                    set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at},
                ),
                keep[start : start + 2000],
            )


async def save_rollouts(session: AsyncSession, changed: list[RolloutState]) -> None:
    for r in changed:
        values = dict(
            filename=r.filename,
            to_version=r.to_version,
            to_version_key=r.to_version_key,
            status=r.status,
            wave=r.wave,
            wave_started_at=r.wave_started_at,
            started_at=r.started_at,
            members={str(k): v for k, v in r.members.items()},
            previous={str(k): v for k, v in r.previous.items()},
            failed=sorted(r.failed),
            updated_at=utcnow(),
        )
        if r.id is None:
            r.id = await session.scalar(insert(m.Rollout).values(**values).returning(m.Rollout.id))
        else:
            # An operator's pause or roll back during the cycle holds (a roll back always).
            held = [RolloutStatus.ROLLED_BACK]
            if r.status == RolloutStatus.ACTIVE:
                held.append(RolloutStatus.PAUSED)
            values["status"] = case((m.Rollout.status.in_(held), m.Rollout.status), else_=r.status)
            await session.execute(update(m.Rollout).where(m.Rollout.id == r.id).values(**values))
        r.dirty = False


async def save_routes(session: AsyncSession, changed: list[RouteState]) -> None:
    if not changed:
        return
    rows = [
        {
            "nid": r.nid,
            "edge_id": r.edge_id,
            "analysis": r.analysis,
            "helper_nid": r.helper_nid,
            "route_low_confidence": r.route_low_confidence,
            "low_confidence_share": r.low_confidence_share,
            "frames_sent_up_share": r.frames_sent_up_share,
            "decision_id": r.decision_id,
            "updated_at": utcnow(),
        }
        for r in changed
    ]
    stmt = insert(m.Route)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["nid"],
            set_={c: getattr(stmt.excluded, c) for c in rows[0] if c != "nid"},
        ),
        rows,
    )


async def restore_routes(
    session: AsyncSession, changed: list[RouteState], before: dict[str, RouteState]
) -> None:
    """Put the routing rows ``changed`` back as they were (``before``; a row that did not exist
    is deleted): a cycle whose write setup refused must not leave its routes behind."""
    gone = [r.nid for r in changed if r.nid not in before]
    if gone:
        await session.execute(delete(m.Route).where(m.Route.nid.in_(gone)))
    await save_routes(session, [before[r.nid] for r in changed if r.nid in before])


async def pending_decisions(session: AsyncSession, limit: int = 20_000) -> list[PendingDecision]:
    rows = await session.execute(
        select(m.Decision.id, m.Decision.at, m.Decision.operations)
        .where(m.Decision.outcome == Outcome.PENDING)
        .order_by(m.Decision.at)
        .limit(limit)
    )
    return [(r.id, r.at, r.operations) for r in rows]


async def set_outcomes(
    session: AsyncSession, outcomes: dict[str, tuple[Outcome, str | None]]
) -> None:
    now = utcnow()
    for decision_id, (outcome, detail) in outcomes.items():
        await session.execute(
            update(m.Decision)
            .where(m.Decision.id == decision_id)
            .values(outcome=outcome, outcome_detail=detail, outcome_at=now)
        )
