from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# shared.contracts.master.Runtime's values; agent-pull: edge agents behind NAT (MQTT notices).
Runtime = Literal["agent", "agent-pull", "kubernetes", "docker"]
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


class ClusterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str
    runtime: Runtime
    namespace: str
    created_at: datetime
    updated_at: datetime
    master_id: int | None = Field(None, description="the master that registered as serving it")
    master_name: str | None = None
    master_last_seen_at: datetime | None = Field(
        None, description="that master's last registration or heartbeat"
    )
    master_state: Literal["none", "live", "silent"] = Field(
        "none",
        description="none: no master registered for it (the default master, EDGE_MASTER_URL, is "
        "asked); live; silent: not heard from within SETUP_MASTER_SILENT_AFTER_S (its edges are "
        "marked master_silent)",
    )
