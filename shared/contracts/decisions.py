"""What the optimizer decides and sends: setup's POST /deployments/bulk (operations in, results
out, one transaction), and the names its decision log uses (policy, action, outcome). Setup
validates the request with these same models.

Also what the optimizer answers the console and ``edgectl`` about its decisions and switches: the
decision log (GET /decisions: ``DecisionPage``), the pause and dry-run switches (GET/PUT /control:
``ControlsOut``), pins (PUT /pins/{edge}: ``PinOut``), version rollouts (``RolloutOut``) and one
edge's explanation (GET /edges/{edge}/explain: ``EdgeExplained``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.fleet import EdgeStatus


class Policy(StrEnum):
    ENVIRONMENT = "environment"
    VERSION = "version"
    RECOVERY = "recovery"
    OVERLOAD = "overload"
    LOW_CONFIDENCE = "low_confidence"
    FOCUS = "focus"


class Action(StrEnum):
    SWITCH_VARIANT = "switch_variant"  # environment
    UPGRADE = "upgrade"  # version
    ROLLBACK = "rollback"
    ROLLOUT_STARTED = "rollout_started"
    ROLLOUT_WAVE = "rollout_wave"
    ROLLOUT_HALTED = "rollout_halted"
    ROLLOUT_COMPLETED = "rollout_completed"
    REDEPLOY = "redeploy"  # recovery
    MARK_DEGRADED = "mark_degraded"
    MARK_ACTIVE = "mark_active"
    HANDOFF_TO_EDGE = "handoff_to_edge"  # overload
    HANDOFF_TO_SERVER = "handoff_to_server"
    HAND_BACK = "hand_back"
    ROUTE_UP = "route_up"  # low confidence
    ROUTE_LOCAL = "route_local"
    FOCUS_ON = "focus_on"  # focus
    FOCUS_EXTEND = "focus_extend"
    FOCUS_OFF = "focus_off"


CHANGED_VIA_HEADER = "X-Changed-Via"  # which client an operator changed a setting from


class ChangedVia(StrEnum):
    """Where an operator's change came from (the header above; anything else counts as api)."""

    EDGECTL = "edgectl"
    CONSOLE = "console"
    API = "api"


class PolicyBlocker(StrEnum):
    """What silently keeps a policy from acting for one edge (explain names it)."""

    NO_GPS = "no_gps"  # overload finds it no helper, focus neither raises nor reaches it
    NO_ANALYSIS_SUPPORT = "no_analysis_support"  # overload never picks it as a helper
    NO_ANALYSIS_AI = "no_analysis_ai"  # nothing for overload, low confidence and focus to move
    MASTER_SILENT = "master_silent"  # its cluster's master is silent: no policy decides for it
    PINNED = "pinned"  # an operator froze it: no policy touches it


class Outcome(StrEnum):
    PENDING = "pending"  # sent; waiting for the observed state
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"  # no observed state within the outcome timeout
    SUPERSEDED = "superseded"  # a later decision (or an operator) changed the deployment
    APPLIED = "applied"  # nothing to observe (the optimizer's own tables, an edge status)
    DRY_RUN = "dry_run"  # nothing was sent
    REJECTED = "rejected"  # setup refused the bulk write


DecisionId = Annotated[str | None, Field(max_length=64)]


