"""Policy 4, overload: an edge whose smoothed cpu or memory stays above the thresholds for a window,
or that is degraded, has its analysis taken over by the nearest edge of its cluster that supports
analysis and has headroom (a grid search, not a scan of every pair), else by the analysis server.
Handed back once the edge stays below the thresholds for ``recover_window_s``.

On the wire (edge_common.vocabulary's ``Param``): the helper gets a deployment of the same AI with
params analysis_for (the source nid) and source_edge_id (allow_multiple), and the source
deployment's params get analysis_route ``edge`` with analysis_edge (the helper nid), or
analysis_route ``server``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import numpy as np

from edge_common.vocabulary import AnalysisRoute, Param
from services.optimizer.model.columns import IntArray
from services.optimizer.model.config import OverloadConfig
from services.optimizer.model.context import Cycle
from services.optimizer.model.state import Deployment, Edge, Node, parse_ts
from services.optimizer.policies.forecast import ForecastMemo, Trend, observe
from shared.contracts.decisions import Action, Policy
from shared.contracts.fleet import EdgeStatus, ObservedState

NAME = Policy.OVERLOAD
ROUTE_KEYS = (Param.ANALYSIS_ROUTE, Param.ANALYSIS_EDGE)


@dataclass
class EdgeLoad:
    """One edge's situation this cycle: its load, what it handed over, how long each lasted."""

    edge: Edge
    degraded: bool
    above: bool
    sources: list[Deployment]  # its analysis deployments
    helpers: list[Deployment]  # copies on other edges analysing for it
    handed_over: bool
    above_for: float = 0.0
    below_for: float = 0.0


class Helpers:
    """Finds the helper for an overloaded edge, counting what each helper already takes on."""

    def __init__(self, cycle: Cycle, cfg: OverloadConfig):
        self.cycle, self.cfg = cycle, cfg
        self._load: dict[int, int] | None = (
            None  # helper edge id -> edges it helps (built on demand)
        )

    @property
    def load(self) -> dict[int, int]:
        if self._load is None:
            counts: dict[int, set[str]] = {}
            for d in self.cycle.with_params():
                if d.helps:
                    counts.setdefault(d.edge_id, set()).add(d.helps)
            self._load = {k: len(v) for k, v in counts.items()}
        return self._load

    def fits(self, edge: Edge, key: int) -> bool:
        """Edge ``key`` can take on ``edge``'s analysis: same cluster, supports it, has room, and
        did not just fail to help it."""
        state, cfg = self.cycle.state, self.cfg
        other = state.edges.get(key)
        if other is None or other.id == edge.id or other.cluster_id != edge.cluster_id:
            return False
        if key in _avoided(self.cycle, edge):
            return False
        if not other.supports_analysis or other.id in self.cycle.inp.pins:
            return False
        if state.master_silent(other):  # its master would not apply the copy now
            return False
        if self.cycle.plan.status_of(other) != EdgeStatus.ACTIVE:
            return False
        node = state.node_of(other)
        if node is None or node.stale or node.cpu_avg is None or node.memory_avg is None:
            return False
        if node.cpu_avg >= cfg.helper_cpu_max or node.memory_avg >= cfg.helper_memory_max:
            return False
        return self.load.get(other.id, 0) < cfg.max_helped_per_edge

    def nearest(self, edge: Edge) -> tuple[Edge, float] | None:
        if edge.latitude is None or edge.longitude is None:
            return None
        grid = self.cycle.state.cluster_grid(edge.cluster_id)
        found = grid.nearest(
            edge.latitude, edge.longitude, partial(self.fits, edge), self.cfg.max_distance_km
        )
        return (self.cycle.state.edges[found[0]], found[1]) if found else None

    def take(self, helper: Edge) -> None:
        self.load[helper.id] = self.load.get(helper.id, 0) + 1


