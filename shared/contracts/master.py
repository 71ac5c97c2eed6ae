"""What the master reads from setup and what it writes back, beside the fleet snapshot it
reconciles against (shared.contracts.fleet) and the events it sends the optimizer
(shared.contracts.events): the AI package record and its creation and changes (GET/POST/PATCH
/ai-packages: ``AiPackageRecord``, ``AiPackageNew``, ``AiPackageChange``), the clusters
(GET /clusters), the observed reports it posts (POST /deployments/observed) and the token of the
workloads it runs without an agent (POST /edges/{id}/workload-token).

The states are setup's (shared.contracts.fleet); the field names are those of setup's schemas.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class MasterRegistration(BaseModel):
    """POST /masters/register: a master with the clusters it serves (the field's
    ``{name, ip, port, description}``, or ``url``, plus ``clusters`` and ``health``)."""

    name: str
    url: str
    description: str = ""
    clusters: list[str] = Field(default_factory=list)
    health: dict[str, Any] = Field(default_factory=dict)


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


# --- POST /edges/{id}/workload-token --------------------------------------------------------


class EdgeToken(BaseModel):
    """A token of an edge's own, for the workloads the master runs there without an agent."""

    id: int
    nid: str
    token: str
    expires_at: float | None = None  # unix time
