"""What the console's JSON API answers its pages: the views it merges from the services (the
fleet, one edge, the AI packages, the registry, the settings), built from the services' own
contracts (shared.contracts), so each route has its schema in the console's OpenAPI document.

A service that does not answer leaves its part empty and is named in ``problems``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from shared.contracts.decisions import EdgeExplained, PinOut, RolloutOut
from shared.contracts.deployments import DeploymentOut
from shared.contracts.fleet import EdgeStatus, FleetConditions, ObservedState
from shared.contracts.master import AiPackageRecord
from shared.contracts.policies import AnyPolicyOut, PolicyChangeOut
from shared.contracts.registry import ClusterOut, EdgeOut, MasterOut
from shared.contracts.routing import EdgeRouting


class Problem(BaseModel):
    """A service the view could not ask, and why."""

    service: str = Field(description="setup, master, optimizer, vms or analysis")
    message: str


class EdgeState(StrEnum):
    """What colours an edge on the map; ``FleetView.states`` lists them in the order in which
    they win (the first that holds)."""

    STALE = "stale"  # the VMS has not heard from it lately (or does not know it)
    DEGRADED = "degraded"  # recovery gave up on it
    OVERLOADED = "overloaded"  # its cpu or memory above the overload policy's thresholds
    HELPED = "helped"  # its analysis runs elsewhere
    FOCUSED = "focused"  # an AI of it in focus mode
    ONLINE = "online"


class FleetAi(BaseModel):
    """One AI an edge should run."""

    deployment_id: int
    filename: str
    version: str | None = Field(description="null: the package is not in setup's snapshot")
    ai_class: str | None
    observed: ObservedState
    restarts: int


class FleetRow(BaseModel):
    """One edge on the fleet page."""

    id: int
    name: str
    nid: str
    latitude: float | None
    longitude: float | None
    status: EdgeStatus
    condition: str | None = Field(description="the VMS's last environment condition")
    last_seen: str | None = Field(description="ISO 8601; the VMS's")
    cpu: float | None = Field(description="percent, the last usage report")
    memory: float | None
    pinned: bool
    routing: EdgeRouting | None = Field(description="set while its analysis or frames leave it")
    state: EdgeState = Field(description="the first of states")
    states: list[EdgeState]
    ais: list[FleetAi]


class FleetView(BaseModel):
    """GET /api/fleet (and the ``fleet`` event)."""

    edges: list[FleetRow]
    states: list[EdgeState] = Field(description="every state, in the order in which they win")
    problems: list[Problem]


class EdgeView(BaseModel):
    """GET /api/edges/{id} (and the ``edge`` event): setup's edge, with what the others say."""

    edge: EdgeOut
    deployments: list[DeploymentOut]
    explain: EdgeExplained | None
    routing: EdgeRouting | None
    pin: PinOut | None = Field(description="null: not pinned")
    ai_packages: list[AiPackageRecord] = Field(description="the ready ones: what it could run")
    problems: list[Problem]


class PackagesView(BaseModel):
    """GET /api/ai-packages (and the ``packages`` event)."""

    items: list[AiPackageRecord]
    rollouts: list[RolloutOut]
    problems: list[Problem]


class RegistryView(BaseModel):
    """GET /api/registry."""

    edges: list[EdgeOut]
    clusters: list[ClusterOut]
    masters: list[MasterOut]
    problems: list[Problem]


class SettingsView(BaseModel):
    """GET /api/settings."""

    conditions: FleetConditions | None = Field(description="null: setup did not answer")
    policies: list[AnyPolicyOut]
    changes: list[PolicyChangeOut]
    problems: list[Problem]


# --- the live view's events (GET /api/nodes/{nid}/live) --------------------------------------


class LiveFrame(BaseModel):
    """Event ``frame``: the edge's camera with its boxes drawn."""

    seq: int = Field(description="the VMS's sequence number")
    edge_seq: int = Field(description="the edge's own counter (drawn on the frame)")
    jpeg: str = Field(description="the JPEG, base64")


class LiveState(StrEnum):
    WAITING = "waiting"  # the edge is asked; no frame yet
    UNREACHABLE = "unreachable"  # the master or the VMS could not be asked
    CAMERA_DOWN = "camera_down"  # the edge says why it sends no frame
    NO_FRAMES = "no_frames"  # nothing came for a while


class LiveStatus(BaseModel):
    """Event ``status``: why no frame shows."""

    state: LiveState
    detail: str
