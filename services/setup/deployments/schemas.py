from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Desired = Literal["running", "removed"]
Observed = Literal["pending", "running", "failed", "removed"]
RequestedBy = Literal["operator", "optimizer", "service"]


class DeploymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    edge_id: int
    ai_id: int
    params: dict[str, Any] = Field(default_factory=dict, description="extra settings for the workload (env)")
    allow_multiple: bool = Field(False, description="allow more than one AI of this filename on the edge")
    decision_id: str | None = Field(None, max_length=64)


class DeploymentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ai_id: int | None = None
    params: dict[str, Any] | None = None
    decision_id: str | None = Field(None, max_length=64)


class DeploymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    edge_id: int
    ai_id: int
    filename: str
    desired: Desired
    params: dict[str, Any]
    allow_multiple: bool
    generation: int
    observed: Observed
    observed_reason: str | None
    observed_at: datetime | None
    observed_generation: int
    restarts: int
    requested_by: RequestedBy
    decision_id: str | None
    created_at: datetime
    updated_at: datetime


class ObservedReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    observed: Observed
    reason: str | None = Field(None, max_length=4000)
    generation: int = Field(ge=0)
    restarts: int = Field(0, ge=0)


class ObservedReports(BaseModel):
    reports: list[ObservedReport] = Field(max_length=100_000)


class CreateOp(DeploymentCreate):
    op: Literal["create"]


class UpdateOp(DeploymentUpdate):
    op: Literal["update"]
    id: int
    expected_generation: int | None = Field(None, description="refuse if the deployment changed meanwhile")
    redeploy: bool = Field(False, description="bump the generation even when nothing else changes (recovery)")


class RemoveOp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["remove"]
    id: int
    decision_id: str | None = Field(None, max_length=64)


class EdgeStatusOp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: Literal["edge_status"]
    edge_id: int
    status: Literal["active", "degraded"]


Operation = Annotated[Union[CreateOp, UpdateOp, RemoveOp, EdgeStatusOp], Field(discriminator="op")]


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requested_by: RequestedBy = "optimizer"
    operations: list[Operation] = Field(max_length=200_000)


class BulkResult(BaseModel):
    index: int
    op: str
    id: int
    generation: int | None = None


class BulkResponse(BaseModel):
    results: list[BulkResult]
