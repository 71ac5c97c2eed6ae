"""From setup's fleet snapshot to the workloads each edge should run (pure functions)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from services.master.drivers.base import (
    AiArtifact,
    EdgeTarget,
    Workload,
    live_params,
    render_edgeconfig,
    workload_name,
)

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The field's environment (weather) AI posts its results to /save_edgeData; every other program
# (the monitoring variants) posts to MASTER_VMS_PATH (/usage). Its edgeconfig.xml says so.
ENVIRONMENT_AI_CLASS = "00"
ENVIRONMENT_VMS_PATH = "save_edgeData"


def vms_path_for(ai_class: str, default: str) -> str:
    """The ``<Path>`` of a program's edgeconfig.xml: the VMS route the field's program posts to."""
    return ENVIRONMENT_VMS_PATH if ai_class == ENVIRONMENT_AI_CLASS else default


@dataclass
class NamedWorkload(Workload):
    """A workload whose name may differ from the field's ``{filename}-{ai_class}``."""

    override_name: str | None = None

    @property
    def name(self) -> str:
        return self.override_name or workload_name(self.ai.filename, self.ai.ai_class)


@dataclass
class Blocked:
    """A desired deployment that cannot be handed to a runtime yet, and what to report for it."""

    deployment: dict[str, Any]
    observed: str  # "pending" or "failed"
    reason: str


@dataclass
class EdgePlan:
    edge: dict[str, Any]
    target: EdgeTarget
    runtime: str
    namespace: str
    workloads: list[tuple[dict[str, Any], Workload]] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)  # desired removed, not yet observed removed
    removed_names: dict[int, str] = field(default_factory=dict)  # their workload names, where the AI is known


