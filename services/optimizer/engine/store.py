"""What the runner reads from and writes to the optimizer's own tables around one cycle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import case, delete, select, text, update
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


def _json(value: Any) -> str:
    """A JSON column's value as text (what the set-based statements below send)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# The set-based writes below send one array per column (one statement, one round trip, however
# many rows: the per-row statements they replace cost about 0.3 ms each, a cold cycle writes
# thousands).
_SAVE_DECISIONS = text(
    """
    INSERT INTO optimizer.decisions
           (id, at, cycle_id, policy, edge_id, edge_name, nid, deployment_id, action, reason,
            inputs, operations, dry_run, outcome, outcome_detail, outcome_at)
    SELECT id, at, cycle_id, policy, edge_id, edge_name, nid, deployment_id, action, reason,
           inputs::json, operations::json, dry_run, outcome, outcome_detail, outcome_at
      FROM unnest(CAST(:id AS text[]), CAST(:at AS timestamptz[]), CAST(:cycle_id AS text[]),
                  CAST(:policy AS text[]), CAST(:edge_id AS int[]), CAST(:edge_name AS text[]),
                  CAST(:nid AS text[]), CAST(:deployment_id AS int[]), CAST(:action AS text[]),
                  CAST(:reason AS text[]), CAST(:inputs AS text[]), CAST(:operations AS text[]),
                  CAST(:dry_run AS bool[]), CAST(:outcome AS text[]),
                  CAST(:outcome_detail AS text[]), CAST(:outcome_at AS timestamptz[]))
        AS r(id, at, cycle_id, policy, edge_id, edge_name, nid, deployment_id, action, reason,
             inputs, operations, dry_run, outcome, outcome_detail, outcome_at)"""
)
_DECISION_COLUMNS = (
    "id",
    "at",
    "cycle_id",
    "policy",
    "edge_id",
    "edge_name",
    "nid",
    "deployment_id",
    "action",
    "reason",
    "dry_run",
    "outcome",
    "outcome_detail",
    "outcome_at",
)


async def save_decisions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """The decision log's new rows (``decision_rows``), in one statement."""
    if not rows:
        return
    columns: dict[str, list[Any]] = {
        name: [_plain(row[name]) for row in rows] for name in _DECISION_COLUMNS
    }
    columns["inputs"] = [_json(row["inputs"]) for row in rows]
    columns["operations"] = [_json(row["operations"]) for row in rows]
    await session.execute(_SAVE_DECISIONS, columns)


def _plain(value: Any) -> Any:
    """A StrEnum member as its text (the driver sends text arrays of plain str)."""
    return str(value) if isinstance(value, StrEnum) else value


_FORGET_MEMORY = text(
    """
    DELETE FROM optimizer.edge_memory AS m
     USING unnest(CAST(:policy AS text[]), CAST(:edge_id AS int[])) AS f(policy, edge_id)
     WHERE m.policy = f.policy AND m.edge_id = f.edge_id"""
)
_SAVE_MEMORY = text(
    """
    INSERT INTO optimizer.edge_memory (edge_id, policy, data, updated_at)
    SELECT edge_id, policy, data::json, CAST(:now AS timestamptz)
      FROM unnest(CAST(:edge_id AS int[]), CAST(:policy AS text[]), CAST(:data AS text[]))
        AS r(edge_id, policy, data)
        ON CONFLICT (edge_id, policy)
        DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at"""
)


async def save_memory(
    session: AsyncSession, changes: dict[tuple[str, int], dict[str, Any] | None]
) -> None:
    """The policies' memory changes: None forgets (one statement each way)."""
    forget = [(p, e) for (p, e), d in changes.items() if d is None]
    keep = [(p, e, d) for (p, e), d in changes.items() if d is not None]
    if forget:
        await session.execute(
            _FORGET_MEMORY,
            {"policy": [str(p) for p, _ in forget], "edge_id": [e for _, e in forget]},
        )
    if keep:
        await session.execute(
            _SAVE_MEMORY,
            {
                "edge_id": [e for _, e, _ in keep],
                "policy": [str(p) for p, _, _ in keep],
                "data": [_json(d) for _, _, d in keep],
                "now": utcnow(),
            },
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


_SAVE_ROUTES = text(
    """
    INSERT INTO optimizer.routes
           (nid, edge_id, analysis, helper_nid, route_low_confidence, low_confidence_share,
            frames_sent_up_share, decision_id, updated_at)
    SELECT nid, edge_id, analysis, helper_nid, route_low_confidence, low_confidence_share,
           frames_sent_up_share, decision_id, CAST(:now AS timestamptz)
      FROM unnest(CAST(:nid AS text[]), CAST(:edge_id AS int[]), CAST(:analysis AS text[]),
                  CAST(:helper_nid AS text[]), CAST(:route_low_confidence AS bool[]),
                  CAST(:low_confidence_share AS float8[]),
                  CAST(:frames_sent_up_share AS float8[]), CAST(:decision_id AS text[]))
        AS r(nid, edge_id, analysis, helper_nid, route_low_confidence, low_confidence_share,
             frames_sent_up_share, decision_id)
        ON CONFLICT (nid) DO UPDATE SET
           edge_id = excluded.edge_id, analysis = excluded.analysis,
           helper_nid = excluded.helper_nid,
           route_low_confidence = excluded.route_low_confidence,
           low_confidence_share = excluded.low_confidence_share,
           frames_sent_up_share = excluded.frames_sent_up_share,
           decision_id = excluded.decision_id, updated_at = excluded.updated_at"""
)


async def save_routes(session: AsyncSession, changed: list[RouteState]) -> None:
    """The routing rows ``changed``, inserted or updated in one statement (a nid given twice:
    the last one)."""
    if not changed:
        return
    routes = list({r.nid: r for r in changed}.values())
    await session.execute(
        _SAVE_ROUTES,
        {
            "nid": [r.nid for r in routes],
            "edge_id": [r.edge_id for r in routes],
            "analysis": [str(r.analysis) for r in routes],
            "helper_nid": [r.helper_nid for r in routes],
            "route_low_confidence": [r.route_low_confidence for r in routes],
            "low_confidence_share": [r.low_confidence_share for r in routes],
            "frames_sent_up_share": [r.frames_sent_up_share for r in routes],
            "decision_id": [r.decision_id for r in routes],
            "now": utcnow(),
        },
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


_SET_OUTCOMES = text(
    """
    UPDATE optimizer.decisions AS d
       SET outcome = o.outcome, outcome_detail = o.detail, outcome_at = CAST(:now AS timestamptz)
      FROM unnest(CAST(:id AS text[]), CAST(:outcome AS text[]), CAST(:detail AS text[]))
        AS o(id, outcome, detail)
     WHERE d.id = o.id"""
)


async def set_outcomes(
    session: AsyncSession, outcomes: dict[str, tuple[Outcome, str | None]]
) -> None:
    """Earlier decisions' outcomes, in one statement."""
    if not outcomes:
        return
    await session.execute(
        _SET_OUTCOMES,
        {
            "id": list(outcomes),
            "outcome": [str(outcome) for outcome, _ in outcomes.values()],
            "detail": [detail for _, detail in outcomes.values()],
            "now": utcnow(),
        },
    )
