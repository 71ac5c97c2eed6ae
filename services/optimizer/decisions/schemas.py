from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.contracts.decisions import (
    DecisionOut,
    Policy,
    PolicyBlocker,
)
from shared.contracts.fleet import EdgeStatus


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
