"""What the master reads from setup and what it writes back, beside the fleet snapshot it
reconciles against (shared.contracts.fleet) and the events it sends the optimizer
(shared.contracts.events): the AI package record and its creation and changes (GET/POST/PATCH
/ai-packages: ``AiPackageRecord``, ``AiPackageNew``, ``AiPackageChange``), the clusters
(GET /clusters), its own registration and heartbeats (POST /masters/register,
POST /masters/{id}/heartbeat: ``MasterRegistration``, ``MasterHeartbeat``, ``MasterHealth`` ->
``MasterRecord``), the observed reports it posts (POST /deployments/observed) and the token of the
workloads it runs without an agent (POST /edges/{id}/workload-token) with its camera
(GET /edges/{id}/camera); and the answers of the master's routes setup calls (POST /reconcile,
POST /ai-packages/{id}/build, POST /ai-packages/{id}/remove).

The states are setup's (shared.contracts.fleet); the field names are those of setup's schemas.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from edge_common.vocabulary import WorkloadState
from shared.contracts.fleet import ObservedState, PackageStatus


class Runtime(StrEnum):
    """How the master runs AIs on a cluster's edges (setup's clusters.runtime)."""

    AGENT = "agent"
    # The edge agent behind NAT: told by an MQTT notice, it pulls its desired set (no inbound port).
    AGENT_PULL = "agent-pull"
    KUBERNETES = "kubernetes"
    DOCKER = "docker"


# --- AI packages and clusters -------------------------------------------------------------


class AiPackageRecord(BaseModel):
    """One AI package as setup holds it (GET/POST/PATCH /ai-packages answers)."""

    id: int
    filename: str
    version: str
    ai_class: str
    condition: str | None = None
    description: str = ""
    package_digest: str | None = None
    package_size: int | None = None
    manifest: dict[str, Any] | None = None
    image_ref: str | None = None
    image_digest: str | None = None
    status: PackageStatus
    failure_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class UploadAccepted(BaseModel):
    """The master's answer to an upload (POST /ai-packages, passed on by the console): the AI row
    as setup holds it, with the stored package; the build goes on in the background."""

    ai: AiPackageRecord
    package_digest: str
    package_size: int
    stored: bool = Field(description="False when the same bytes were already in the store")
    build: str = Field(
        description="queued, running (a build of this AI was already under way) or ready"
    )


class AiPackagePage(BaseModel):
    items: list[AiPackageRecord]
    total: int


class AiPackageNew(BaseModel):
    """A new AI row the master records for a package uploaded to it (POST /ai-packages); setup
    validates the names with its own ``AiPackageCreate``."""

    model_config = ConfigDict(extra="forbid")

    filename: str
    version: str
    ai_class: str
    condition: str | None = None
    description: str = Field("", max_length=2000)


class AiPackageChange(BaseModel):
    """What the master's build writes to an AI row (PATCH /ai-packages/{id}); unset: unchanged."""

    model_config = ConfigDict(extra="forbid")

    status: PackageStatus | None = None
    failure_reason: str | None = Field(None, max_length=4000)
    condition: str | None = None
    description: str | None = Field(None, max_length=2000)
    package_digest: str | None = None
    package_size: int | None = None
    manifest: dict[str, Any] | None = None
    image_ref: str | None = None
    image_digest: str | None = None


class ClusterRecord(BaseModel):
    id: int
    name: str
    runtime: Runtime = Runtime.AGENT
    namespace: str = "edge-ai"
    master_id: int | None = None  # the registered master serving it; None: the default master
    master_state: str = "none"  # none, live, silent


class ClusterHealth(BaseModel):
    """One cluster a master serves, as its health reports it."""

    model_config = ConfigDict(extra="forbid")
    edges: int = Field(0, ge=0, description="its edges in the master's last pass")
    unreachable: int = Field(0, ge=0, description="of them, those the master could not reach")


class MasterHealth(BaseModel):
    """A master's own report of its site, sent with its registration and each heartbeat; setup
    keeps the last one and answers it (``GET /masters``). Every field may be left out (the field's
    masters send none)."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )
    state: Literal["ok", "degraded", "error"] = Field(
        "ok", description="error: its last reconcile pass failed; degraded: an AI cannot run here"
    )
    pass_number: int | None = Field(
        None, alias="pass", ge=0, description="its last reconcile pass (counted since its start)"
    )
    pass_state: str | None = Field(None, description="that pass's state: ok, error, never run")
    error: str | None = Field(None, description="why that pass failed")
    clusters: dict[str, ClusterHealth] = Field(
        default_factory=dict, description="per cluster it serves (by name)"
    )
    registry: str | None = Field(None, description="its image registry (host:port)")
    site_problems: dict[str, str] = Field(
        default_factory=dict, description="AI id -> why this site cannot run it now"
    )


class MasterRegistration(BaseModel):
    """POST /masters/register: a master with the clusters it serves (the field's
    ``{name, ip, port, description}``, or ``url``, plus ``clusters`` and ``health``)."""

    name: str
    url: str
    description: str = ""
    clusters: list[str] = Field(default_factory=list)
    health: MasterHealth = Field(default_factory=MasterHealth)


class MasterHeartbeat(BaseModel):
    """POST /masters/{id}/heartbeat: the master is alive, with its health."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"health": {"state": "ok"}}]}
    )
    health: MasterHealth = Field(default_factory=MasterHealth)