def param_env(params: dict[str, Any]) -> dict[str, str]:
    """Deployment params become environment variables (non-strings as JSON)."""
    env = {}
    for key, value in (params or {}).items():
        if not ENV_NAME.match(str(key)):
            raise ValueError(f"params.{key}: not an environment variable name (letters, digits, _)")
        env[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return env


# A helper copy (the optimizer's hand-over) reads the helped edge's camera: its URL, with the
# credentials, is a secret variable of the helper's workload.
HELPER_SOURCE_ENV = "YOLO_SOURCE"
HELPER = "helper"  # what ``token_for`` is asked with for a helper copy: the helped edge's token


def helped_edge(deployment: dict[str, Any]) -> tuple[int, str] | None:
    """(source edge id, source nid) of a helper copy, else None."""
    params = deployment.get("params") or {}
    if params.get("analysis_for") and params.get("source_edge_id") is not None:
        return int(params["source_edge_id"]), str(params["analysis_for"])
    return None


def build_workload(
    deployment: dict[str, Any], edge: dict[str, Any], target: EdgeTarget, ai: dict[str, Any], manifest: dict[str, Any],
    *, vms: tuple[str, int], vms_path: str, token: str | None,
    secret_env: dict[str, str] | None = None,
) -> Workload:
    env = dict(manifest.get("env") or {})
    env.update(param_env(deployment.get("params") or {}))
    # Platform variables last: a package or a param cannot impersonate another node.
    env.update(
        EDGE_NODE_ID=edge["nid"],
        EDGE_NODE_NAME=edge["name"],
        EDGE_AI_ID=str(ai["id"]),
        EDGE_AI_VERSION=ai["version"],
    )
    # The node token is a secret: the Kubernetes driver keeps it in a Secret, never in the Deployment.
    secret_env = {**(secret_env or {}), **({"EDGE_TOKEN": token} if token is not None else {})}
    return NamedWorkload(
        deployment_id=deployment["id"],
        edge=target,
        ai=AiArtifact(
            id=ai["id"], filename=ai["filename"], version=ai["version"], ai_class=ai["ai_class"],
            package_digest=ai.get("package_digest"), image_ref=ai.get("image_ref"),
        ),
        command=list(manifest.get("command") or []),
        env=env,
        secret_env=secret_env,
        resources=dict(manifest.get("resources") or {}),
        edgeconfig_xml=render_edgeconfig(
            vms_ip=vms[0], vms_port=vms[1], vms_path=vms_path_for(ai["ai_class"], vms_path),
            nid=edge["nid"],
        ),
        generation=int(deployment.get("generation") or 1),
        live=live_params(deployment.get("params")),
    )


def plan(
    snapshot: dict[str, Any], clusters: dict[int, dict[str, Any]], manifests: dict[int, dict[str, Any]],
    *, vms: tuple[str, int], vms_path: str, token_for, cameras: dict[int, str | None] | None = None,
) -> dict[int, EdgePlan]:
    """Per edge: the workloads to run, the deployments that must wait (AI not ready), and the
    removed deployments still to be seen gone.

    A helper copy runs with the helped edge's camera (``cameras``: edge id -> URL) and token: its
    detections are the helped node's, posted under its nid."""
    ais = {a["id"]: a for a in snapshot.get("ai_packages", [])}
    plans: dict[int, EdgePlan] = {}
    for edge in snapshot.get("edges", []):
        cluster = clusters.get(edge.get("cluster_id")) or {}
        target = EdgeTarget(name=edge["name"], nid=edge["nid"], node_name=edge.get("node_name"),
                            agent_url=edge.get("agent_url"), id=edge["id"])
        plans[edge["id"]] = EdgePlan(edge, target, cluster.get("runtime", "agent"), cluster.get("namespace", "edge-ai"))
    for dep in snapshot.get("deployments", []):
        p = plans.get(dep["edge_id"])
        if p is None:
            continue
        ai = ais.get(dep["ai_id"])
        if dep["desired"] != "running":
            p.removed.append(dep)
            if ai is not None:
                p.removed_names[dep["id"]] = workload_name(ai["filename"], ai["ai_class"])
            continue
        if ai is None:
            p.blocked.append(Blocked(dep, "failed", f"AI {dep['ai_id']} was removed"))
            continue
        if ai["status"] == "failed":
            p.blocked.append(Blocked(dep, "failed", f"AI {ai['id']} failed to build"))
            continue
        if ai["status"] != "ready" or ai["id"] not in manifests:
            p.blocked.append(Blocked(dep, "pending", f"AI {ai['id']} is {ai['status']}"))
            continue
        helped = helped_edge(dep)
        secret_env: dict[str, str] = {}
        if helped is not None:
            cameras = cameras or {}
            if helped[0] not in cameras:
                why = f"the camera of the helped edge {helped[1]} is not known yet"
                p.blocked.append(Blocked(dep, "pending", why))
                continue
            camera = cameras[helped[0]]
            if not camera:
                why = f"the helped edge {helped[1]} has no camera URL"
                p.blocked.append(Blocked(dep, "failed", why))
                continue
            secret_env[HELPER_SOURCE_ENV] = camera
        token = token_for(helped[1], HELPER) if helped else token_for(p.edge["nid"], p.runtime)
        try:
            wl = build_workload(dep, p.edge, p.target, ai, manifests[ai["id"]], vms=vms, vms_path=vms_path,
                                token=token, secret_env=secret_env)
        except ValueError as exc:
            p.blocked.append(Blocked(dep, "failed", str(exc)))
            continue
        p.workloads.append((dep, wl))
    for p in plans.values():
        _unique_names(p)
    return plans


def _unique_names(p: EdgePlan) -> None:
    """Two desired deployments of the same ``{filename}-{ai_class}`` on one edge (allow_multiple):
    the later ones get their deployment id in the name."""
    seen: set[str] = set()
    for dep, wl in p.workloads:
        if wl.name in seen:
            wl.override_name = f"{workload_name(wl.ai.filename, wl.ai.ai_class)}-d{dep['id']}"
        seen.add(wl.name)