class CreateOp(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as setup takes it

    op: Literal["create"]
    edge_id: int
    ai_id: int
    params: dict[str, Any] = Field(
        default_factory=dict, description="extra settings for the workload (env)"
    )
    allow_multiple: bool = Field(
        False, description="allow more than one AI of this filename on the edge"
    )
    decision_id: DecisionId = None


class UpdateOp(BaseModel):
    """Only the fields that change; ``expected_generation`` makes setup refuse a stale write."""

    model_config = ConfigDict(extra="forbid")  # as setup takes it

    op: Literal["update"]
    id: int
    ai_id: int | None = None
    params: dict[str, Any] | None = None
    redeploy: bool | None = Field(
        None, description="bump the generation even when nothing else changes (recovery)"
    )
    expected_generation: int | None = Field(
        None, description="refuse if the deployment changed meanwhile"
    )
    decision_id: DecisionId = None


class RemoveOp(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as setup takes it

    op: Literal["remove"]
    id: int
    decision_id: DecisionId = None


class EdgeStatusOp(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as setup takes it

    op: Literal["edge_status"]
    edge_id: int
    status: EdgeStatus


BulkOperation = Annotated[CreateOp | UpdateOp | RemoveOp | EdgeStatusOp, Field(discriminator="op")]


def op_wire(op: BulkOperation) -> dict[str, Any]:
    """One operation as setup takes it (fields left unset are not sent)."""
    return op.model_dump(mode="json", exclude_none=True)


RequestedBy = Literal["operator", "optimizer", "service"]


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as setup takes it

    requested_by: RequestedBy = "optimizer"
    operations: list[BulkOperation] = Field(max_length=200_000)


class BulkResult(BaseModel):
    index: int
    op: str
    id: int  # the deployment (create, update, remove) or the edge (edge_status)
    generation: int | None = None


class BulkResponse(BaseModel):
    results: list[BulkResult]


# --- what the optimizer answers about its decisions and switches ------------------------------


class RolloutStatus(StrEnum):
    ACTIVE = "active"  # waves go on
    HALTED = "halted"  # too many of a wave failed: no new wave; failed members go back
    PAUSED = "paused"  # an operator paused it: no new wave until resumed; members keep theirs
    COMPLETED = "completed"  # every edge updated; stragglers follow without waves
    SUPERSEDED = "superseded"  # a newer version's rollout took over
    # An operator rolled it back: every member goes back to the version it ran before, and no
    # edge is upgraded again to this version (a newer version starts a rollout of its own).
    ROLLED_BACK = "rolled_back"


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    at: datetime
    cycle_id: str
    policy: Policy
    edge_id: int | None
    edge_name: str | None
    nid: str | None
    deployment_id: int | None
    action: Action
    reason: str
    inputs: dict[str, Any]
    operations: list[Any]
    dry_run: bool
    outcome: Outcome
    outcome_detail: str | None
    outcome_at: datetime | None


class DecisionPage(BaseModel):
    items: list[DecisionOut]
    total: int
    limit: int
    offset: int


class ControlsOut(BaseModel):
    paused: bool
    dry_run: bool
    leader: dict[str, Any] | None
    replica: str
    last_cycle: dict[str, Any] | None


class PinOut(BaseModel):
    edge_id: int
    edge_name: str | None = None
    reason: str
    created_at: datetime
    created_by: str


class RolloutOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    filename: str
    to_version: str
    status: RolloutStatus
    wave: int
    wave_started_at: datetime
    started_at: datetime
    members: dict[str, int]
    failed: list[int]


# --- GET /edges/{edge}/explain ----------------------------------------------------------------


class DeploymentExplained(BaseModel):
    id: int
    filename: str
    ai_id: int
    version: str | None
    ai_class: str | None
    params: dict[str, Any]
    generation: int
    observed: str
    observed_generation: int
    restarts: int
    decision_id: str | None
    decided_by: DecisionOut | None = None


class PolicyBlocked(BaseModel):
    blocker: PolicyBlocker
    policies: list[Policy] = Field(description="the policies it keeps from acting for the edge")
    reason: str


class EdgeExplained(BaseModel):
    edge_id: int
    name: str
    nid: str
    status: EdgeStatus
    pinned: bool
    blocked: list[PolicyBlocked] = Field(
        default_factory=list,
        description="what silently keeps policies from acting for it (no GPS, no analysis AI, "
        "master silent, pinned)",
    )
    node: dict[str, Any] | None
    routing: dict[str, Any] | None
    deployments: list[DeploymentExplained]
    recent_decisions: list[DecisionOut]
    memory: dict[str, Any]
