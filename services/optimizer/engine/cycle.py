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

from edge_common.vocabulary import DesiredState, Param
from services.optimizer.model.context import Cycle, CycleInput, RolloutState, RouteState
from services.optimizer.model.plan import DecisionRecord, Planned
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

    def carry_into(
        self,
        memory: dict[tuple[str, int], dict[str, Any]],
        routes: dict[str, RouteState],
    ) -> None:
        """What the next cycle starts from, kept in memory (as the store keeps it in the
        database): the policies' memory (None forgets), the changed routes, rollouts saved."""
        for key, data in self.memory.items():
            if data is None:
                memory.pop(key, None)
            else:
                memory[key] = data
        for r in self.rollouts:
            r.dirty = False
        for route in self.routes:
            routes[route.nid] = route


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
    plan, running = cycle.plan, DesiredState.RUNNING
    found = set()
    # A deployment has the route as planned only if it had params or the plan gave it some.
    for d in [*cycle.with_params(), *(i.deployment for i in plan.intents.values())]:
        if d.desired != running or cycle.state.deployments.get(d.id) is not d:
            continue
        params = plan.params(d)
        if params and Param.ANALYSIS_ROUTE in params:
            found.add(d.edge_id)
    return found


def _routes(cycle: Cycle) -> list[RouteState]:
    """The routing table rows that change: analysis route (overload) and hard-frame route (low
    confidence)."""
    changed: list[RouteState] = []
    plan = cycle.plan
    by_edge = _routing_decisions(cycle)
    with_route = _edges_with_route(cycle)
    by_nid = cycle.state.edges_by_nid
    for edge in cycle.candidates(
        lambda: [
            {e.id for nid in cycle.inp.routes if (e := by_nid.get(nid)) is not None},
            {edge_id for edge_id, up in cycle.low_confidence.items() if up},
            with_route,
        ]
    ):
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
    version.progress(cycle)
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
