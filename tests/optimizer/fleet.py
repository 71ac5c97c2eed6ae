"""Builders of setup/VMS wire payloads (shared.contracts) for the optimizer's pure-engine tests.

A node is described flat (``cpu_avg=95``); ``node_state`` gives it as GET /nodes/state does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.fleet import FLEET_SNAPSHOT, FleetSnapshot
from shared.contracts.nodes import NodeState
from shared.versions import version_key

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
AI_CLASSES = {
    "SUNNY": "01",
    "CLOUDY": "01",
    "RAINY": "02",
    "SNOWY": "02",
    "FOGGY": "02",
    "NIGHT": "02",
}


class Fleet:
    def __init__(self) -> None:
        self.edges: list[dict[str, Any]] = []
        self.packages: list[dict[str, Any]] = []
        self.deployments: list[dict[str, Any]] = []
        self.nodes: dict[str, dict[str, Any]] = {}

    def edge(
        self,
        name: str,
        *,
        lat: float = 37.5,
        lon: float = 127.0,
        cluster: int = 1,
        analysis: bool = True,
        status: str = "active",
        **node: Any,
    ) -> dict[str, Any]:
        e: dict[str, Any] = {
            "id": len(self.edges) + 1,
            "name": name,
            "nid": f"0x{len(self.edges) + 1:02x}",
            "cluster_id": cluster,
            "latitude": lat,
            "longitude": lon,
            "supports_analysis": analysis,
            "status": status,
        }
        self.edges.append(e)
        self.nodes[e["nid"]] = {
            "nid": e["nid"],
            "condition": "SUNNY",
            "streak": 10,
            "cpu_avg": 20.0,
            "memory_avg": 30.0,
            "low_confidence_share": 0.0,
            "last_seen": NOW.isoformat(),
            "stale": False,
            **node,
        }
        return e

    def package(
        self, filename: str, version: str, ai_class: str, status: str = "ready"
    ) -> dict[str, Any]:
        p = {
            "id": len(self.packages) + 1,
            "filename": filename,
            "version": version,
            "version_key": version_key(version),
            "ai_class": ai_class,
            "condition": None,
            "status": status,
        }
        self.packages.append(p)
        return p

    def deploy(
        self,
        edge: dict,
        pkg: dict,
        *,
        params: dict | None = None,
        observed: str = "running",
        generation: int = 1,
        observed_generation: int | None = None,
        restarts: int = 0,
    ) -> dict[str, Any]:
        d = {
            "id": len(self.deployments) + 1,
            "edge_id": edge["id"],
            "ai_id": pkg["id"],
            "filename": pkg["filename"],
            "desired": "running",
            "params": params or {},
            "allow_multiple": False,
            "generation": generation,
            "observed": observed,
            "observed_generation": generation
            if observed_generation is None
            else observed_generation,
            "restarts": restarts,
            "decision_id": None,
        }
        self.deployments.append(d)
        return d

    def snapshot(self) -> FleetSnapshot:
        """As GET /fleet/snapshot answers (checked against the contract)."""
        return FLEET_SNAPSHOT.validate_python(
            {
                "edges": self.edges,
                "ai_packages": self.packages,
                "deployments": self.deployments,
                "conditions": {"codes": {}, "ai_classes": AI_CLASSES},
                "generated_at": NOW.isoformat(),
            }
        )

    def node_state(self, nid: str) -> NodeState:
        """One GET /nodes/state item: usage and detections nested as the VMS answers them."""
        n = self.nodes[nid]
        at = n["last_seen"]
        return {
            "nid": nid,
            "known": True,
            "authenticated": True,
            "condition": n["condition"],
            "condition_code": None,
            "previous_condition": None,
            "streak": n["streak"],
            "condition_since": at,
            "environment_at": at,
            "usage": {
                "at": at,
                "cpu": n["cpu_avg"],
                "memory": n["memory_avg"],
                "func": n["condition"],
                "cpu_avg": n["cpu_avg"],
                "memory_avg": n["memory_avg"],
            },
            "detections": {
                "at": at,
                "frames": 1000,
                "frames_sent_up": round(1000 * n.get("frames_sent_up_share", 0.0)),
                "counts": {},
                "low_confidence_share": n["low_confidence_share"],
                # What the edge's worker reported failing (and, under a hand-off, who analysed).
                **{  # type: ignore[typeddict-item]
                    k: n[k]
                    for k in ("analysed_by", "source_unavailable", "analysis_unavailable")
                    if n.get(k)
                },
            },
            "last_seen": at,
            "stale": n["stale"],
        }

    def node_list(self) -> list[NodeState]:
        return [self.node_state(nid) for nid in self.nodes]

    def apply(self, ops: list[dict[str, Any]]) -> None:
        """What setup's bulk write does to the desired state (enough for idempotency checks)."""
        by_id = {d["id"]: d for d in self.deployments}
        for op in ops:
            if op["op"] == "update":
                d = by_id[op["id"]]
                if "ai_id" in op:
                    d["ai_id"] = op["ai_id"]
                if "params" in op:
                    d["params"] = op["params"]
                d["generation"] += 1
                d["decision_id"] = op.get("decision_id")
            elif op["op"] == "remove":
                by_id[op["id"]]["desired"] = "removed"
            elif op["op"] == "create":
                self.deployments.append(
                    {
                        "id": len(self.deployments) + 1,
                        "edge_id": op["edge_id"],
                        "ai_id": op["ai_id"],
                        "filename": next(
                            p["filename"] for p in self.packages if p["id"] == op["ai_id"]
                        ),
                        "desired": "running",
                        "params": op["params"],
                        "allow_multiple": op.get("allow_multiple", False),
                        "generation": 1,
                        "observed": "pending",
                        "observed_generation": 0,
                        "restarts": 0,
                        "decision_id": op["decision_id"],
                    }
                )
            elif op["op"] == "edge_status":
                next(e for e in self.edges if e["id"] == op["edge_id"])["status"] = op["status"]

    def observe(self, d: dict, observed: str = "running", restarts: int | None = None) -> None:
        d["observed"], d["observed_generation"] = observed, d["generation"]
        if restarts is not None:
            d["restarts"] = restarts


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)
