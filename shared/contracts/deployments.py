"""One deployment (an AI on an edge) as setup's ``/deployments`` takes and answers it, and as
the master's pass-through (``POST/PATCH/DELETE /deployments`` on the master) forwards it: the
same models at both ends, and in both OpenAPI documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.decisions import DecisionId, RequestedBy
from shared.contracts.fleet import DesiredState, ObservedState


class DeploymentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"edge_id": 1, "ai_id": 1}]},
    )
    edge_id: int
    ai_id: int
    params: dict[str, Any] = Field(
        default_factory=dict, description="extra settings for the workload (env)"
    )
    allow_multiple: bool = Field(
        False, description="allow more than one AI of this filename on the edge"
    )
    decision_id: DecisionId = None


class DeploymentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ai_id: int | None = None
    params: dict[str, Any] | None = None
    decision_id: DecisionId = None


class DeploymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    edge_id: int
    ai_id: int
    filename: str
    desired: DesiredState
    params: dict[str, Any]
    allow_multiple: bool
    generation: int
    observed: ObservedState
    observed_reason: str | None
    observed_at: datetime | None
    observed_generation: int
    restarts: int
    requested_by: RequestedBy
    decision_id: str | None
    created_at: datetime
    updated_at: datetime
