"""The decision log and the explanation of an edge's current desired state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.optimizer.decisions import repository
from services.optimizer.engine import store
from services.optimizer.engine.runner import DecisionRunner
from services.optimizer.model.config import POLICY_NAMES, OverloadConfig
from services.optimizer.model.state import Edge, FleetState
from shared.contracts.decisions import (
    DecisionOut,
    DecisionPage,
    DeploymentExplained,
    EdgeExplained,
    Policy,
    PolicyBlocked,
    PolicyBlocker,
)
from shared.contracts.fleet import DesiredState
from shared.errors import Invalid, NotFound

MAX_LIMIT = 1000


def find_edge(fleet: FleetState, key: str, field: str = "edge") -> Edge:
    """An edge by id, name or node id."""
    if key.isdigit() and int(key) in fleet.edges:
        return fleet.edges[int(key)]
    if key in fleet.edges_by_nid:
        return fleet.edges_by_nid[key]
    for edge in fleet.edges.values():
        if edge.name == key:
            return edge
    raise NotFound(f"no edge {key!r} (id, name or nid) in the fleet", field=field)


async def find_edges(
    runner: DecisionRunner, keys: list[str], field: str = "edge"
) -> tuple[FleetState, list[Edge]]:
    """Edges by id, name or nid; the fleet is refreshed once when one is not in the mirror yet
    (registered in setup since the last refresh), before answering 404."""
    fleet = await runner.fleet_view()
    try:
        return fleet, [find_edge(fleet, key, field) for key in keys]
    except NotFound:
        fleet = await runner.fresh_fleet_view()
        return fleet, [find_edge(fleet, key, field) for key in keys]


async def list_decisions(
    session: AsyncSession,
    runner: DecisionRunner,
    *,
    edge: str | None,
    policy: str | None,
    action: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> DecisionPage:
    if limit > MAX_LIMIT:
        raise Invalid(f"at most {MAX_LIMIT}", field="limit")
    if policy is not None and policy not in POLICY_NAMES:
        raise Invalid(f"policy is one of {', '.join(POLICY_NAMES)}", field="policy")
    edge_id = None
    if edge is not None:
        edge_id = int(edge) if edge.isdigit() else (await find_edges(runner, [edge]))[1][0].id
    rows, total = await repository.page(
        session,
        edge_id=edge_id,
        policy=policy,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return DecisionPage(
        items=[DecisionOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


def load_forecast(runner: DecisionRunner, cfg: OverloadConfig, nid: str) -> dict[str, Any]:
    """The overload policy's forecast beside the smoothed load (when it follows this edge)."""
    out: dict[str, Any] = {}
    for kind in ("cpu", "memory"):
        trend = runner.trends.get(f"{nid}:{kind}")
        if trend is not None:
            ahead = trend.forecast(cfg.forecast_s, cfg.forecast_min_samples)
            out[f"{kind}_forecast"] = None if ahead is None else round(ahead, 2)
            out[f"{kind}_forecast_s"] = cfg.forecast_s
    return out


def blockers(
    runner: DecisionRunner, fleet: FleetState, edge: Edge, pinned: bool
) -> list[PolicyBlocked]:
    """What keeps policies from acting for this edge without saying so anywhere else."""
    out: list[PolicyBlocked] = []
    if pinned:
        out.append(
            PolicyBlocked(
                blocker=PolicyBlocker.PINNED,
                policies=list(Policy),
                reason="pinned by an operator: no policy touches it",
            )
        )
    if fleet.master_silent(edge):
        out.append(
            PolicyBlocked(
                blocker=PolicyBlocker.MASTER_SILENT,
                policies=list(Policy),
                reason="its cluster's master is silent: no policy decides for it until the "
                "master is heard from again",
            )
        )
    if edge.latitude is None or edge.longitude is None:
        out.append(
            PolicyBlocked(
                blocker=PolicyBlocker.NO_GPS,
                policies=[Policy.OVERLOAD, Policy.FOCUS],
                reason="no GPS position: overload finds it no helper nearby and never picks it "
                "as one; focus neither spreads from it nor reaches it",
            )
        )
    if not edge.supports_analysis:
        out.append(
            PolicyBlocked(
                blocker=PolicyBlocker.NO_ANALYSIS_SUPPORT,
                policies=[Policy.OVERLOAD],
                reason="analysis support is off (isSupportAnnalysis NO): overload never picks "
                "it as a helper",
            )
        )
    environment = runner.settings.environment_ai_class
    analysis = [
        d
        for d in fleet.by_edge.get(edge.id, [])
        if d.desired == DesiredState.RUNNING
        and not d.helps
        and (pkg := fleet.packages.get(d.ai_id)) is not None
        and pkg.ai_class != environment
    ]
    if not analysis:
        out.append(
            PolicyBlocked(
                blocker=PolicyBlocker.NO_ANALYSIS_AI,
                policies=[Policy.OVERLOAD, Policy.LOW_CONFIDENCE, Policy.FOCUS],
                reason="no analysis AI deployed: overload, low confidence and focus have "
                "nothing to move or tune",
            )
        )
    return out


async def explain(session: AsyncSession, runner: DecisionRunner, key: str) -> EdgeExplained:
    fleet, [edge] = await find_edges(runner, [key])
    deps = fleet.by_edge.get(edge.id, [])
    decided = await repository.by_ids(session, [d.decision_id for d in deps if d.decision_id])
    recent, _ = await repository.page(
        session,
        edge_id=edge.id,
        policy=None,
        action=None,
        outcome=None,
        since=None,
        until=None,
        limit=20,
        offset=0,
    )
    node = fleet.node_of(edge)
    pinned = await repository.pinned(session, edge.id)
    route = await repository.route(session, edge.nid)
    overload = runner.policies(await store.overrides(session)).overload
    items = []
    for d in deps:
        pkg = fleet.packages.get(d.ai_id)
        why = decided.get(d.decision_id or "")
        items.append(
            DeploymentExplained(
                id=d.id,
                filename=d.filename,
                ai_id=d.ai_id,
                version=pkg.version if pkg else None,
                ai_class=pkg.ai_class if pkg else None,
                params=d.params,
                generation=d.generation,
                observed=d.observed,
                observed_generation=d.observed_generation,
                restarts=d.restarts,
                decision_id=d.decision_id,
                decided_by=DecisionOut.model_validate(why) if why else None,
            )
        )
    return EdgeExplained(
        edge_id=edge.id,
        name=edge.name,
        nid=edge.nid,
        status=edge.status,
        pinned=pinned,
        blocked=blockers(runner, fleet, edge, pinned),
        node=None
        if node is None
        else {
            "condition": node.condition,
            "streak": node.streak,
            "cpu_avg": node.cpu_avg,
            "memory_avg": node.memory_avg,
            "low_confidence_share": node.low_confidence_share,
            "last_seen": node.last_seen,
            "stale": node.stale,
            **load_forecast(runner, overload, edge.nid),
        },
        routing=None
        if route is None
        else {
            "analysis": route.analysis,
            "helper_nid": route.helper_nid,
            "route_low_confidence": route.route_low_confidence,
        },
        deployments=items,
        recent_decisions=[DecisionOut.model_validate(r) for r in recent],
        memory=await repository.edge_memory(session, edge.id),
    )
