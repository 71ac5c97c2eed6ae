"""Policy 5, low confidence: when the share of an edge's results below the confidence threshold
(the VMS's smoothed ``low_confidence_share``) stays at or above ``share_level`` for a window, its
hard frames go to the analysis server; back when the share stays below ``clear_level``.

The route reaches the edge as live params of its analysis deployments (``route_low_confidence``,
and ``analysis_url`` when the optimizer knows the analysis service): the master hands them to the
edge agent, which rewrites the running worker's live file (no restart). GET /routing/{nid} shows
the same route. A deployment that lacks the params of its edge's route (a replaced one) gets them
again, with a decision saying so."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from edge_common.vocabulary import Param
from services.optimizer.model.config import LowConfidenceConfig
from services.optimizer.model.context import Cycle
from services.optimizer.model.plan import DecisionRecord
from services.optimizer.model.state import Edge, parse_ts
from shared.contracts.decisions import Action, Policy

NAME = Policy.LOW_CONFIDENCE
ROUTE_KEYS = (Param.ROUTE_LOW_CONFIDENCE, Param.ANALYSIS_URL)


def route_params(cycle: Cycle, routed: bool) -> dict[str, Any]:
    """The live params of a routed edge's analysis deployments (none when local)."""
    if not routed:
        return {}
    url = cycle.inp.analysis_url
    return {Param.ROUTE_LOW_CONFIDENCE: True, **({Param.ANALYSIS_URL: url} if url else {})}


def _sync(
    cycle: Cycle,
    edge: Edge,
    routed: bool,
    decision: DecisionRecord | None,
    why: str = "routing re-applied to a deployment that lacked it",
) -> None:
    """Every analysis deployment of the edge carries the route's params, attributed to ``decision``
    (or to a decision saying ``why`` when only the deployments are out of line)."""
    plan, wanted = cycle.plan, route_params(cycle, routed)
    for d in cycle.running(edge.id):
        if not cycle.is_analysis(d):
            continue
        params = plan.params(d)
        new = {**{k: v for k, v in params.items() if k not in ROUTE_KEYS}, **wanted}
        if new == params:
            continue
        if decision is None:
            decision = plan.decide(
                NAME,
                Action.ROUTE_UP if routed else Action.ROUTE_LOCAL,
                f"hard frames {'go up' if routed else 'stay on the edge'}: {why}",
                edge=edge,
                deployment=d,
                inputs=cycle.inputs(edge),
            )
        plan.set_params(d, new, decision)


def _candidates(cycle: Cycle, cfg: LowConfidenceConfig) -> list[Iterable[int]]:
    """Edges routed up (the routing table), remembered, or whose share reaches the level; only
    the routed ones when the policy is disabled (the others stay local)."""
    by_nid = cycle.state.edges_by_nid
    routed = {
        edge.id
        for nid, route in cycle.inp.routes.items()
        if route.route_low_confidence and (edge := by_nid.get(nid)) is not None
    }
    if not cfg.enabled:
        return [routed]
    cols = cycle.state.columns
    e = cols.edges
    high = e["node"] & ~e["stale"] & (e["low_confidence"] >= cfg.share_level)
    return [routed, cols.edge_ids(high), cycle.remembered(NAME)]


def apply(cycle: Cycle) -> None:
    cfg = cycle.config.low_confidence
    plan = cycle.plan
    for edge in cycle.candidates(lambda: _candidates(cycle, cfg)):
        route = cycle.inp.routes.get(edge.nid)
        routed = bool(route and route.route_low_confidence)
        if not cfg.enabled:
            cycle.low_confidence[edge.id] = False
            if routed:
                _sync(cycle, edge, False, None, "the low-confidence policy is disabled")
            continue
        node = cycle.state.node_of(edge)
        share = node.low_confidence_share if node and not node.stale else None
        if (
            not routed
            and (share is None or share < cfg.share_level)
            and (NAME, edge.id) not in cycle.inp.memory
        ):
            continue  # calm and local, nothing remembered
        mem = cycle.recall(NAME, edge.id)
        decision: DecisionRecord | None = None
        trouble = cycle.inp.analysis_trouble
        refused = node.analysis_unavailable if node and not node.stale and routed else None
        hold_until = parse_ts(mem.get("refused_until"))
        if refused is not None:
            # The edge's own uploads are refused (what the service's health check may not see:
            # throttling in front of it, a route only this edge takes): back to local analysis.
            decision = plan.decide(
                NAME,
                Action.ROUTE_LOCAL,
                f"the analysis service refuses {edge.name}'s frames ({refused}): frames stay on "
                f"the edge (local analysis) for {cfg.refused_hold_s:.0f} s at least",
                edge=edge,
                inputs=cycle.inputs(edge, fallback=True, analysis_unavailable=refused),
            )
            routed = False
            until = cycle.now + timedelta(seconds=cfg.refused_hold_s)
            mem = {"refused_until": until.isoformat()}
            cycle.wake_at(until)
        elif hold_until is not None and hold_until > cycle.now:
            pass  # refused a moment ago: not routed up again yet
        elif trouble is not None:
            # Nothing goes up while the service cannot take it: a routed edge falls back.
            if routed:
                decision = plan.decide(
                    NAME,
                    Action.ROUTE_LOCAL,
                    f"{trouble}: frames stay on the edge (local analysis) until it recovers",
                    edge=edge,
                    inputs=cycle.inputs(edge, fallback=True, analysis_trouble=trouble),
                )
                routed = False
            mem = {}
        elif share is not None and share >= cfg.share_level and not routed:
            mem.pop("below_since", None)
            held = cycle.since(mem, "above_since")
            if held >= cfg.window_s:
                decision = plan.decide(
                    NAME,
                    Action.ROUTE_UP,
                    f"low-confidence share {share:.0%} >= {cfg.share_level:.0%} for {held:.0f} s: "
                    "hard frames go to the analysis server",
                    edge=edge,
                    inputs=cycle.inputs(
                        edge,
                        share_level=cfg.share_level,
                        window_s=cfg.window_s,
                        confidence_threshold=cfg.confidence_threshold,
                    ),
                )
                routed, mem = True, {}
        elif routed and (share is None or share < cfg.clear_level):
            mem.pop("above_since", None)
            held = cycle.since(mem, "below_since")
            if held >= cfg.window_s:
                decision = plan.decide(
                    NAME,
                    Action.ROUTE_LOCAL,
                    f"low-confidence share {'unknown' if share is None else f'{share:.0%}'} "
                    f"< {cfg.clear_level:.0%} for {held:.0f} s: frames stay on the edge",
                    edge=edge,
                    inputs=cycle.inputs(edge, clear_level=cfg.clear_level, window_s=cfg.window_s),
                )
                routed, mem = False, {}
        else:
            mem = {}
        cycle.remember(NAME, edge.id, mem or None)
        cycle.low_confidence[edge.id] = routed
        _sync(cycle, edge, routed, decision)
