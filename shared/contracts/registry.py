"""Setup's registry as it answers it: an edge (GET/PATCH /edges/{edge}: ``EdgeOut``; its
registration, POST /edges: ``EdgeCreated``), a cluster (``ClusterOut``) and a master
(``MasterOut``); the lists are ``shared.pagination.Page`` of these. Setup answers with these
models, and the console reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.fleet import EdgeStatus
from shared.contracts.master import MasterHealth

# shared.contracts.master.Runtime's values; agent-pull: edge agents behind NAT (MQTT notices).
Runtime = Literal["agent", "agent-pull", "kubernetes", "docker"]


class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: float | None = Field(None, gt=0, le=1024, description="CPU cores")
    memory_mb: int | None = Field(None, gt=0, le=4_194_304)
    gpu: int | None = Field(None, ge=0, le=64)


class GpsOut(BaseModel):
    latitude: float
    longitude: float


class EdgeOut(BaseModel):
    id: int
    name: str
    nid: str
    cluster_id: int
    type: int
    gps: GpsOut | None
    address: str
    ip: str | None
    isSupportAnnalysis: Literal["YES", "NO"]
    url: str | None = Field(description="camera URL with credentials masked")
    description: str
    node_name: str | None
    agent_url: str | None
    capacity: Capacity
    time_zone: str | None = Field(description="null: the fleet default")
    device_login: str | None = Field(
        None, description="the login name its field devices report as `username`"
    )
    status: EdgeStatus
    created_at: datetime
    updated_at: datetime


class EdgeCreated(EdgeOut):
    token: str = Field(description="the edge's own token for the VMS; shown only once")


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


class MasterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    ip: str = Field("", description="the field's ip: the host of url")
    port: str = Field("", description='the field\'s port, as it sends it ("5000")')
    url: str
    description: str
    cluster_id: int | None
    created_at: datetime
    updated_at: datetime
    clusters: list[str] = Field(
        default_factory=list, description="names of the clusters it serves (its registration)"
    )
    last_seen_at: datetime | None = Field(
        None, description="its last registration or heartbeat; null: a record only"
    )
    state: Literal["live", "silent", "record"] = Field(
        "record",
        description="live: heard from within SETUP_MASTER_SILENT_AFTER_S; silent: not since; "
        "record: never registered itself",
    )
    health: MasterHealth | None = Field(
        None, description="its last report (registration or heartbeat); null: none yet"
    )

    @model_validator(mode="after")
    def _field_address(self) -> MasterOut:
        # The field's clients read ip and port; ours read url. Both say the same.
        parts = urlsplit(self.url)
        default = 443 if parts.scheme == "https" else 80
        self.ip = parts.hostname or ""
        self.port = str(parts.port or default)
        return self
