"""The fleet as the console shows it: setup's edges and deployments, the VMS's node states and
the optimizer's pins, routing and thresholds, merged into one row per edge with its state.

A service that does not answer leaves its columns empty and is named in ``problems``, so the page
says what is missing instead of failing as a whole."""

from __future__ import annotations

import asyncio

from edge_common.vocabulary import AnalysisRoute, DesiredState, Param
from services.console.schemas import EdgeState, FleetAi, FleetRow, FleetView, Problem
from services.console.upstream import Upstreams
from services.console.views import PINS, optional
from shared.contracts.fleet import (
    FLEET_SNAPSHOT,
    EdgeStatus,
    FleetDeployment,
    FleetEdge,
    FleetPackage,
)
from shared.contracts.nodes import NODE_STATES, NodeState
from shared.contracts.policies import POLICIES, AnyPolicyOut, OverloadConfig
from shared.contracts.routing import EdgeRouting, RoutingReport

# The order in which a state colours an edge on the map (the first that holds).
STATES = list(EdgeState)


def _thresholds(policies: list[AnyPolicyOut]) -> tuple[float, float]:
    """The overload policy's cpu and memory thresholds in effect (its defaults when the
    optimizer does not answer)."""
    config = next(
        (p.effective for p in policies if isinstance(p.effective, OverloadConfig)),
        OverloadConfig(),
    )
    return config.cpu_percent, config.memory_percent


def _focused(deployments: list[FleetDeployment]) -> bool:
    return any(
        bool(value) and key == Param.FOCUS
        for d in deployments
        for key, value in (d["params"] or {}).items()
    )


def edge_states(
    edge: FleetEdge,
    node: NodeState | None,
    route: EdgeRouting | None,
    deployments: list[FleetDeployment],
    thresholds: tuple[float, float],
) -> list[EdgeState]:
    states = []
    if node is None or node["stale"]:
        states.append(EdgeState.STALE)
    if edge["status"] == EdgeStatus.DEGRADED:
        states.append(EdgeState.DEGRADED)
    usage = node["usage"] if node else None
    cpu = usage["cpu_avg"] if usage else None  # smoothed, as the overload policy reads it
    memory = usage["memory_avg"] if usage else None
    if (cpu is not None and cpu >= thresholds[0]) or (
        memory is not None and memory >= thresholds[1]
    ):
        states.append(EdgeState.OVERLOADED)
    if route is not None and route.analysis != AnalysisRoute.LOCAL:
        states.append(EdgeState.HELPED)
    if _focused(deployments):
        states.append(EdgeState.FOCUSED)
    if EdgeState.STALE not in states:
        states.append(EdgeState.ONLINE)
    return states


def _ai(d: FleetDeployment, package: FleetPackage | None) -> FleetAi:
    return FleetAi(
        deployment_id=d["id"],
        filename=d["filename"],
        version=package["version"] if package else None,
        ai_class=package["ai_class"] if package else None,
        observed=d["observed"],
        restarts=d["restarts"],
    )


async def fleet_view(up: Upstreams) -> FleetView:
    problems: list[Problem] = []
    snapshot, nodes, pins, routing, policies = await asyncio.gather(
        optional(problems, "setup", up.setup.adapted("GET", "/fleet/snapshot", FLEET_SNAPSHOT)),
        optional(problems, "vms", up.vms.adapted("GET", "/nodes/state", NODE_STATES)),
        optional(problems, "optimizer", up.optimizer.adapted("GET", "/pins", PINS)),
        optional(problems, "optimizer", up.optimizer.model("GET", "/routing", RoutingReport)),
        optional(problems, "optimizer", up.optimizer.adapted("GET", "/policies", POLICIES)),
    )
    nodes_by_nid = {n["nid"]: n for n in nodes["items"]} if nodes else {}
    routes = {r.nid: r for r in routing.items} if routing else {}
    pinned = {p.edge_id for p in pins or []}
    thresholds = _thresholds(policies or [])
    if snapshot is None:
        return FleetView(edges=[], states=STATES, problems=problems)
    packages = {p["id"]: p for p in snapshot["ai_packages"]}
    by_edge: dict[int, list[FleetDeployment]] = {}
    for d in snapshot["deployments"]:
        if d["desired"] == DesiredState.RUNNING:
            by_edge.setdefault(d["edge_id"], []).append(d)
    rows = []
    for edge in sorted(snapshot["edges"], key=lambda e: e["name"]):
        node = nodes_by_nid.get(edge["nid"])
        route = routes.get(edge["nid"])
        deployments = by_edge.get(edge["id"], [])
        usage = node["usage"] if node else None
        states = edge_states(edge, node, route, deployments, thresholds)
        rows.append(
            FleetRow(
                id=edge["id"],
                name=edge["name"],
                nid=edge["nid"],
                latitude=edge["latitude"],
                longitude=edge["longitude"],
                status=edge["status"],
                condition=node["condition"] if node else None,
                last_seen=node["last_seen"] if node else None,
                cpu=usage["cpu"] if usage else None,
                memory=usage["memory"] if usage else None,
                pinned=edge["id"] in pinned,
                routing=route,
                state=states[0],
                states=states,
                ais=[_ai(d, packages.get(d["ai_id"])) for d in deployments],
            )
        )
    return FleetView(edges=rows, states=STATES, problems=problems)
