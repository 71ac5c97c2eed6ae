"""What the optimizer decides and sends: setup's POST /deployments/bulk (operations in, results
out, one transaction), and the names its decision log uses (policy, action, outcome). Setup
validates the request with these same models."""

from __future__ import annotations

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