class MasterRecord(BaseModel):
    """A master as setup answers it (GET /masters, the registration and heartbeat answers)."""

    id: int
    name: str
    url: str
    clusters: list[str] = Field(default_factory=list)
    state: str = "record"  # live, silent, record


class MasterPage(BaseModel):
    items: list[MasterRecord]


class ClusterPage(BaseModel):
    items: list[ClusterRecord]


# --- POST /deployments/observed -----------------------------------------------------------


class ObservedReport(BaseModel):
    """What runs, for one deployment (setup validates the request with this model too)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    observed: ObservedState
    reason: str | None = Field(None, max_length=4000)
    generation: int = Field(ge=0)
    restarts: int = Field(0, ge=0)


class ObservedReports(BaseModel):
    reports: list[ObservedReport] = Field(max_length=100_000)  # setup's limit per request


class ObservedRecorded(BaseModel):
    """Setup's answer: how many deployments' observed state changed."""

    updated: int


# --- POST /edges/{id}/workload-token --------------------------------------------------------


class EdgeToken(BaseModel):
    """A token of an edge's own, for the workloads the master runs there without an agent."""

    id: int
    nid: str
    token: str
    expires_at: float | None = None  # unix time


class EdgeCamera(BaseModel):
    """GET /edges/{id}/camera: the edge's camera URL with its credentials (a secret)."""

    id: int
    url: str | None


# --- the master's routes setup calls --------------------------------------------------------


class LeaseHolder(BaseModel):
    """Who holds a site's reconcile lease (shared.leases.Lease.holder)."""

    holder: str = Field(description="the master process (replica) that leads")
    acquired_at: str | None = Field(None, description="ISO 8601")
    expires_at: str | None = Field(None, description="ISO 8601")
    live: bool = Field(description="the lease has not expired")
    this_replica: bool = Field(description="the process answering holds it")


class ReconcileTriggered(BaseModel):
    """POST /reconcile (202): a pass is asked for; ``leader``: the process of this site that
    runs it, when it is another one."""

    status: Literal["triggered"] = "triggered"
    leader: LeaseHolder | None = None


class WorkloadPass(BaseModel):
    """One workload on an edge as the pass observed it."""

    name: str
    deployment_id: int | None
    state: WorkloadState
    version: str | None = None
    restarts: int = 0
    reason: str | None = None


class EdgePass(BaseModel):
    """One edge in a reconcile pass."""

    model_config = ConfigDict(extra="forbid")
    edge_id: int
    name: str
    cluster: str | None = None
    runtime: Runtime
    reachable: bool | None = None
    workloads: list[WorkloadPass] = Field(default_factory=list)
    error: str | None = Field(None, description="the edge could not be reached or observed")
    errors: list[str] = Field(default_factory=list, description="removals that failed")


class ReconcilePass(BaseModel):
    """POST /reconcile?wait=true (200): the summary of the pass it ran (GET /status: the last)."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )
    pass_number: int = Field(alias="pass", ge=1, description="passes since the master started")
    state: Literal["ok", "error"]
    error: str | None = Field(None, description="why the pass stopped")
    started_at: float = Field(description="unix time")
    finished_at: float = Field(description="unix time")
    duration_s: float
    clusters: list[str] = Field(default_factory=list, description="the clusters it served")
    edges: dict[str, EdgePass] = Field(default_factory=dict, description="by edge id")
    reported: int = Field(0, description="observed states reported to setup")
    deployments: int = Field(0, description="deployments in the snapshot")
    site_problems: dict[str, str] = Field(
        default_factory=dict, description="AI id -> why this site cannot run it now"
    )


class BuildStarted(BaseModel):
    """POST /ai-packages/{id}/build (202): queued, or already running."""

    id: int
    build: Literal["queued", "running"]


class BuildEnded(BaseModel):
    """POST /ai-packages/{id}/build?wait=true (200): the build has ended; setup's row."""

    id: int
    ai: AiPackageRecord


class AiRemoval(TypedDict):
    """POST /ai-packages/{id}/remove: what became of the AI's image and archive (``unknown``:
    setup does not know the AI; ``none``: it had none; ``kept: why``: left for an operator)."""

    id: int
    image: str
    artifact: str
