from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.decisions import Action, Outcome, Policy, PolicyBlocker
from shared.contracts.fleet import EdgeStatus


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
