"""The agent driver: the edge agent on each plain edge box, over HTTP(S).

Each agent is called with its own key (``key_for(edge)``, shared.agent_keys), never with a
credential another agent or a service would accept; only to an http(s) URL whose host is on the
allowed networks (shared.agent_urls, checked before every call); over https the agent's
certificate is verified (``verify``: True for the system CAs, or a CA bundle, EDGE_AGENT_CA_FILE).

An agent is not a platform service, but it is called through the same client layer
(shared.service_client): transport failures and error answers are mapped once, then sorted into
the driver's two classes (retry on the next pass, or record the failure).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import ValidationError

from services.master.drivers.base import (
    DriverError,
    DriverUnavailable,
    EdgeTarget,
    ObservedWorkload,
    RuntimeDriver,
    Workload,
)
from shared.agent_urls import Network, parse_networks, resolve_and_check
from shared.contracts.live_view import LiveViewRequest
from shared.contracts.updates import DesiredWorkload, ObservedWorkloadReport
from shared.errors import DomainError, Unavailable
from shared.service_client import ServiceClient, domain_error_for
from shared.settings import DEFAULT_AGENT_NETWORKS

# Every error answer comes back to the driver, which sorts it (any 5xx is worth a retry).
_ERROR_ANSWERS = tuple(range(400, 600))


def agent_spec(workload: Workload) -> DesiredWorkload:
    """The body of the agent's ``PUT /workloads/{name}`` (and an entry of a pull agent's desired
    set)."""
    if not workload.ai.package_digest:
        raise DriverError(
            f"AI {workload.ai.id} has no package digest: nothing for the agent to fetch"
        )
    if not workload.command:
        raise DriverError(f"AI {workload.ai.id} has no command in its manifest")
    return DesiredWorkload(
        name=workload.name,
        package_digest=workload.ai.package_digest,
        version=workload.ai.version,
        command=list(workload.command),
        # The agent keeps env out of its answers and its state file is 0600: secrets travel as env.
        # Live params go as ``live`` only: a change reaches the running program without a restart.
        env={
            k: str(v)
            for k, v in {**workload.env, **workload.secret_env}.items()
            if k not in workload.live
        },
        live=workload.live,
        # The cameras of the edges it helps: the agent writes them to a 0600 file the program
        # re-reads (hot hand-off), never into an answer.
        live_secrets=workload.live_secrets,
        edgeconfig_xml=workload.edgeconfig_xml,
        deployment_id=workload.deployment_id,
        generation=workload.generation,
        ai_id=workload.ai.id,
        filename=workload.ai.filename,
        ai_class=workload.ai.ai_class,
    )


def check_architecture(workload: Workload, edge_architecture: str | None) -> None:
    """DriverError when the workload's package has wheels for some architectures only (native
    code: its manifest's ``architectures``) and the edge's agent reports another one. An agent
    that reports none (older than this check) is let through: pip on the box decides."""
    ai = workload.ai
    if not ai.architectures or edge_architecture is None:
        return
    if edge_architecture in ai.architectures:
        return
    what = "native code" if ai.native_code else "wheels"
    raise DriverError(
        f"AI {ai.id} ({ai.filename}-{ai.ai_class} {ai.version}) carries {what} for "
        f"{', '.join(ai.architectures)} only and edge {workload.edge.name} is "
        f"{edge_architecture}: pack its wheels for {edge_architecture} too (edgectl ai pack "
        f"--platform linux/{edge_architecture}) and upload that as a new version"
    )


def observed_workload(report: ObservedWorkloadReport) -> ObservedWorkload:
    """One workload as the agent reports it (an entry of its ``GET /workloads``, or of a pull
    agent's observed set)."""
    return ObservedWorkload(
        deployment_id=report.deployment_id,
        name=report.name,
        state=report.state,
        reason=report.reason,
        restarts=report.restarts,
        version=report.version,
        exit_code=report.exit_code,
        log_tail=report.log_tail,
        generation=report.generation,
    )


class AgentDriver(RuntimeDriver):
    kind = "agent"

    def __init__(
        self,
        *,
        key_for: Callable[[EdgeTarget], str] | None = None,
        service_token: str | None = None,
        timeout_s: float = 10.0,
        apply_timeout_s: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
        allowed_networks: list[Network] | None = None,
        ca_file: str | None = None,
    ):
        """``key_for``: each agent's key; ``service_token``: one bearer for every agent (tests,
        agents of old deployments)."""
        if key_for is None:
            if service_token is None:
                raise ValueError("an agent driver needs key_for or service_token")
            token = service_token
            key_for = lambda _edge: token  # noqa: E731
        self.key_for = key_for
        if allowed_networks is None:
            allowed_networks = parse_networks(DEFAULT_AGENT_NETWORKS)
        self.allowed_networks = allowed_networks
        verify: ssl.SSLContext | bool = True
        if ca_file:
            verify = ssl.create_default_context(cafile=ca_file)
        # Agents have no common address and no common key: every call names its agent's full URL
        # and carries that agent's key.
        self._client = ServiceClient(
            "agent", "", token=None, timeout=timeout_s, transport=transport, verify=verify
        )
        # apply waits while the agent fetches and unpacks the package: a large model over a
        # weak link.
        self._apply_timeout = httpx.Timeout(apply_timeout_s, connect=5.0)
        # Each agent's architecture as its last answer to observe gave it (by nid).
        self.architectures: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    @staticmethod
    def _base(edge: EdgeTarget) -> str:
        if not edge.agent_url:
            raise DriverError(
                f"edge {edge.name} has no agent_url: register the edge with its agent's address"
            )
        return edge.agent_url.rstrip("/")

    async def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        edge: EdgeTarget,
        ok_404: bool = False,
        **kw: Any,
    ) -> httpx.Response | None:
        try:
            await resolve_and_check(url, self.allowed_networks)
        except ValueError as exc:
            raise DriverError(f"{what}: agent_url refused: {exc}") from exc
        headers = {"Authorization": f"Bearer {self.key_for(edge)}"}
        try:
            response = await self._client.request(
                method, url, what=what, headers=headers, allow=_ERROR_ANSWERS, **kw
            )
        except httpx.InvalidURL as exc:  # an agent_url setup stored but no request can be made to
            raise DriverError(f"{what}: the edge's agent_url is not a usable URL ({exc})") from exc
        except DomainError as exc:  # the agent could not be reached
            raise DriverUnavailable(exc.message) from exc
        if response.status_code == 404 and ok_404:
            return None
        if response.is_success:
            return response
        error = domain_error_for(response, f"{what}: agent")
        if isinstance(error, Unavailable) or response.status_code >= 500:
            raise DriverUnavailable(error.message)
        raise DriverError(error.message)

    async def request_live_view(self, edge: EdgeTarget, request: LiveViewRequest) -> None:
        """The agent's API: ``PUT /live-view`` (the agent writes the file its workers watch)."""
        await self._call(
            "PUT",
            f"{self._base(edge)}/live-view",
            what=f"live view of {edge.name}",
            edge=edge,
            json=request.model_dump(exclude={"nid"}),
        )

    async def apply(self, workload: Workload) -> None:
        check_architecture(workload, self.architectures.get(workload.edge.nid))
        base = self._base(workload.edge)
        await self._call(
            "PUT",
            f"{base}/workloads/{workload.name}",
            what=f"apply {workload.name} on {workload.edge.name}",
            edge=workload.edge,
            json=agent_spec(workload).model_dump(mode="json"),
            request_timeout=self._apply_timeout,
        )

    async def remove(self, edge: EdgeTarget, name: str) -> None:
        await self._call(
            "DELETE",
            f"{self._base(edge)}/workloads/{name}",
            what=f"remove {name} on {edge.name}",
            edge=edge,
            ok_404=True,
        )

    async def observe(self, edge: EdgeTarget) -> list[ObservedWorkload]:
        response = await self._call(
            "GET", f"{self._base(edge)}/workloads", what=f"observe {edge.name}", edge=edge
        )
        assert response is not None  # only a call with ok_404 answers None
        try:
            answer = response.json()
            reports = [ObservedWorkloadReport.model_validate(w) for w in answer["workloads"]]
            arch = answer.get("architecture")
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            problem = f"observe {edge.name}: malformed answer from the agent ({exc})"
            raise DriverError(problem) from exc
        if isinstance(arch, str) and arch:
            self.architectures[edge.nid] = arch
        return [observed_workload(r) for r in reports]
