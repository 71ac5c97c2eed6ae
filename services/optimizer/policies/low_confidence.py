"""Policy 5, low confidence: when the share of an edge's results below the confidence threshold
(the VMS's smoothed ``low_confidence_share``) stays at or above ``share_level`` for a window, its
hard frames go to the analysis server (its YOLO worker reads GET /routing/{nid}); back when the
share stays below ``clear_level``. Routing only: no deployment changes."""

from __future__ import annotations

from services.optimizer.engine.context import Cycle
from shared.contracts.decisions import Action, Policy

NAME = Policy.LOW_CONFIDENCE


def apply(cycle: Cycle) -> None:
    cfg = cycle.config.low_confidence
    plan = cycle.plan
    for edge in cycle.edges():
        route = cycle.inp.routes.get(edge.nid)
        routed = bool(route and route.route_low_confidence)
        if not cfg.enabled:
            cycle.low_confidence[edge.id] = False
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
        if share is not None and share >= cfg.share_level and not routed:
            mem.pop("below_since", None)
            held = cycle.since(mem, "above_since")
            if held >= cfg.window_s:
                plan.decide(
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
                    acts_on_setup=False,
                )
                routed, mem = True, {}
        elif routed and (share is None or share < cfg.clear_level):
            mem.pop("above_since", None)
            held = cycle.since(mem, "below_since")
            if held >= cfg.window_s:
                plan.decide(
                    NAME,
                    Action.ROUTE_LOCAL,
                    f"low-confidence share {'unknown' if share is None else f'{share:.0%}'} "
                    f"< {cfg.clear_level:.0%} for {held:.0f} s: frames stay on the edge",
                    edge=edge,
                    inputs=cycle.inputs(edge, clear_level=cfg.clear_level, window_s=cfg.window_s),
                    acts_on_setup=False,
                )
                routed, mem = False, {}
        else:
            mem = {}
        cycle.remember(NAME, edge.id, mem or None)
        cycle.low_confidence[edge.id] = routed
