"""From setup's fleet snapshot to the workloads each edge should run (pure functions)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_common.vocabulary import Param, live_params
from services.master.drivers.base import (
    AiArtifact,
    EdgeTarget,
    Workload,
    render_edgeconfig,
    workload_name,
)
from shared.contracts.fleet import (
    DesiredState,
    FleetDeployment,
    FleetEdge,
    FleetPackage,
    FleetSnapshot,
    ObservedState,
    PackageStatus,
)
from shared.contracts.master import ClusterRecord, Runtime

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The field's environment (weather) AI posts its results to /save_edgeData; every other program
# (the monitoring variants) posts to MASTER_VMS_PATH (/usage). Its edgeconfig.xml says so.
ENVIRONMENT_AI_CLASS = "00"
ENVIRONMENT_VMS_PATH = "save_edgeData"

# nid, runtime -> the token the edge's workloads post to the VMS with (None: they get none).
TokenFor = Callable[[str, Runtime], str | None]


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

    deployment: FleetDeployment
    observed: ObservedState  # pending or failed
    reason: str


@dataclass
class EdgePlan:
    edge: FleetEdge
    target: EdgeTarget
    runtime: Runtime
    namespace: str
    workloads: list[tuple[FleetDeployment, NamedWorkload]] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    # Desired removed, not yet observed removed; and their workload names, where the AI is known.
    removed: list[FleetDeployment] = field(default_factory=list)
    removed_names: dict[int, str] = field(default_factory=dict)
    cluster: str | None = None  # the cluster's name: its runtime settings on this master
    # Helper copies taken on by a workload already running on the edge (hot hand-off): the
    # deployment and the workload that analyses for it.
    attached: list[tuple[FleetDeployment, NamedWorkload]] = field(default_factory=list)

    @property
    def has_work(self) -> bool:
        """Something to apply, remove, report or look at on this edge."""
        return bool(self.workloads or self.removed or self.blocked or self.edge.get("agent_url"))


def param_env(params: Mapping[str, Any]) -> dict[str, str]:
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


def helped_edge(deployment: Mapping[str, Any]) -> tuple[int, str] | None:
    """(source edge id, source nid) of a helper copy, else None."""
    params = deployment.get("params") or {}
    if params.get(Param.ANALYSIS_FOR) and params.get(Param.SOURCE_EDGE_ID) is not None:
        return int(params[Param.SOURCE_EDGE_ID]), str(params[Param.ANALYSIS_FOR])
    return None


def build_workload(
    deployment: FleetDeployment,
    edge: FleetEdge,
    target: EdgeTarget,
    ai: FleetPackage,
    manifest: Mapping[str, Any],
    *,
    vms: tuple[str, int],
    vms_path: str,
    token: str | None,
    secret_env: Mapping[str, str] | None = None,
) -> NamedWorkload:
    env = dict(manifest.get("env") or {})
    env.update(param_env(deployment.get("params") or {}))
    # Platform variables last: a package or a param cannot impersonate another node.
    env.update(
        EDGE_NODE_ID=edge["nid"],
        EDGE_NODE_NAME=edge["name"],
        EDGE_AI_ID=str(ai["id"]),
        EDGE_AI_VERSION=ai["version"],
    )
    # The node token is a secret: the Kubernetes driver keeps it in a Secret, never in the
    # Deployment.
    secrets = {**(secret_env or {}), **({"EDGE_TOKEN": token} if token is not None else {})}
    return NamedWorkload(
        deployment_id=deployment["id"],
        edge=target,
        ai=AiArtifact(
            id=ai["id"],
            filename=ai["filename"],
            version=ai["version"],
            ai_class=ai["ai_class"],
            package_digest=ai.get("package_digest"),
            image_ref=ai.get("image_ref"),
            architectures=tuple(manifest.get("architectures") or ()),
            native_code=bool(manifest.get("native_code")),
        ),
        command=list(manifest.get("command") or []),
        env=env,
        secret_env=secrets,
        resources=dict(manifest.get("resources") or {}),
        edgeconfig_xml=render_edgeconfig(
            vms_ip=vms[0],
            vms_port=vms[1],
            vms_path=vms_path_for(ai["ai_class"], vms_path),
            nid=edge["nid"],
        ),
        generation=int(deployment.get("generation") or 1),
        live=live_params(deployment.get("params")),
        hot_handoff=bool(manifest.get("hot_handoff")),
    )


def _camera_of(dep: FleetDeployment, cameras: Mapping[int, str | None]) -> str | Blocked:
    """The helped edge's camera URL for a helper copy, or why it cannot be had."""
    helped = helped_edge(dep)
    assert helped is not None
    edge_id, nid = helped
    if edge_id not in cameras:
        return Blocked(
            dep, ObservedState.PENDING, f"the camera of the helped edge {nid} is not known yet"
        )
    return cameras[edge_id] or Blocked(
        dep, ObservedState.FAILED, f"the helped edge {nid} has no camera URL"
    )


