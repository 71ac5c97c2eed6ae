"""Setup's fleet snapshot (GET /fleet/snapshot): edges, AI packages, live deployments, the
condition mapping and the database clock. Read by the optimizer on every cycle.

The answer is tens of MB at 100,000 edges, built as JSON by Postgres; readers parse it with
orjson into these TypedDicts (building model objects would triple the parse time).
``FLEET_SNAPSHOT.validate_json`` checks an answer fully (the contract tests do, against the
running service). Times are ISO 8601 text, as on the wire.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NotRequired

from pydantic import BaseModel, Field, TypeAdapter
from typing_extensions import TypedDict

# The deployment states are the edge's vocabulary (edge_common.vocabulary), named here too.
from edge_common.vocabulary import DesiredState, ObservedState

__all__ = [
    "CONDITIONS",
    "FLEET_SNAPSHOT",
    "DesiredState",
    "EdgeStatus",
    "FleetConditions",
    "FleetDeployment",
    "FleetEdge",
    "FleetPackage",
    "FleetSnapshot",
    "ObservedState",
    "PackageStatus",
]


class EdgeStatus(StrEnum):
    ACTIVE = "active"
    DEGRADED = "degraded"  # recovery gave up on it: overload moves its analysis away


class PackageStatus(StrEnum):
    UPLOADED = "uploaded"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    REMOVED = "removed"


class FleetEdge(TypedDict):
    id: int
    name: str
    nid: str
    cluster_id: int | None
    latitude: float | None
    longitude: float | None
    supports_analysis: bool
    status: EdgeStatus
    capacity_cpu: NotRequired[float | None]
    capacity_memory_mb: NotRequired[int | None]
    capacity_gpu: NotRequired[int | None]
    node_name: NotRequired[str | None]
    agent_url: NotRequired[str | None]
    # Its cluster's registered master has not been heard from lately (setup's
    # SETUP_MASTER_SILENT_AFTER_S): nothing converges there; the optimizer leaves it be.
    master_silent: NotRequired[bool]


class FleetPackage(TypedDict):
    id: int
    filename: str
    version: str
    version_key: str
    ai_class: str
    condition: str | None
    status: PackageStatus
    package_digest: NotRequired[str | None]
    image_ref: NotRequired[str | None]


class FleetDeployment(TypedDict):
    id: int
    edge_id: int
    ai_id: int
    filename: str
    desired: DesiredState
    params: dict[str, Any]
    allow_multiple: bool
    generation: int
    observed: ObservedState
    observed_generation: int
    restarts: int
    decision_id: str | None
    observed_reason: NotRequired[str | None]
    observed_at: NotRequired[str | None]
    requested_by: NotRequired[str]


class FleetConditions(TypedDict):
    """Setup's condition mapping as the snapshot and ``GET /conditions`` answer it (setup's own
    model of the route, ``ConditionMapping``, adds the checks of a change)."""

    codes: dict[str, str]  # environment AI result code -> condition
    ai_classes: dict[str, str]  # condition -> ai_class


class FleetSnapshot(TypedDict):
    """The whole answer; with ``?since=``, only the rows changed after it, removed AIs and
    deployments included, and ``edge_ids``: every current edge id (a mirror drops the others)."""

    edges: list[FleetEdge]
    ai_packages: list[FleetPackage]
    deployments: list[FleetDeployment]
    conditions: FleetConditions
    generated_at: str  # the database clock when the snapshot was read
    edge_ids: NotRequired[list[int]]  # only in ?since= answers
    # Clusters whose registered master is silent (in every answer, ?since= ones included).
    silent_cluster_ids: NotRequired[list[int]]


FLEET_SNAPSHOT: TypeAdapter[FleetSnapshot] = TypeAdapter(FleetSnapshot)
CONDITIONS: TypeAdapter[FleetConditions] = TypeAdapter(FleetConditions)


class NodeIds(BaseModel):
    """Setup's ``GET /edges/node-ids``, read by the VMS: every registered node id, each edge's
    name -> node id, and the edges' own time zones (node id -> IANA name) where set."""

    items: list[str]
    names: dict[str, str] = Field(default_factory=dict)
    time_zones: dict[str, str] = Field(default_factory=dict)
    # A field device's login name (an edge's device_login) -> the edge's node id.
    device_logins: dict[str, str] = Field(default_factory=dict)