def apply(cycle: Cycle) -> None:
    cfg = cycle.config.overload
    if not cfg.enabled:
        return
    state = cycle.state
    helpers = Helpers(cycle, cfg)
    degraded_status = EdgeStatus.DEGRADED
    helped = {d.helps for d in cycle.with_params() if d.helps}
    # Edges with a deployment routed elsewhere (the "any analysis route" test, once for all edges).
    routed = {d.edge_id for d in cycle.with_params() if Param.ANALYSIS_ROUTE in d.params}
    memory = cycle.inp.memory
    for edge in cycle.candidates(lambda: _candidates(cycle, cfg, helped, routed)):
        node = state.nodes.get(edge.nid)
        degraded = cycle.plan.status_of(edge) == degraded_status
        above = bool(
            node is not None
            and not node.stale
            and (
                (node.cpu_avg or 0) > cfg.cpu_percent or (node.memory_avg or 0) > cfg.memory_percent
            )
        )
        if cfg.forecast_s and node is not None and not node.stale and not above:
            above = _forecast_above(cycle, cfg, edge, node)
        if not (
            above
            or degraded
            or edge.nid in helped
            or edge.id in routed
            or (NAME, edge.id) in memory
        ):
            continue  # the common case: a calm edge with nothing handed over and nothing remembered
        load = _situation(cycle, edge, degraded=degraded, above=above)
        overloaded = load.degraded or (load.above and load.above_for >= cfg.window_s)
        trouble = _helper_trouble(cycle, load) or _server_trouble(cycle, load)
        if trouble is not None:
            _fall_back(cycle, cfg, load, trouble)
        elif overloaded and not load.handed_over and load.sources:
            _hand_over(cycle, cfg, helpers, load)
        elif (
            load.handed_over
            and not load.degraded
            and not load.above
            and load.below_for >= cfg.recover_window_s
        ):
            _hand_back(cycle, cfg, load)


def _candidates(
    cycle: Cycle, cfg: OverloadConfig, helped: set[str], routed: set[int]
) -> list[Iterable[int]]:
    """Edges above a threshold, warm enough for their trend to be followed (or with a trend to
    forget), degraded, helped, routed elsewhere, or remembered."""
    state = cycle.state
    cols = state.columns
    e = cols.edges
    live = e["node"] & ~e["stale"]
    cpu, memory = e["cpu"], e["memory"]
    hot = (cpu > cfg.cpu_percent) | (memory > cfg.memory_percent)
    found: list[Iterable[int]] = [cols.edge_ids(hot & live), cols.edge_ids(e["degraded"])]
    by_nid = state.edges_by_nid
    if cfg.forecast_s:
        watch, trends = cfg.forecast_watch, cycle.inp.trends
        warm = (cpu >= cfg.cpu_percent * watch) | (memory >= cfg.memory_percent * watch)
        memo: ForecastMemo | None = cycle.inp.forecast_memo
        if memo is not None and memo.ready(cols, _memo_key(cfg, trends), trends):
            # Only edges whose node was written since their trends took it in (and that are
            # warm, or have trends to forget), those whose forecast crossed, and the trends not
            # looked at since the memo started.
            n = e.size
            moved = memo.revision[:n] != e["revision"]
            follow = (moved & (warm | memo.has_trend[:n])) | memo.crossing[:n]
            found.append({x.id for nid in memo.unseen if (x := by_nid.get(nid))})
        else:
            follow = warm
            found.append({x.id for key in trends if (x := by_nid.get(key.rpartition(":")[0]))})
        follow = follow & live & e["alive"]
        # The calm ones without a trend yet (every warm edge in a cold cycle) start theirs here in
        # one pass; the per-edge code follows the others.
        started = _start_trends(cycle, cfg, np.flatnonzero(follow & ~hot))
        follow[started] = False
        found.append(cols.edge_ids(follow))
    found.append({x.id for nid in helped if (x := by_nid.get(nid)) is not None})
    found += [routed, cycle.remembered(NAME)]
    return found