def _host_for(ai: FleetPackage, p: EdgePlan) -> NamedWorkload | None:
    """The workload already planned on the helper edge that takes this helper copy hot: the same
    program (AI filename), not itself a helper copy, its manifest saying ``hot_handoff``."""
    for host_dep, wl in p.workloads:
        if wl.hot_handoff and wl.ai.filename == ai["filename"] and helped_edge(host_dep) is None:
            return wl
    return None


def _attach(dep: FleetDeployment, host: NamedWorkload, camera: str) -> None:
    """The helped nid joins the host's live ``help_for``; its camera its live secrets."""
    _, nid = helped_edge(dep) or (0, "")
    # Hot hand-off: the helped nid joins the live help_for, its camera the live secrets.
    host.live[Param.HELP_FOR] = sorted({*host.live.get(Param.HELP_FOR, []), nid})
    host.live_secrets.setdefault(Param.HELP_SOURCES, {})[nid] = camera


def _cluster_of(edge: FleetEdge, clusters: Mapping[int, ClusterRecord]) -> ClusterRecord | None:
    cluster_id = edge.get("cluster_id")
    return clusters.get(cluster_id) if cluster_id is not None else None


def runtime_of(edge: FleetEdge, clusters: Mapping[int, ClusterRecord]) -> Runtime:
    """How the edge's AIs run: its cluster's runtime, the agent for an edge in no cluster."""
    cluster = _cluster_of(edge, clusters)
    return Runtime.AGENT if cluster is None else cluster.runtime


def edge_plan(edge: FleetEdge, clusters: Mapping[int, ClusterRecord]) -> EdgePlan:
    """An edge's empty plan: where its workloads run (its cluster's runtime and namespace)."""
    cluster = _cluster_of(edge, clusters)
    target = EdgeTarget(
        name=edge["name"],
        nid=edge["nid"],
        node_name=edge.get("node_name"),
        agent_url=edge.get("agent_url"),
        id=edge["id"],
    )
    if cluster is None:
        return EdgePlan(edge, target, Runtime.AGENT, "edge-ai")
    return EdgePlan(edge, target, cluster.runtime, cluster.namespace, cluster=cluster.name)


