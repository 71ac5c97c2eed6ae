"""Everything one decision cycle reads besides the fleet (config, pins, memory, rollouts, routes,
focus events) and the helpers the policies share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from services.optimizer.model.config import PoliciesConfig
from services.optimizer.model.plan import Plan
from services.optimizer.model.state import Deployment, Edge, FleetState, parse_ts
from shared.contracts.decisions import RolloutStatus
from shared.contracts.fleet import DesiredState
from shared.contracts.routing import AnalysisRoute


@dataclass
class RolloutState:
    filename: str
    to_version: str
    to_version_key: str
    status: RolloutStatus
    wave: int
    wave_started_at: datetime
    started_at: datetime
    members: dict[int, int] = field(default_factory=dict)  # edge_id -> wave
    previous: dict[int, str] = field(
        default_factory=dict
    )  # edge_id -> version_key before the rollout
    failed: set[int] = field(default_factory=set)
    id: int | None = None
    dirty: bool = False


@dataclass
class RouteState:
    nid: str
    edge_id: int
    analysis: AnalysisRoute = AnalysisRoute.LOCAL
    helper_nid: str | None = None
    route_low_confidence: bool = False
    low_confidence_share: float | None = None
    frames_sent_up_share: float | None = None
    decision_id: str | None = None

    def key(self) -> tuple:
        return (self.analysis, self.helper_nid, self.route_low_confidence)


@dataclass
class FocusRequest:
    nid: str
    expires_at: datetime
    classes: list[str] = field(default_factory=list)


@dataclass
class CycleInput:
    state: FleetState
    config: PoliciesConfig
    now: datetime
    scope: set[int] | None = None  # edge ids an event concerns; None: the whole fleet
    pins: set[int] = field(default_factory=set)
    memory: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    rollouts: list[RolloutState] = field(default_factory=list)
    routes: dict[str, RouteState] = field(default_factory=dict)
    focus: list[FocusRequest] = field(default_factory=list)
    environment_ai_class: str = "00"
    # Where routed edges send hard frames (the analysis service's POST /analyze); None: the edge's
    # own default (its VMS's inbox, POST /analysis).
    analysis_url: str | None = None
    # Why the analysis service cannot take frames now ("the analysis service is down (...)",
    # "... throttles (429)"), from the runner's probe; None: it can (or none is configured).
    # Edges routed to it fall back to local analysis, each by a logged decision.
    analysis_trouble: str | None = None
    # The overload policy's load trends ("<nid>:cpu" -> Trend), kept by the runner between cycles.
    trends: dict[str, Any] = field(default_factory=dict)
    # What the overload policy last made of the trends (policies.forecast.ForecastMemo), kept by
    # the runner beside them; None: every warm edge's trends are followed each cycle.
    forecast_memo: Any = None
    # Whole-fleet cycles run each policy's per-edge code only on its candidates, found over the
    # mirror's columns (model.columns); False: on every edge, the reference the tests compare with.
    filtered: bool = True


class Cycle:
    """One run of the policies over a CycleInput, collecting a Plan and the state changes to
    persist."""

    def __init__(self, inp: CycleInput, new_id=None):
        self.inp = inp
        self.state = inp.state
        self.config = inp.config
        self.now = inp.now
        self.plan = Plan(inp.state, inp.now, new_id)
        self.memory_out: dict[tuple[str, int], dict[str, Any] | None] = {}  # None: forget
        self.low_confidence: dict[int, bool] = {}  # edge_id -> routed up after this cycle
        self.next_wakeup: datetime | None = None
        self._helpers_of: dict[str, list[Deployment]] | None = None
        self._edges: list[Edge] | None = None
        self._with_params: list[Deployment] | None = None
        self._remembered: dict[str, set[int]] | None = None
        self.governing: dict[
            str, RolloutState
        ] = {}  # filename -> the rollout that decides its version

    # -- scope ----------------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return self.inp.scope is None

    def edges(self) -> list[Edge]:
        """Edges this cycle decides for: the scope (or the fleet), less the pinned ones and those
        whose master is silent (a decision there would wait unapplied and pile up)."""
        if self._edges is None:  # the same for every policy of the cycle: built once
            pins = self.inp.pins
            state = self.state
            if self.inp.scope is None:
                candidates = sorted(state.edges.values(), key=_edge_id)
            else:
                candidates = [state.edges[i] for i in sorted(self.inp.scope) if i in state.edges]
            self._edges = [e for e in candidates if e.id not in pins and not state.master_silent(e)]
        return self._edges

    @property
    def filtered(self) -> bool:
        """Policies look only at their candidates (a whole-fleet cycle over the columns)."""
        return self.inp.scope is None and self.inp.filtered

    def candidates(self, find: Callable[[], Iterable[Iterable[int]]]) -> list[Edge]:
        """The edges of :meth:`edges` one policy must look at, in the same order: those ``find``
        gives (id collections whose union is a superset of the edges the policy would decide or
        remember something for, found over the mirror's columns) and those an earlier policy of
        this cycle planned something for. Every edge of :meth:`edges` in a scoped cycle (a few
        edges) or when the input is not ``filtered``."""
        if not self.filtered:
            return self.edges()
        ids: set[int] = set(self.plan.touched)
        for found in find():
            ids.update(found.tolist() if isinstance(found, np.ndarray) else found)
        state, pins = self.state, self.inp.pins
        out = []
        for i in sorted(ids):
            edge = state.edges.get(i)
            if edge is not None and i not in pins and not state.master_silent(edge):
                out.append(edge)
        return out

    def remembered(self, policy: str) -> set[int]:
        """Edges the policy remembers something for (from the cycle's input)."""
        if self._remembered is None:
            self._remembered = {}
            for name, edge_id in self.inp.memory:
                self._remembered.setdefault(name, set()).add(edge_id)
        return self._remembered.get(policy, set())

    def with_params(self) -> list[Deployment]:
        """Deployments desired running that carry params (routes, helper copies, focus), by id:
        the mirror's index of them, or (not ``filtered``) a scan of every deployment."""
        if self._with_params is None:
            state = self.state
            if self.inp.filtered:
                deps = state.deployments
                found = (deps.get(i) for i in sorted(state.columns.with_params))
                self._with_params = [d for d in found if d is not None]
            else:
                running = DesiredState.RUNNING
                self._with_params = sorted(
                    (d for d in state.deployments.values() if d.desired == running and d.params),
                    key=_dep_id,
                )
        return self._with_params

    def running(self, edge_id: int) -> list[Deployment]:
        deps = self.state.by_edge.get(edge_id, [])
        if not self.plan.removed_ids:
            return deps
        return [d for d in deps if d.id not in self.plan.removed_ids]

    def is_analysis(self, d: Deployment) -> bool:
        """An analysis AI (not the environment AI, not a helper copy): what overload and focus
        move."""
        if d.helps:
            return False
        pkg = self.state.packages.get(self.plan.ai_id(d))
        return pkg is not None and pkg.ai_class != self.inp.environment_ai_class

    def helpers_of(self, nid: str) -> list[Deployment]:
        if self._helpers_of is None:
            self._helpers_of = {}
            for d in self.with_params():
                if d.helps:
                    self._helpers_of.setdefault(d.helps, []).append(d)
        return [d for d in self._helpers_of.get(nid, ()) if not self.plan.removed(d)]

    # -- memory ---------------------------------------------------------------------------------

    def recall(self, policy: str, edge_id: int) -> dict[str, Any]:
        key = (policy, edge_id)
        if key in self.memory_out:
            return dict(self.memory_out[key] or {})
        return dict(self.inp.memory.get(key) or {})

    def remember(self, policy: str, edge_id: int, data: dict[str, Any] | None) -> None:
        """Store only real changes: most edges have nothing to remember most of the time."""
        key = (policy, edge_id)
        old = self.inp.memory.get(key)
        if (data or None) == (old or None):
            self.memory_out.pop(key, None)
        else:
            self.memory_out[key] = data or None

    def since(self, data: dict[str, Any], key: str) -> float:
        """Seconds since the timestamp stored under key, setting it to now when absent."""
        ts = parse_ts(data.get(key))
        if ts is None:
            data[key] = self.now.isoformat()
            return 0.0
        return (self.now - ts).total_seconds()

    # -- decision inputs ------------------------------------------------------------------------

    def inputs(self, edge: Edge, **extra: Any) -> dict[str, Any]:
        node = self.state.node_of(edge)
        seen: dict[str, Any] = {"edge_status": edge.status}
        if node is not None:
            seen.update(
                condition=node.condition,
                streak=node.streak,
                cpu_avg=_round(node.cpu_avg),
                memory_avg=_round(node.memory_avg),
                low_confidence_share=_round(node.low_confidence_share),
                last_seen=node.last_seen.isoformat() if node.last_seen else None,
                stale=node.stale,
            )
        else:
            seen["node"] = "not reported by the VMS"
        seen.update(extra)
        return seen

    def wake_at(self, when: datetime) -> None:
        if when > self.now and (self.next_wakeup is None or when < self.next_wakeup):
            self.next_wakeup = when


def _edge_id(edge: Edge) -> int:
    return edge.id


def _dep_id(d: Deployment) -> int:
    return d.id


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