def _start_trends(cycle: Cycle, cfg: OverloadConfig, rows: IntArray) -> IntArray:
    """What :func:`_forecast_above` does for a calm edge whose node has no trend yet, for these
    rows of the mirror's columns at once (less the edges no policy looks at: pinned, master
    silent): each warm value starts its trend with its first sample, which forecasts nothing yet
    (and the value itself is not above), so none of them crosses. The rows done are returned;
    an edge with a trend already, or no node object, is left to the per-edge code."""
    state, trends, pins = cycle.state, cycle.inp.trends, cycle.inp.pins
    cols = state.columns
    edges, nodes = state.edges, state.nodes
    cpu_watch = cfg.cpu_percent * cfg.forecast_watch
    memory_watch = cfg.memory_percent * cfg.forecast_watch
    done: list[int] = []
    done_nids: list[str] = []
    with_trend: list[bool] = []
    look = bool(trends)  # a cold start has none to look up
    silent = state.silent_clusters  # as state.master_silent, inline: this runs per warm edge
    ids = cols.edges["id"][rows].tolist()
    for row, edge in zip(rows.tolist(), map(edges.get, ids), strict=True):
        if edge is None or edge.id in pins or (silent and edge.cluster_id in silent):
            continue
        nid = edge.nid
        node = nodes.get(nid)
        if node is None:
            continue
        cpu_key, memory_key = nid + ":cpu", nid + ":memory"
        if look and (cpu_key in trends or memory_key in trends):
            continue
        at, started = node.last_seen, False
        if at is not None:
            cpu, memory = node.cpu_avg, node.memory_avg
            if cpu is not None and cpu >= cpu_watch:
                trends[cpu_key] = Trend(cpu, 0.0, at)
                started = True
            if memory is not None and memory >= memory_watch:
                trends[memory_key] = Trend(memory, 0.0, at)
                started = True
        done.append(row)
        done_nids.append(nid)
        with_trend.append(started)
    out = np.array(done, np.int64)
    memo: ForecastMemo | None = cycle.inp.forecast_memo
    if memo is not None and memo.columns is cols and memo.key == _memo_key(cfg, trends):
        memo.note_rows(out, done_nids, np.array(with_trend, np.bool_))
    return out


def _memo_key(cfg: OverloadConfig, trends: dict[str, Any]) -> tuple[object, ...]:
    """What a forecast depends on besides the node: the settings, and the trends themselves."""
    return (
        cfg.cpu_percent,
        cfg.memory_percent,
        cfg.forecast_s,
        cfg.forecast_watch,
        cfg.forecast_min_samples,
        cfg.forecast_alpha,
        cfg.forecast_beta,
        id(trends),
    )


def _forecast_above(cycle: Cycle, cfg: OverloadConfig, edge: Edge, node: Node) -> bool:
    """The load forecast ``forecast_s`` ahead crosses a threshold (trends are followed only for
    edges that are getting warm: a calm fleet costs one comparison per edge)."""
    trends = cycle.inp.trends
    crossing = False
    for kind, value, limit in (
        ("cpu", node.cpu_avg, cfg.cpu_percent),
        ("memory", node.memory_avg, cfg.memory_percent),
    ):
        key = f"{node.nid}:{kind}"
        if value is None or (value < limit * cfg.forecast_watch and key not in trends):
            continue
        if value < limit * cfg.forecast_watch:
            del trends[key]  # cooled down: forget the trend
            continue
        trend = observe(trends, key, value, node.last_seen, cfg.forecast_alpha, cfg.forecast_beta)
        ahead = trend.forecast(cfg.forecast_s, cfg.forecast_min_samples) if trend else None
        crossing = crossing or (ahead is not None and ahead > limit)
    memo: ForecastMemo | None = cycle.inp.forecast_memo
    cols = cycle.state.columns
    if memo is not None and memo.columns is cols and memo.key == _memo_key(cfg, trends):
        row = cols.edges.rows.get(edge.id)
        if row is not None:
            nid = node.nid
            memo.note(row, nid, crossing, f"{nid}:cpu" in trends or f"{nid}:memory" in trends)
    return crossing


def forecasts(cycle: Cycle, cfg: OverloadConfig, nid: str) -> dict[str, Any]:
    """What the decision log shows: the forecast beside the smoothed value."""
    out: dict[str, Any] = {"forecast_s": cfg.forecast_s}
    for kind in ("cpu", "memory"):
        trend = cycle.inp.trends.get(f"{nid}:{kind}")
        if trend is not None:
            ahead = trend.forecast(cfg.forecast_s, cfg.forecast_min_samples)
            out[f"{kind}_forecast"] = None if ahead is None else round(ahead, 2)
            out[f"{kind}_trend_per_s"] = round(trend.slope, 4)
    return out


