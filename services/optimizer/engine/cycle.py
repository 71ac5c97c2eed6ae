"""One decision cycle, pure: fleet state + context in, operations + decisions + state changes out.

No I/O here, so it is unit-tested and benchmarked on its own (bench/reconcile).
Policy order matters: recovery first (it may mark an edge degraded, which overload then sees),
then variants (environment + version), overload, focus, and the routing that follows from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edge_common.vocabulary import Param
from services.optimizer.model.context import Cycle, CycleInput, RolloutState, RouteState
from services.optimizer.model.plan import DecisionRecord, Planned
from services.optimizer.model.state import Deployment
from services.optimizer.policies import focus, low_confidence, overload, recovery, variants, version
from shared.contracts.decisions import op_wire
from shared.contracts.routing import AnalysisRoute


@dataclass
class CycleResult:
    operations: list[Planned]
    decisions: list[DecisionRecord]
    memory: dict[tuple[str, int], dict[str, Any] | None]  # None: forget
    rollouts: list[RolloutState]  # changed ones
    routes: list[RouteState]  # changed ones
    next_wakeup: datetime | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def wire_operations(self) -> list[dict[str, Any]]:
        """The operations as setup takes them."""
        return [op_wire(p.op) for p in self.operations]


def _deps_by_filename(cycle: Cycle) -> dict[str, list[Deployment]]:
    found: dict[str, list[Deployment]] = {}
    for deps in cycle.state.by_edge.values():
        for d in deps:
            if not d.helps:
                found.setdefault(d.filename, []).append(d)
    return found


def _routing_decisions(cycle: Cycle) -> dict[int, str]:
    """Edge -> the routing decision (overload, low confidence) of this cycle."""
    return {
        record.edge_id: record.id
        for record in cycle.plan.decisions
        if record.edge_id is not None and record.policy in (overload.NAME, low_confidence.NAME)
    }


def _edges_with_route(cycle: Cycle) -> set[int]:
    """Edges with a deployment routed elsewhere as planned (the "any analysis route" test, once
    for all edges)."""
    intents = cycle.plan.intents
    found = set()
    for edge_id, deps in cycle.state.by_edge.items():
        for d in deps:
            i = intents.get(d.id)
            params = i.params if i else d.params
            if params and Param.ANALYSIS_ROUTE in params:
                found.add(edge_id)
                break
    return found


def _routes(cycle: Cycle) -> list[RouteState]:
    """The routing table rows that change: analysis route (overload) and hard-frame route (low
    confidence)."""
    changed: list[RouteState] = []
    plan = cycle.plan
    by_edge = _routing_decisions(cycle)
    with_route = _edges_with_route(cycle)
    for edge in cycle.edges():
        old = cycle.inp.routes.get(edge.nid)
        routed_up = cycle.low_confidence.get(edge.id, bool(old and old.route_low_confidence))
        if old is None and not routed_up and edge.id not in with_route:
            continue  # local and staying local: no row to write
        analysis, helper = AnalysisRoute.LOCAL, None
        for d in cycle.running(edge.id):
            route = plan.params(d).get(Param.ANALYSIS_ROUTE)
            if route and not d.helps:
                analysis, helper = AnalysisRoute(route), plan.params(d).get(Param.ANALYSIS_EDGE)
                break
        node = cycle.state.node_of(edge)
        new = RouteState(
            nid=edge.nid,
            edge_id=edge.id,
            analysis=analysis,
            helper_nid=helper,
            route_low_confidence=routed_up,
            low_confidence_share=node.low_confidence_share if node else None,
            frames_sent_up_share=node.frames_sent_up_share if node else None,
            decision_id=by_edge.get(edge.id, old.decision_id if old else None),
        )
        if old is None:
            if new.key() != (AnalysisRoute.LOCAL, None, False):
                changed.append(new)
            continue
        moved = new.key() != old.key()
        # Shares are reported for routed edges; refresh them when they move noticeably.
        drift = new.route_low_confidence and (
            abs((new.low_confidence_share or 0) - (old.low_confidence_share or 0)) > 0.01
            or abs((new.frames_sent_up_share or 0) - (old.frames_sent_up_share or 0)) > 0.01
        )
        if moved or drift:
            changed.append(new)
    return changed


def decide(inp: CycleInput, new_id: Callable[[], str] | None = None) -> CycleResult:
    cycle = Cycle(inp, new_id)
    recovery.apply(cycle)
    version.progress(cycle, _deps_by_filename(cycle))
    cycle.governing = version.governing(cycle)
    variants.apply(cycle)
    overload.apply(cycle)
    focus.apply(cycle)
    low_confidence.apply(cycle)
    routes = _routes(cycle)
    ops = cycle.plan.operations()
    return CycleResult(
        operations=ops,
        decisions=cycle.plan.decisions,
        memory=cycle.memory_out,
        rollouts=[r for r in inp.rollouts if r.dirty],
        routes=routes,
        next_wakeup=cycle.next_wakeup,
        stats={
            "edges": len(inp.state.edges),
            "scope": None if inp.scope is None else len(inp.scope),
            "operations": len(ops),
            "decisions": len(cycle.plan.decisions),
        },
    )
