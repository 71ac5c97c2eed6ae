"""Policy 4, overload: an edge whose smoothed cpu or memory stays above the thresholds for a window,
or that is degraded, has its analysis taken over by the nearest edge of its cluster that supports
analysis and has headroom (a grid search, not a scan of every pair), else by the analysis server.
Handed back once the edge stays below the thresholds for ``recover_window_s``.

On the wire: the helper gets a deployment of the same AI with params
``{"analysis_for": nid, "source_edge_id": id}`` (allow_multiple), and the source deployment's
params get ``{"analysis_route": "edge", "analysis_edge": helper nid}`` or ``{"analysis_route": "server"}``."""
from __future__ import annotations

from typing import Any

from services.optimizer.engine.context import Cycle
from services.optimizer.engine.state import Edge
from shared.contracts.decisions import Action, Policy

NAME = Policy.OVERLOAD
ROUTE_KEYS = ("analysis_route", "analysis_edge")


def _load(cycle: Cycle) -> dict[int, int]:
    """Overloaded edges each helper already takes on."""
    counts: dict[int, set[str]] = {}
    for d in cycle.state.deployments.values():
        if d.desired == "running" and d.helps:
            counts.setdefault(d.edge_id, set()).add(d.helps)
    return {k: len(v) for k, v in counts.items()}


def apply(cycle: Cycle) -> None:
    cfg = cycle.config.overload
    if not cfg.enabled:
        return
    state, plan = cycle.state, cycle.plan
    load: dict[int, int] | None = None

    def fit_helper(edge: Edge, key: int) -> bool:
        other = state.edges.get(key)
        if other is None or other.id == edge.id or other.cluster_id != edge.cluster_id or not other.supports_analysis:
            return False
        if other.id in cycle.inp.pins or plan.status_of(other) != "active":
            return False
        node = state.node_of(other)
        if node is None or node.stale or node.cpu_avg is None or node.memory_avg is None:
            return False
        if node.cpu_avg >= cfg.helper_cpu_max or node.memory_avg >= cfg.helper_memory_max:
            return False
        return (load or {}).get(other.id, 0) < cfg.max_helped_per_edge

    helped = {d.helps for d in state.deployments.values() if d.desired == "running" and d.helps}
    # Edges with a deployment routed elsewhere (the "any analysis_route" test, once for all edges).
    routed = {edge_id for edge_id, deps in state.by_edge.items() if any(d.params and "analysis_route" in d.params for d in deps)}
    memory = cycle.inp.memory
    for edge in cycle.edges():
        node = state.nodes.get(edge.nid)
        degraded = plan.status_of(edge) == "degraded"
        above = bool(
            node is not None and not node.stale
            and ((node.cpu_avg or 0) > cfg.cpu_percent or (node.memory_avg or 0) > cfg.memory_percent)
        )
        if not above and not degraded and edge.nid not in helped and (NAME, edge.id) not in memory and edge.id not in routed:
            continue  # the common case: a calm edge with nothing handed over and nothing remembered
        sources = [d for d in cycle.running(edge.id) if cycle.is_analysis(d)]
        mem = cycle.recall(NAME, edge.id)
        route = next((plan.params(d).get("analysis_route") for d in sources if plan.params(d).get("analysis_route")), None)
        helpers = cycle.helpers_of(edge.nid)
        handed_over = bool(route or helpers)
        if above:
            mem.pop("below_since", None)
            above_for = cycle.since(mem, "above_since")
            below_for = 0.0
        else:
            mem.pop("above_since", None)
            below_for = cycle.since(mem, "below_since") if handed_over else 0.0
            above_for = 0.0
            if not handed_over:
                mem.pop("below_since", None)
        cycle.remember(NAME, edge.id, mem if (above or handed_over) else None)
        overloaded = degraded or (above and above_for >= cfg.window_s)
        if overloaded and not handed_over and sources:
            seen = cycle.inputs(edge, cpu_percent=cfg.cpu_percent, memory_percent=cfg.memory_percent,
                                above_for_s=round(above_for, 1), window_s=cfg.window_s)
            if load is None:
                load = _load(cycle)
            helper = None
            if edge.latitude is not None and edge.longitude is not None:
                found = state.grid.nearest(edge.latitude, edge.longitude, lambda k: fit_helper(edge, k), cfg.max_distance_km)
                helper = (state.edges[found[0]], found[1]) if found else None
            why = "edge degraded" if degraded else f"load above the thresholds for {above_for:.0f} s"
            if helper is not None:
                other, km = helper
                hnode = state.node_of(other)
                decision = plan.decide(
                    NAME, Action.HANDOFF_TO_EDGE, f"{why}: analysis moves to {other.name} ({km:.2f} km away, same cluster)",
                    edge=edge, inputs={**seen, "helper": other.name, "helper_nid": other.nid, "distance_km": round(km, 3),
                                       "helper_cpu_avg": hnode.cpu_avg, "helper_memory_avg": hnode.memory_avg},
                )
                load[other.id] = load.get(other.id, 0) + 1
                for d in sources:
                    params = {"analysis_for": edge.nid, "source_edge_id": edge.id}
                    plan.create(other.id, plan.ai_id(d), params, decision, allow_multiple=True)
                    plan.set_params(d, {**plan.params(d), "analysis_route": "edge", "analysis_edge": other.nid}, decision)
            else:
                decision = plan.decide(
                    NAME, Action.HANDOFF_TO_SERVER, f"{why}: no edge of the cluster with room within {cfg.max_distance_km} km; the analysis server takes over",
                    edge=edge, inputs=seen,
                )
                for d in sources:
                    plan.set_params(d, {**plan.params(d), "analysis_route": "server"}, decision)
        elif handed_over and not degraded and not above and below_for >= cfg.recover_window_s:
            seen = cycle.inputs(edge, cpu_percent=cfg.cpu_percent, memory_percent=cfg.memory_percent)
            decision = plan.decide(
                NAME, Action.HAND_BACK, f"load below the thresholds for {below_for:.0f} s: analysis back on the edge",
                edge=edge, inputs={**seen, "below_for_s": round(below_for, 1), "recover_window_s": cfg.recover_window_s},
            )
            for h in helpers:
                plan.remove(h, decision)
            for d in sources:
                plan.set_params(d, _without(plan.params(d), ROUTE_KEYS), decision)
            cycle.remember(NAME, edge.id, None)


def _without(params: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in keys}
