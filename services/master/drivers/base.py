"""The runtime driver interface: what the master's reconcile loop asks of Kubernetes, Docker or an
edge agent.

A driver is told the desired workload (``apply``), told to take one away (``remove``) and asked
what runs on an edge (``observe``). Every call is idempotent: applying what already runs, or
removing what is already gone, succeeds. Failures come out as one of two classes so the caller
knows whether to retry on its next pass (``DriverUnavailable``) or to record the failure
(``DriverError``).
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

# What a runtime reports of one workload: the edge's vocabulary, named here for the drivers.
from edge_common.vocabulary import WorkloadState
from shared.contracts.live_view import LiveViewRequest

__all__ = [
    "AiArtifact",
    "DriverError",
    "DriverUnavailable",
    "EdgeTarget",
    "ObservedWorkload",
    "RuntimeDriver",
    "RuntimeDriverFailure",
    "Workload",
    "WorkloadState",
    "dns_label",
    "label_value",
    "render_edgeconfig",
    "workload_name",
]


class RuntimeDriverFailure(Exception):
    """Base of the two failure classes a driver raises."""

    retryable = False


class DriverError(RuntimeDriverFailure):
    """The runtime refused the request for good (bad spec, forbidden, invalid object): record it,
    do not retry as is."""


class DriverUnavailable(RuntimeDriverFailure):
    """The runtime could not be reached or was overloaded: retry on the next pass."""

    retryable = True


@dataclass(frozen=True)
class EdgeTarget:
    """Where a workload runs: the edge as setup knows it."""

    name: str
    nid: str
    node_name: str | None = (
        None  # Kubernetes node (or Docker host label); defaults to the edge name
    )
    agent_url: str | None = None  # the edge agent's base URL (agent driver)
    id: int | None = None

    @property
    def node(self) -> str:
        return self.node_name or self.name


@dataclass(frozen=True)
class AiArtifact:
    """The AI package a workload runs: the package by digest (agent) or its image (kubernetes,
    docker)."""

    id: int
    filename: str
    version: str
    ai_class: str
    package_digest: str | None = None  # "sha256:<hex>"
    image_ref: str | None = None  # "{registry}/{filename}-{ai_class}:{version}"
    # The manifest's: the architectures its native wheels are for (agent path; empty: any).
    architectures: tuple[str, ...] = ()
    native_code: bool = False


@dataclass
class Workload:
    """One desired deployment as the master hands it to a driver."""

    deployment_id: int
    edge: EdgeTarget
    ai: AiArtifact
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(
        default_factory=dict
    )  # manifest env + deployment params, as strings
    resources: dict[str, Any] = field(default_factory=dict)  # the manifest's resources
    edgeconfig_xml: str = ""
    generation: int = 1
    # Values that are secrets (the camera's RTSP URL with credentials): a Kubernetes Secret, never a
    # plain value in the Deployment. The program sees them as environment variables all the same.
    secret_env: dict[str, str] = field(default_factory=dict)
    # The deployment params the program picks up while it runs (routing, hand-off, focus): the agent
    # writes them to the program's live file instead of restarting it. Also in ``env``, for the
    # runtimes that deliver them as environment variables.
    live: dict[str, Any] = field(default_factory=dict)
    # The program takes hand-offs hot (the manifest's ``hot_handoff``): it is given a live secrets
    # file (``EDGE_LIVE_SECRETS_FILE``, JSON of ``live_secrets``) that changes without a restart,
    # holding the cameras of the edges it helps (``{"help_sources": {nid: url}}``). Neither counts
    # in ``spec_hash``.
    hot_handoff: bool = False
    live_secrets: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return workload_name(self.ai.filename, self.ai.ai_class)

    @property
    def static_env(self) -> dict[str, str]:
        """``env`` without the live params: what the program reads once, at start. Runtimes that
        deliver live params through a file (Kubernetes, Docker) put only this in the spec."""
        return {k: v for k, v in self.env.items() if k not in self.live}

    def spec_hash(self) -> str:
        """Changes whenever anything the running program sees changes (so a replace is due)."""
        h = hashlib.sha256()
        for part in (
            self.ai.package_digest or "",
            self.ai.image_ref or "",
            "\0".join(self.command),
            # Live params are left out: a routing or focus change must not replace the program.
            "\0".join(f"{k}={v}" for k, v in sorted(self.static_env.items())),
            repr(sorted(self.resources.items())),
            self.edgeconfig_xml,
            # Secrets count through their hash only: the hash lands in an annotation.
            hashlib.sha256(repr(sorted(self.secret_env.items())).encode()).hexdigest(),
        ):
            h.update(part.encode())
            h.update(b"\x1e")
        return h.hexdigest()[:16]


@dataclass
class ObservedWorkload:
    """What a runtime reports for one workload on an edge."""

    deployment_id: int | None
    name: str
    state: WorkloadState
    reason: str | None = None
    restarts: int = 0
    version: str | None = None
    exit_code: int | None = None
    log_tail: list[str] = field(default_factory=list)
    generation: int | None = None


class RuntimeDriver(ABC):
    """One runtime (kubernetes, docker, agent). Implementations never block the event loop."""

    kind: str = "runtime"

    async def request_live_view(self, edge: EdgeTarget, request: LiveViewRequest) -> None:
        """Pass a live-view request to the edge over the connection this runtime holds (the
        agent's API, the pull agent's MQTT topic); a runtime without one refuses."""
        raise DriverError(f"the {self.kind} runtime carries no live-view request to an edge")

    @abstractmethod
    async def apply(self, workload: Workload) -> None:
        """Make the workload run as given; a changed version or config replaces the running one,
        the new instance started before the old one goes."""

    @abstractmethod
    async def remove(self, edge: EdgeTarget, name: str) -> None:
        """Stop and delete the workload ``name`` on ``edge``; already gone is success."""

    @abstractmethod
    async def observe(self, edge: EdgeTarget) -> list[ObservedWorkload]:
        """Every workload this platform runs on ``edge``, with its state."""

    async def commit(  # noqa: B027 - optional hook
        self, edge: EdgeTarget, *, waiting: bool = False
    ) -> None:
        """The edge's changes of this pass are all handed over (applies and removes). The
        agent-pull runtime publishes them here; the others apply as they go. ``waiting``: some of
        the edge's deployments wait (their AI building): what runs for them must stay."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""


