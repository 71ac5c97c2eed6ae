"""The fleet as the console shows it: setup's edges and deployments, the VMS's node states and
the optimizer's pins, routing and thresholds, merged into one row per edge with its state.

A service that does not answer leaves its columns empty and is named in ``problems``, so the page
says what is missing instead of failing as a whole."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from edge_common.vocabulary import AnalysisRoute, DesiredState, Param
from services.console.upstream import Upstreams
from shared.errors import DomainError

# The order in which a state colours an edge on the map (the first that holds).
STATES = ("stale", "degraded", "overloaded", "helped", "focused", "online")


async def _fetch(
    problems: list[dict[str, str]], service: str, call: Awaitable[Any], default: Any
) -> Any:
    try:
        return await call
    except DomainError as exc:
        problems.append({"service": service, "message": exc.message})
        return default


def _thresholds(policies: list[dict[str, Any]]) -> tuple[float, float]:
    for policy in policies:
        if policy.get("name") == "overload":
            effective = policy.get("effective") or {}
            return float(effective.get("cpu_percent", 85.0)), float(
                effective.get("memory_percent", 90.0)
            )
    return 85.0, 90.0


def _focused(deployments: list[dict[str, Any]]) -> bool:
    return any(
        bool(value) and key == Param.FOCUS
        for d in deployments
        for key, value in (d.get("params") or {}).items()
    )


def edge_states(
    edge: dict[str, Any],
    node: dict[str, Any] | None,
    route: dict[str, Any] | None,
    deployments: list[dict[str, Any]],
    thresholds: tuple[float, float],
) -> list[str]:
    states = []
    if node is None or node.get("stale", True):
        states.append("stale")
    if edge.get("status") == "degraded":
        states.append("degraded")
    usage = (node or {}).get("usage") or {}
    cpu = usage.get("cpu_avg", usage.get("cpu"))
    memory = usage.get("memory_avg", usage.get("memory"))
    if (cpu is not None and cpu >= thresholds[0]) or (
        memory is not None and memory >= thresholds[1]
    ):
        states.append("overloaded")
    if route is not None and (route.get("analysis") not in (None, AnalysisRoute.LOCAL)):
        states.append("helped")
    if _focused(deployments):
        states.append("focused")
    if "stale" not in states:
        states.append("online")
    return states


async def fleet_view(up: Upstreams) -> dict[str, Any]:
    problems: list[dict[str, str]] = []
    snapshot, nodes, pins, routing, policies = await asyncio.gather(
        _fetch(problems, "setup", up.setup.json("GET", "/fleet/snapshot"), None),
        _fetch(problems, "vms", up.vms.json("GET", "/nodes/state"), {"items": []}),
        _fetch(problems, "optimizer", up.optimizer.json("GET", "/pins"), []),
        _fetch(problems, "optimizer", up.optimizer.json("GET", "/routing"), {"items": []}),
        _fetch(problems, "optimizer", up.optimizer.json("GET", "/policies"), []),
    )
    snapshot = snapshot or {"edges": [], "ai_packages": [], "deployments": []}
    nodes_by_nid = {n["nid"]: n for n in nodes.get("items", [])}
    routes = {r["nid"]: r for r in routing.get("items", [])}
    pinned = {p["edge_id"]: p for p in pins}
    packages = {p["id"]: p for p in snapshot.get("ai_packages", [])}
    thresholds = _thresholds(policies)
    by_edge: dict[int, list[dict[str, Any]]] = {}
    for d in snapshot.get("deployments", []):
        if d.get("desired") == DesiredState.RUNNING:
            by_edge.setdefault(d["edge_id"], []).append(d)
    rows = []
    for edge in sorted(snapshot.get("edges", []), key=lambda e: e["name"]):
        node = nodes_by_nid.get(edge["nid"])
        route = routes.get(edge["nid"])
        deployments = by_edge.get(edge["id"], [])
        usage = (node or {}).get("usage") or {}
        states = edge_states(edge, node, route, deployments, thresholds)
        rows.append(
            {
                "id": edge["id"],
                "name": edge["name"],
                "nid": edge["nid"],
                "latitude": edge.get("latitude"),
                "longitude": edge.get("longitude"),
                "status": edge.get("status"),
                "condition": (node or {}).get("condition"),
                "last_seen": (node or {}).get("last_seen"),
                "cpu": usage.get("cpu"),
                "memory": usage.get("memory"),
                "pinned": edge["id"] in pinned,
                "routing": route,
                "state": states[0],
                "states": states,
                "ais": [
                    {
                        "deployment_id": d["id"],
                        "filename": d["filename"],
                        "version": packages.get(d["ai_id"], {}).get("version"),
                        "ai_class": packages.get(d["ai_id"], {}).get("ai_class"),
                        "observed": d.get("observed"),
                        "restarts": d.get("restarts", 0),
                    }
                    for d in deployments
                ],
            }
        )
    return {"edges": rows, "states": list(STATES), "problems": problems}
