from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.registry import Runtime

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class ClusterCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "lab",
                    "description": "the lab's edges",
                    "runtime": "agent",
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=2000)
    runtime: Runtime = Field("agent", description="how the master runs AIs on this cluster's edges")
    namespace: str = Field(
        "edge-ai", pattern=DNS_LABEL, description="Kubernetes namespace for AI workloads"
    )


class ClusterUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"description": "the lab's edges, building B"}]},
    )
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)
    runtime: Runtime | None = None
    namespace: str | None = Field(None, pattern=DNS_LABEL)