def workload_name(filename: str, ai_class: str) -> str:
    """The field's name for an AI on an edge: ``{filename}-{ai_class}`` (e.g. ``monitoring-01``)."""
    return f"{filename}-{ai_class}"


_DNS_LABEL_BAD = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def dns_label(value: str, *, max_len: int = 63) -> str:
    """A DNS-1123 label (Kubernetes object and container names); long or mangled names get a hash
    suffix so two different inputs never collide."""
    cleaned = _DNS_LABEL_BAD.sub("-", value.lower()).strip("-") or "x"
    if cleaned == value and len(cleaned) <= max_len:
        return cleaned
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{cleaned[: max_len - 9].rstrip('-')}-{digest}"


def label_value(value: object) -> str:
    """A valid Kubernetes/Docker label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric
    at both ends."""
    text = _LABEL_VALUE_BAD.sub("_", str(value))
    text = text.strip("._-")
    if len(text) > 63:
        text = text[:54].rstrip("._-") + "_" + hashlib.sha256(str(value).encode()).hexdigest()[:8]
    return text


def render_edgeconfig(
    *,
    vms_ip: str,
    vms_port: int | str,
    vms_path: str = "usage",
    nid: str | None = None,
    token: str | None = None,
    analysis_url: str | None = None,
) -> str:
    """The field's ``edgeconfig.xml``: the VMS address, optionally the node id/token and the
    analysis server."""
    lines = [
        "<Configuration>",
        "    <vms>",
        f"        <IP>{escape(str(vms_ip))}</IP>",
        f"        <Port>{escape(str(vms_port))}</Port>",
        f"        <Path>{escape(vms_path)}</Path>",
        "    </vms>",
    ]
    if nid is not None or token is not None:
        lines.append("    <node>")
        if nid is not None:
            lines.append(f"        <NID>{escape(nid)}</NID>")
        if token is not None:
            lines.append(f"        <Token>{escape(token)}</Token>")
        lines.append("    </node>")
    if analysis_url:
        lines += ["    <analysis>", f"        <URL>{escape(analysis_url)}</URL>", "    </analysis>"]
    lines.append("</Configuration>")
    return "\n".join(lines) + "\n"
