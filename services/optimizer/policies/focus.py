"""Policy 6, event focus: a detection of a configured class on one edge raises the edges within
``radius_km`` to focus mode (``params`` merged into their analysis AIs' params, with
``focus_until``) for ``ttl_s``; when the TTL passes they go back. The expiry wakes the scheduler."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from edge_common.vocabulary import Param
from services.optimizer.model.context import Cycle
from services.optimizer.model.state import parse_ts
from shared.contracts.decisions import Action, Policy

NAME = Policy.FOCUS


def _wanted(cycle: Cycle) -> dict[int, tuple[datetime, str]]:
    """edge_id -> (focus until, the nid whose event raised it)."""
    cfg = cycle.config.focus
    state = cycle.state
    wanted: dict[int, tuple[datetime, str]] = {}
    for req in cycle.inp.focus:
        if req.expires_at <= cycle.now:
            continue
        source = state.edges_by_nid.get(req.nid)
        if source is None or source.latitude is None or source.longitude is None:
            continue
        cycle.wake_at(req.expires_at)
        for key, _km in state.grid.within(source.latitude, source.longitude, cfg.radius_km):
            if key == source.id:
                continue
            cur = wanted.get(key)
            if cur is None or req.expires_at > cur[0]:
                wanted[key] = (req.expires_at, req.nid)
    return wanted


def _fresh_enough(params: dict[str, Any], until: datetime, ttl_s: float) -> bool:
    """A focus storm (the same class seen every second) extends a running focus at most every half
    TTL: one decision, not one a second, and the edge keeps its focus all along."""
    current = parse_ts(params.get(Param.FOCUS_UNTIL))
    return current is not None and current >= until - timedelta(seconds=ttl_s / 2)


def apply(cycle: Cycle) -> None:
    cfg = cycle.config.focus
    state, plan = cycle.state, cycle.plan
    wanted = _wanted(cycle) if cfg.enabled else {}
    # Edges to look at: those raised now, and (whole-fleet cycles) any still in focus from before.
    edge_ids = set(wanted)
    if cycle.full:
        edge_ids |= {d.edge_id for d in cycle.with_params() if Param.FOCUS_UNTIL in d.params}
    else:
        scope = {e.id for e in cycle.edges()}
        edge_ids |= {
            i for i in scope if any(Param.FOCUS_UNTIL in d.params for d in state.by_edge.get(i, ()))
        }
    focus_keys = set(cfg.params) | {Param.FOCUS_UNTIL, Param.FOCUS_SOURCE}
    for edge_id in sorted(edge_ids):
        edge = state.edges.get(edge_id)
        if edge is None or edge_id in cycle.inp.pins:
            continue
        for d in cycle.running(edge_id):
            if not cycle.is_analysis(d):
                continue
            params = plan.params(d)
            if edge_id in wanted:
                until, source = wanted[edge_id]
                new = {
                    **params,
                    **cfg.params,
                    Param.FOCUS_UNTIL: until.isoformat(),
                    Param.FOCUS_SOURCE: source,
                }
                if new == params or _fresh_enough(params, until, cfg.ttl_s):
                    continue
                action = Action.FOCUS_EXTEND if Param.FOCUS_UNTIL in params else Action.FOCUS_ON
                decision = plan.decide(
                    NAME,
                    action,
                    f"detection on {source}, within {cfg.radius_km} km: "
                    f"focus until {until.isoformat()}",
                    edge=edge,
                    deployment=d,
                    inputs=cycle.inputs(
                        edge,
                        source_nid=source,
                        radius_km=cfg.radius_km,
                        focus_until=until.isoformat(),
                        classes=cfg.classes,
                    ),
                )
                plan.set_params(d, new, decision)
            elif Param.FOCUS_UNTIL in params:
                new = {k: v for k, v in params.items() if k not in focus_keys}
                decision = plan.decide(
                    NAME,
                    Action.FOCUS_OFF,
                    f"focus from {params.get(Param.FOCUS_SOURCE, 'an event')} ended "
                    f"({params[Param.FOCUS_UNTIL]})",
                    edge=edge,
                    deployment=d,
                    inputs=cycle.inputs(edge, focus_until=params[Param.FOCUS_UNTIL]),
                )
                plan.set_params(d, new, decision)