def plan(
    snapshot: FleetSnapshot,
    clusters: Mapping[int, ClusterRecord],
    manifests: Mapping[int, Mapping[str, Any]],
    *,
    vms: tuple[str, int],
    vms_path: str,
    token_for: TokenFor,
    cameras: Mapping[int, str | None] | None = None,
    site_problems: Mapping[int, tuple[ObservedState, str]] | None = None,
) -> dict[int, EdgePlan]:
    """Per edge: the workloads to run, the deployments that must wait (AI not ready), and the
    removed deployments still to be seen gone.

    A helper copy (the optimizer's hand-off) is taken on hot by the helper edge's running worker
    when it has one whose manifest says ``hot_handoff``: the helped nid goes into that workload's
    live ``help_for``, the helped edge's camera (``cameras``: edge id -> URL) into its live
    secrets; no new process. Otherwise (the fallback) the copy is a workload of its own, started
    with the camera as a secret env and its own edge's token. Either way it posts the helped
    node's detections marked ``analysed_by``.
    ``site_problems`` (AI id -> state, reason): AIs this site cannot run yet (archive not copied,
    image refused by the site registry); their deployments wait with the reason."""
    ais = {a["id"]: a for a in snapshot["ai_packages"]}
    plans = {edge["id"]: edge_plan(edge, clusters) for edge in snapshot["edges"]}
    helpers: list[tuple[FleetDeployment, FleetPackage, EdgePlan]] = []
    for dep in snapshot["deployments"]:
        p = plans.get(dep["edge_id"])
        if p is None:
            continue
        ai = ais.get(dep["ai_id"])
        if dep["desired"] != DesiredState.RUNNING:
            p.removed.append(dep)
            if ai is not None:
                p.removed_names[dep["id"]] = workload_name(ai["filename"], ai["ai_class"])
            continue
        blocked = _blocked(dep, ai, manifests)
        if blocked is None and site_problems and dep["ai_id"] in site_problems:
            state, reason = site_problems[dep["ai_id"]]
            blocked = Blocked(dep, state, reason)
        if blocked is not None:
            p.blocked.append(blocked)
            continue
        assert ai is not None  # _blocked answers for a missing AI
        if helped_edge(dep) is not None:
            helpers.append((dep, ai, p))  # once the edge's own workloads are planned
            continue
        _add_workload(p, dep, ai, manifests[ai["id"]], vms, vms_path, token_for, {})
    for dep, ai, p in helpers:
        camera = _camera_of(dep, cameras or {})
        if isinstance(camera, Blocked):
            p.blocked.append(camera)
            continue
        host = _host_for(ai, p)
        if host is not None:
            _attach(dep, host, camera)
            p.attached.append((dep, host))
            continue
        secrets = {HELPER_SOURCE_ENV: camera}
        _add_workload(p, dep, ai, manifests[ai["id"]], vms, vms_path, token_for, secrets)
    for p in plans.values():
        _unique_names(p)
    return plans


def _add_workload(
    p: EdgePlan,
    dep: FleetDeployment,
    ai: FleetPackage,
    manifest: Mapping[str, Any],
    vms: tuple[str, int],
    vms_path: str,
    token_for: TokenFor,
    secret_env: dict[str, str],
) -> None:
    """The deployment as a workload of the edge's plan (blocked with the reason when it cannot
    be one)."""
    try:
        token = token_for(p.edge["nid"], p.runtime)
        wl = build_workload(
            dep,
            p.edge,
            p.target,
            ai,
            manifest,
            vms=vms,
            vms_path=vms_path,
            token=token,
            secret_env=secret_env,
        )
    except ValueError as exc:
        p.blocked.append(Blocked(dep, ObservedState.FAILED, str(exc)))
        return
    p.workloads.append((dep, wl))


def _blocked(
    dep: FleetDeployment, ai: FleetPackage | None, manifests: Mapping[int, Mapping[str, Any]]
) -> Blocked | None:
    """Why a desired deployment cannot run yet (its AI removed, failed or not built), or None."""
    if ai is None:
        return Blocked(dep, ObservedState.FAILED, f"AI {dep['ai_id']} was removed")
    if ai["status"] == PackageStatus.FAILED:
        return Blocked(dep, ObservedState.FAILED, f"AI {ai['id']} failed to build")
    if ai["status"] != PackageStatus.READY or ai["id"] not in manifests:
        return Blocked(dep, ObservedState.PENDING, f"AI {ai['id']} is {ai['status']}")
    return None


def _unique_names(p: EdgePlan) -> None:
    """Two desired deployments of the same ``{filename}-{ai_class}`` on one edge (allow_multiple):
    the later ones get their deployment id in the name."""
    seen: set[str] = set()
    for dep, wl in p.workloads:
        if wl.name in seen:
            wl.override_name = f"{workload_name(wl.ai.filename, wl.ai.ai_class)}-d{dep['id']}"
        seen.add(wl.name)
