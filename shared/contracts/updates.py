"""Updates that reach edges behind NAT: the notice the master publishes on MQTT, the desired set an
agent pulls from the master (``GET /edges/me/desired``) and the observed state it reports back
(``POST /edges/me/observed``). Both ends validate with these models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edge_common.vocabulary import WorkloadState

# The per-node topic: the broker's ACL lets an agent read only its own (deploy/mosquitto/acl).
TOPIC_PREFIX = "edge"


def notice_topic(nid: str, prefix: str = TOPIC_PREFIX) -> str:
    """``edge/<nid>/desired``: retained, QoS 1, written by the master only."""
    return f"{prefix}/{nid}/desired"


class UpdateNotice(BaseModel):
    """A small retained message: "your desired set is now ``tag``". No secrets, no workloads:
    the agent pulls the set itself, with its own token."""

    model_config = ConfigDict(extra="ignore")

    nid: str = Field(description="the edge this notice is for; an agent ignores any other")
    generation: int = Field(description="when this master first published this desired set (ns)")
    tag: str = Field(description="opaque: changes whenever the edge's desired set changes")
    sent_at: float = Field(description="the master's clock when it published (seconds)")
    spread_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="the agent waits a random share of this before it asks (so a fleet-wide "
        "update does not arrive at the master in one instant); 0: at once",
    )


class DesiredWorkload(BaseModel):
    """One workload, as the agent's ``PUT /workloads/{name}`` body (edge_ai.agent.schemas
    validates it further on the agent)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    package_digest: str
    version: str
    command: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    live: dict[str, Any] = Field(
        default_factory=dict, description="edge_common.vocabulary.LiveParams: taken hot"
    )
    # The cameras of the edges it helps (hot hand-off): without this field a pull agent never
    # got them, and a helper behind NAT had help_for but no camera to read.
    live_secrets: dict[str, Any] = Field(
        default_factory=dict, description="edge_common.vocabulary.LiveSecrets: taken hot"
    )
    edgeconfig_xml: str = ""
    deployment_id: int | None = None
    generation: int = 1
    ai_id: int | None = None
    filename: str | None = None
    ai_class: str | None = None


class DesiredSet(BaseModel):
    """``GET /edges/me/desired``: every workload the edge should run (anything else goes)."""

    nid: str
    tag: str
    generation: int
    workloads: list[DesiredWorkload]


class ObservedWorkloadReport(BaseModel):
    """One workload as the agent sees it (its ``GET /workloads`` entry, without env)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    state: WorkloadState
    deployment_id: int | None = None
    generation: int | None = None
    version: str | None = None
    package_digest: str | None = None
    reason: str | None = Field(None, max_length=8000)
    restarts: int = 0
    exit_code: int | None = None
    log_tail: list[str] = Field(default_factory=list, max_length=100)


class ObservedSet(BaseModel):
    """``POST /edges/me/observed``: what the agent runs, and which desired set it has applied."""

    applied_tag: str | None = Field(None, description="the tag of the desired set last applied")
    notice_sent_at: float | None = Field(
        None, description="sent_at of the notice that led to this apply (latency metric)"
    )
    error: str | None = Field(
        None,
        max_length=8000,
        description="why the last desired set could not be applied (the old workloads kept)",
    )
    architecture: str | None = Field(
        None,
        max_length=32,
        description="the node's CPU architecture (amd64, arm64: platform.machine() in the "
        "platform's names); the master refuses it a package whose native code is for others",
    )
    workloads: list[ObservedWorkloadReport] = Field(default_factory=list, max_length=1000)
    patch_apply_seconds: list[float] = Field(
        default_factory=list,
        max_length=1000,
        description="how long each binary patch applied since the last report took",
    )