def _situation(cycle: Cycle, edge: Edge, *, degraded: bool, above: bool) -> EdgeLoad:
    """The edge's hand-over state and how long its load has been above (or below) the thresholds,
    the timers kept in the policy's memory."""
    plan = cycle.plan
    sources = [d for d in cycle.running(edge.id) if cycle.is_analysis(d)]
    copies = cycle.helpers_of(edge.nid)
    route = next(
        (
            plan.params(d)[Param.ANALYSIS_ROUTE]
            for d in sources
            if plan.params(d).get(Param.ANALYSIS_ROUTE)
        ),
        None,
    )
    load = EdgeLoad(edge, degraded, above, sources, copies, handed_over=bool(route or copies))
    mem = cycle.recall(NAME, edge.id)
    if above:
        mem.pop("below_since", None)
        load.above_for = cycle.since(mem, "above_since")
    else:
        mem.pop("above_since", None)
        if load.handed_over:
            load.below_for = cycle.since(mem, "below_since")
        else:
            mem.pop("below_since", None)
    avoid = {
        k: v for k, v in (mem.get("avoid") or {}).items() if (t := parse_ts(v)) and t > cycle.now
    }
    mem.pop("avoid", None)
    if avoid:
        mem["avoid"] = avoid
    cycle.remember(NAME, edge.id, mem if (above or load.handed_over or avoid) else None)
    return load


def _hand_over(cycle: Cycle, cfg: OverloadConfig, helpers: Helpers, load: EdgeLoad) -> None:
    """The analysis of an overloaded edge to the nearest edge with room, else to the server."""
    plan, edge = cycle.plan, load.edge
    seen = cycle.inputs(
        edge,
        cpu_percent=cfg.cpu_percent,
        memory_percent=cfg.memory_percent,
        above_for_s=round(load.above_for, 1),
        window_s=cfg.window_s,
        **(forecasts(cycle, cfg, edge.nid) if cfg.forecast_s else {}),
    )
    node = cycle.state.node_of(edge)
    now_above = node is not None and (
        (node.cpu_avg or 0) > cfg.cpu_percent or (node.memory_avg or 0) > cfg.memory_percent
    )
    if load.degraded:
        why = "edge degraded"
    elif now_above:
        why = f"load above the thresholds for {load.above_for:.0f} s"
    else:
        why = f"load forecast to cross the thresholds within {cfg.forecast_s:.0f} s"
    found = helpers.nearest(edge)
    if found is None and (cycle.inp.analysis_trouble is not None or _server_avoided(cycle, edge)):
        return  # no helper and the server cannot take it: the edge keeps its own analysis
    if found is None:
        decision = plan.decide(
            NAME,
            Action.HANDOFF_TO_SERVER,
            f"{why}: no edge of the cluster with room within {cfg.max_distance_km} km; "
            "the analysis server takes over",
            edge=edge,
            inputs=seen,
        )
        for d in load.sources:
            plan.set_params(
                d, {**plan.params(d), Param.ANALYSIS_ROUTE: AnalysisRoute.SERVER}, decision
            )
        return
    other, km = found
    hnode = cycle.state.node_of(other)
    decision = plan.decide(
        NAME,
        Action.HANDOFF_TO_EDGE,
        f"{why}: analysis moves to {other.name} ({km:.2f} km away, same cluster)",
        edge=edge,
        inputs={
            **seen,
            "helper": other.name,
            "helper_nid": other.nid,
            "distance_km": round(km, 3),
            "helper_cpu_avg": hnode.cpu_avg if hnode else None,
            "helper_memory_avg": hnode.memory_avg if hnode else None,
        },
    )
    helpers.take(other)
    for d in load.sources:
        params = {Param.ANALYSIS_FOR: edge.nid, Param.SOURCE_EDGE_ID: edge.id}
        plan.create(other.id, plan.ai_id(d), params, decision, allow_multiple=True)
        plan.set_params(
            d,
            {
                **plan.params(d),
                Param.ANALYSIS_ROUTE: AnalysisRoute.EDGE,
                Param.ANALYSIS_EDGE: other.nid,
            },
            decision,
        )


def _hand_back(cycle: Cycle, cfg: OverloadConfig, load: EdgeLoad) -> None:
    """The load stayed below the thresholds long enough: the analysis back on the edge."""
    plan, edge = cycle.plan, load.edge
    seen = cycle.inputs(edge, cpu_percent=cfg.cpu_percent, memory_percent=cfg.memory_percent)
    decision = plan.decide(
        NAME,
        Action.HAND_BACK,
        f"load below the thresholds for {load.below_for:.0f} s: analysis back on the edge",
        edge=edge,
        inputs={
            **seen,
            "below_for_s": round(load.below_for, 1),
            "recover_window_s": cfg.recover_window_s,
        },
    )
    for h in load.helpers:
        plan.remove(h, decision)
    for d in load.sources:
        plan.set_params(d, _without(plan.params(d), ROUTE_KEYS), decision)
    cycle.remember(NAME, edge.id, None)


