"""Workloads the driver tests hand to the drivers, built the way the reconcile pass builds them
(``reconcile.desired.build_workload`` from rows shaped like setup's fleet snapshot)."""

from __future__ import annotations

import hashlib
from typing import Any

from services.master.drivers.base import EdgeTarget, Workload
from services.master.reconcile.desired import build_workload
from shared.contracts.fleet import (
    DesiredState,
    FleetDeployment,
    FleetEdge,
    FleetPackage,
    ObservedState,
    PackageStatus,
)

EDGE1 = EdgeTarget(name="EdgeCCTV01", nid="0x01", node_name="edge-node-01", id=1)
EDGE2 = EdgeTarget(name="EdgeCCTV02", nid="0x02", node_name="edge-node-02", id=2)
REGISTRY = "127.0.0.1:5000"


def workload(
    edge: EdgeTarget = EDGE1,
    *,
    filename: str = "monitoring",
    ai_class: str = "01",
    version: str = "01",
    ai_id: int = 5,
    deployment_id: int = 11,
    generation: int = 1,
    params: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    resources: dict[str, Any] | None = None,
    vms_port: int = 6432,
    secret_env: dict[str, str] | None = None,
    digest: str | None = None,
    image: bool = True,
    command: list[str] | None = None,
) -> Workload:
    """``params`` are the deployment's (they become env), ``env`` and ``resources`` the
    manifest's; ``secret_env``: secrets beside the node token (camera credentials)."""
    digest = (
        digest or "sha256:" + hashlib.sha256(f"{filename}{ai_class}{version}".encode()).hexdigest()
    )
    row_edge: FleetEdge = {
        "id": edge.id or 1,
        "name": edge.name,
        "nid": edge.nid,
        "cluster_id": None,
        "node_name": edge.node_name,
        "agent_url": edge.agent_url,
    }
    ai: FleetPackage = {
        "id": ai_id,
        "filename": filename,
        "version": version,
        "ai_class": ai_class,
        "status": PackageStatus.READY,
        "package_digest": digest,
        "image_ref": f"{REGISTRY}/{filename}-{ai_class}:{version}" if image else None,
    }
    deployment: FleetDeployment = {
        "id": deployment_id,
        "edge_id": row_edge["id"],
        "ai_id": ai_id,
        "desired": DesiredState.RUNNING,
        "params": {"FUNC": "SUNNY"} if params is None else params,
        "generation": generation,
        "observed": ObservedState.PENDING,
        "observed_generation": 0,
        "restarts": 0,
    }
    manifest = {
        "command": command or ["python", "main.py"],
        "env": env or {},
        "resources": {"cpu": "500m", "memory": "256Mi"} if resources is None else resources,
    }
    built = build_workload(
        deployment,
        row_edge,
        edge,
        ai,
        manifest,
        vms=("127.0.0.1", vms_port),
        vms_path="usage",
        token=None,
    )
    built.secret_env.update(secret_env or {})
    return built


RTSP = {"RTSP_URL": "rtsp://cam-user:cam-pass-123@127.0.0.1:8554/axis-media/media.amp"}
