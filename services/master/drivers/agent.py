"""The agent driver: the edge agent on each plain edge box, over HTTP, with the master's
service token.

An agent is not a platform service, but it is called through the same client layer
(shared.service_client): transport failures and error answers are mapped once, then sorted into
the driver's two classes (retry on the next pass, or record the failure).
"""

from __future__ import annotations

from typing import Any

import httpx

from services.master.drivers.base import (
    DriverError,
    DriverUnavailable,
    EdgeTarget,
    ObservedWorkload,
    RuntimeDriver,
    Workload,
    WorkloadState,
)
from shared.errors import DomainError, Unavailable
from shared.service_client import ServiceClient, domain_error_for

# The agent's states map one to one, except "stopped" (an instance being taken away).
_STATES = {
    "pending": WorkloadState.PENDING,
    "running": WorkloadState.RUNNING,
    "restarting": WorkloadState.RESTARTING,
    "failed": WorkloadState.FAILED,
    "stopped": WorkloadState.REMOVED,
}
# Every error answer comes back to the driver, which sorts it (any 5xx is worth a retry).
_ERROR_ANSWERS = tuple(range(400, 600))


def agent_spec(workload: Workload) -> dict[str, Any]:
    """The body of the agent's ``PUT /workloads/{name}``."""
    if not workload.ai.package_digest:
        raise DriverError(
            f"AI {workload.ai.id} has no package digest: nothing for the agent to fetch"
        )
    if not workload.command:
        raise DriverError(f"AI {workload.ai.id} has no command in its manifest")
    return {
        "name": workload.name,
        "package_digest": workload.ai.package_digest,
        "version": workload.ai.version,
        "command": list(workload.command),
        # The agent keeps env out of its answers and its state file is 0600: secrets travel as env.
        "env": {k: str(v) for k, v in {**workload.env, **workload.secret_env}.items()},
        "edgeconfig_xml": workload.edgeconfig_xml,
        "deployment_id": workload.deployment_id,
        "generation": workload.generation,
        "ai_id": workload.ai.id,
        "filename": workload.ai.filename,
        "ai_class": workload.ai.ai_class,
    }


def observed_workload(w: dict[str, Any]) -> ObservedWorkload:
    """One entry of the agent's ``GET /workloads``."""
    return ObservedWorkload(
        deployment_id=w.get("deployment_id"),
        name=w["name"],
        state=_STATES.get(w["state"], WorkloadState.PENDING),
        reason=w.get("reason"),
        restarts=w.get("restarts", 0),
        version=w.get("version"),
        exit_code=w.get("exit_code"),
        log_tail=w.get("log_tail") or [],
        generation=w.get("generation"),
    )


class AgentDriver(RuntimeDriver):
    kind = "agent"

    def __init__(
        self,
        *,
        service_token: str,
        timeout_s: float = 10.0,
        apply_timeout_s: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        # Agents have no common address: every call names its agent's full URL.
        self._client = ServiceClient(
            "agent", "", token=service_token, timeout=timeout_s, transport=transport
        )
        # apply waits while the agent fetches and unpacks the package: a large model over a
        # weak link.
        self._apply_timeout = httpx.Timeout(apply_timeout_s, connect=5.0)

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
        self, method: str, url: str, *, what: str, ok_404: bool = False, **kw: Any
    ) -> httpx.Response | None:
        try:
            response = await self._client.request(
                method, url, what=what, allow=_ERROR_ANSWERS, **kw
            )
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

    async def _json(self, url: str, *, what: str, **kw: Any) -> Any:
        response = await self._call("GET", url, what=what, **kw)
        assert response is not None  # only a call with ok_404 answers None
        return response.json()

    async def apply(self, workload: Workload) -> None:
        base = self._base(workload.edge)
        await self._call(
            "PUT",
            f"{base}/workloads/{workload.name}",
            what=f"apply {workload.name} on {workload.edge.name}",
            json=agent_spec(workload),
            timeout=self._apply_timeout,
        )

    async def remove(self, edge: EdgeTarget, name: str) -> None:
        await self._call(
            "DELETE", f"{self._base(edge)}/workloads/{name}",
            what=f"remove {name} on {edge.name}", ok_404=True,
        )

    async def observe(self, edge: EdgeTarget) -> list[ObservedWorkload]:
        answer = await self._json(f"{self._base(edge)}/workloads", what=f"observe {edge.name}")
        return [observed_workload(w) for w in answer["workloads"]]