def _helper_trouble(cycle: Cycle, load: EdgeLoad) -> str | None:
    """Why the edge's helper can no longer help (failed, gone, silent), or None."""
    plan = cycle.plan
    to_edge = [
        d for d in load.sources if plan.params(d).get(Param.ANALYSIS_ROUTE) == AnalysisRoute.EDGE
    ]
    if not to_edge:
        return None
    if not load.helpers:
        helper_nid = plan.params(to_edge[0]).get(Param.ANALYSIS_EDGE)
        return f"the helper copy on {helper_nid or 'the helper edge'} is gone"
    for h in load.helpers:
        helper = cycle.state.edges.get(h.edge_id)
        name = helper.name if helper else f"edge {h.edge_id}"
        if h.observed == ObservedState.FAILED and h.observed_generation >= h.generation:
            return f"the helper copy on {name} failed ({h.observed_reason or 'no reason given'})"
        node = cycle.state.node_of(helper) if helper else None
        if helper is None or (node is not None and node.stale):
            return f"the helper edge {name} stopped reporting"
        # The helper posts its summaries under the source's nid: the source's last one says
        # whether it can read the source's camera.
        source = cycle.state.node_of(load.edge)
        if (
            source is not None
            and not source.stale
            and source.source_unavailable
            and source.analysed_by == helper.nid
        ):
            return (
                f"the helper {name} cannot read {load.edge.name}'s camera "
                f"({source.source_unavailable})"
            )
    return None


def _server_trouble(cycle: Cycle, load: EdgeLoad) -> str | None:
    """Why the analysis server can no longer take the edge's frames (down, throttling), or None."""
    if not any(
        cycle.plan.params(d).get(Param.ANALYSIS_ROUTE) == AnalysisRoute.SERVER for d in load.sources
    ):
        return None
    if cycle.inp.analysis_trouble is not None:
        return cycle.inp.analysis_trouble
    node = cycle.state.node_of(load.edge)
    if node is not None and not node.stale and node.analysis_unavailable:
        return (
            f"the analysis service refuses {load.edge.name}'s frames ({node.analysis_unavailable})"
        )
    return None


def _fall_back(cycle: Cycle, cfg: OverloadConfig, load: EdgeLoad, trouble: str) -> None:
    """The helper cannot help: its copies go and the edge analyses its camera itself again (a new
    hand-over may follow on a later cycle if the load stays high)."""
    plan, edge = cycle.plan, load.edge
    decision = plan.decide(
        NAME,
        Action.HAND_BACK,
        f"{trouble}: analysis back on the edge",
        edge=edge,
        inputs=cycle.inputs(
            edge, cpu_percent=cfg.cpu_percent, memory_percent=cfg.memory_percent, fallback=True
        ),
    )
    for h in load.helpers:
        plan.remove(h, decision)
    for d in load.sources:
        plan.set_params(d, _without(plan.params(d), ROUTE_KEYS), decision)
    # The failed helper is not asked again for a while (no hand-over / fail loop).
    until = (cycle.now + timedelta(seconds=max(cfg.recover_window_s, 60.0))).isoformat()
    mem = cycle.recall(NAME, edge.id)
    mem["avoid"] = {**mem.get("avoid", {}), **{str(h.edge_id): until for h in load.helpers}}
    if not load.helpers and cycle.inp.analysis_trouble is None:
        # The server refused this edge's own frames (its health check looks fine): not handed
        # to it again for a while either. A service seen down is retried once it recovers.
        mem["avoid"]["server"] = until
    cycle.remember(NAME, edge.id, mem)


def _avoided(cycle: Cycle, edge: Edge) -> set[int]:
    """Helpers that failed this edge recently."""
    avoid = cycle.recall(NAME, edge.id).get("avoid") or {}
    return {
        int(k)
        for k, until in avoid.items()
        if k.isdigit() and (ts := parse_ts(until)) and ts > cycle.now
    }


def _server_avoided(cycle: Cycle, edge: Edge) -> bool:
    """The analysis server refused this edge's frames recently."""
    until = (cycle.recall(NAME, edge.id).get("avoid") or {}).get("server")
    return bool((ts := parse_ts(until)) and ts > cycle.now)


def _without(params: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in keys}
