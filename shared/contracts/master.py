"""What the master reads from setup and what it writes back: the fleet snapshot it reconciles
against (GET /fleet/snapshot), the AI package record (GET /ai-packages/{id}), the clusters
(GET /clusters), the observed reports it posts (POST /deployments/observed) and the events it
sends the optimizer (POST /events).

The states are setup's; their names and values are those of setup's schemas. The snapshot's
rows are TypedDicts (validated once per pass; a reconcile pass at 100,000 edges reads them as
dicts, not model objects); the small answers are pydantic models.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict


class PackageStatus(StrEnum):
    """An AI package's row in setup, as the master's build moves it along."""

    UPLOADED = "uploaded"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    REMOVED = "removed"


class DesiredState(StrEnum):
    RUNNING = "running"
    REMOVED = "removed"


class ObservedState(StrEnum):
    """What setup records of a deployment (a runtime's "restarting" is reported as pending)."""

    PENDING = "pending"
    RUNNING = "running"
    FAILED = "failed"
    REMOVED = "removed"


class Runtime(StrEnum):
    """How the master runs AIs on a cluster's edges (setup's clusters.runtime)."""

    AGENT = "agent"
    KUBERNETES = "kubernetes"
    DOCKER = "docker"


# --- GET /fleet/snapshot (the columns the master reads) -----------------------------------


class FleetEdge(TypedDict):
    id: int
    name: str
    nid: str
    cluster_id: int | None
    node_name: NotRequired[str | None]
    agent_url: NotRequired[str | None]


class FleetPackage(TypedDict):
    id: int
    filename: str
    version: str
    ai_class: str
    status: PackageStatus
    package_digest: NotRequired[str | None]
    image_ref: NotRequired[str | None]


class FleetDeployment(TypedDict):
    id: int
    edge_id: int
    ai_id: int
    desired: DesiredState
    params: dict[str, Any]
    generation: int
    observed: ObservedState
    observed_generation: int
    restarts: int
    observed_reason: NotRequired[str | None]


class FleetSnapshot(TypedDict):
    edges: list[FleetEdge]
    ai_packages: list[FleetPackage]
    deployments: list[FleetDeployment]


FLEET_SNAPSHOT: TypeAdapter[FleetSnapshot] = TypeAdapter(FleetSnapshot)


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


class ClusterPage(BaseModel):
    items: list[ClusterRecord]


# --- POST /deployments/observed -----------------------------------------------------------


class ObservedReport(BaseModel):
    """What runs, for one deployment; setup's ObservedReport."""

    model_config = ConfigDict(extra="forbid")

    id: int
    observed: ObservedState
    reason: str | None = Field(None, max_length=4000)
    generation: int = Field(ge=0)
    restarts: int = Field(0, ge=0)


class ObservedReports(BaseModel):
    reports: list[ObservedReport]


# --- POST /events on the optimizer ----------------------------------------------------------


class MasterEventType(StrEnum):
    AI_READY = "ai_ready"  # an AI package's image is built
    DEPLOYMENT_FAILED = "deployment_failed"  # a deployment was observed failed


class MasterEvent(BaseModel):
    """An event the master sends the optimizer (a reason to decide soon)."""

    type: MasterEventType
    edge_id: int | None = None
    ai_id: int | None = None
    deployment_id: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)
