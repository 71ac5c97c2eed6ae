"""The agent API's payloads."""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from edge_common.vocabulary import WorkloadState

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class WorkloadSpec(BaseModel):
    """One workload the master wants on this node."""

    name: str = Field(description="the field's `{filename}-{ai_class}`, unique on the node")
    package_digest: str = Field(
        description="sha256:<hex> of the package archive, fetched from the master"
    )
    version: str
    command: list[str] = Field(
        min_length=1,
        description="argv; a leading python/python3 runs under the agent's interpreter",
    )
    env: dict[str, str] = Field(default_factory=dict)
    edgeconfig_xml: str = ""
    deployment_id: int | None = None
    generation: int = 1
    ai_id: int | None = None
    filename: str | None = None
    ai_class: str | None = None
    live: dict[str, Any] = Field(
        default_factory=dict,
        description="settings the running program picks up hot (routing, hand-off, focus): "
        "written to the file named by EDGE_LIVE_FILE, never a restart",
    )
    live_secrets: dict[str, Any] = Field(
        default_factory=dict,
        description="secret settings the running program picks up hot (the cameras of the edges "
        "it helps, with their credentials): written as JSON to a 0600 file named by "
        "EDGE_LIVE_SECRETS_FILE, never a restart, never in an answer or a log",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(
                "use letters, digits, '.', '_' and '-' (at "
                "most 127), starting with a letter or digit"
            )
        return v

    @field_validator("package_digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        if not DIGEST.match(v):
            raise ValueError("must be sha256:<64 lowercase hex digits>")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("not a version")
        return v

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, v):
        return shlex.split(v) if isinstance(v, str) else v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not an environment variable name")
        return v

    def fingerprint(self) -> tuple:
        """What the running process sees at start: a change here means start a new instance
        (``live`` is not part of it: the program re-reads its live file)."""
        return (
            self.package_digest,
            self.version,
            tuple(self.command),
            tuple(sorted(self.env.items())),
            self.edgeconfig_xml,
        )


class DesiredSet(BaseModel):
    """The full set of workloads for this node: anything not listed is stopped and removed."""

    workloads: list[WorkloadSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> DesiredSet:
        seen: set[str] = set()
        for i, w in enumerate(self.workloads):
            if w.name in seen:
                raise ValueError(f"workloads[{i}].name {w.name!r} appears twice")
            seen.add(w.name)
        return self


class PreviousInstance(BaseModel):
    version: str
    pid: int | None
    state: WorkloadState


class WorkloadStatus(BaseModel):
    name: str
    deployment_id: int | None
    generation: int
    version: str
    package_digest: str
    state: WorkloadState
    reason: str | None = None
    restarts: int = 0
    exit_code: int | None = None
    pid: int | None = None
    started_at: float | None = None
    log_tail: list[str] = Field(default_factory=list)
    live: dict[str, Any] = Field(default_factory=dict, description="the live settings last written")
    previous: list[PreviousInstance] = Field(
        default_factory=list, description="older versions still running until this one is up"
    )


class WorkloadList(BaseModel):
    node: str
    architecture: str | None = Field(
        None,
        description="the node's CPU architecture (amd64, arm64: platform.machine() in the "
        "platform's names); the master refuses it a package whose native code is for others",
    )
    workloads: list[WorkloadStatus]


class LogTail(BaseModel):
    name: str
    lines: list[str]


class Heartbeat(BaseModel):
    node: str
    agent_version: str
    architecture: str = Field(description="the node's CPU architecture (amd64, arm64)")
    agent_uptime_s: float
    boot_time: float
    node_uptime_s: float
    cpu_percent: float
    cpu_count: int
    load_avg: list[float]
    memory_total_bytes: int
    memory_available_bytes: int
    memory_percent: float
    disk_free_bytes: int
    workloads: dict[str, int]
    ts: float
