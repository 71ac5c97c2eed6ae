"""The agent driver: the edge agent on each plain edge box, over HTTP(S).

Each agent is called with its own key (``key_for(edge)``, shared.agent_keys), never with a
credential another agent or a service would accept; only to an http(s) URL whose host is on the
allowed networks (shared.agent_urls, checked before every call); over https the agent's
certificate is verified (``verify``: True for the system CAs, or a CA bundle, EDGE_AGENT_CA_FILE).
"""
from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx

from services.master.drivers.base import (
    DriverError,
    DriverUnavailable,
    EdgeTarget,
    ObservedWorkload,
    RuntimeDriver,
    Workload,
)
from shared.agent_urls import Network, parse_networks, resolve_and_check
from shared.settings import DEFAULT_AGENT_NETWORKS

# The agent's states map one to one, except "stopped" (an instance being taken away).
_STATES = {"pending": "pending", "running": "running", "restarting": "restarting", "failed": "failed", "stopped": "removed"}


def agent_spec(workload: Workload) -> dict:
    """The body of the agent's ``PUT /workloads/{name}``."""
    if not workload.ai.package_digest:
        raise DriverError(f"AI {workload.ai.id} has no package digest: nothing for the agent to fetch")
    if not workload.command:
        raise DriverError(f"AI {workload.ai.id} has no command in its manifest")
    return {
        "name": workload.name,
        "package_digest": workload.ai.package_digest,
        "version": workload.ai.version,
        "command": list(workload.command),
        # The agent keeps env out of its answers and its state file is 0600: secrets travel as env.
        # Live params go as ``live`` only: a change reaches the running program without a restart.
        "env": {
            k: str(v)
            for k, v in {**workload.env, **workload.secret_env}.items()
            if k not in workload.live
        },
        "live": workload.live,
        "edgeconfig_xml": workload.edgeconfig_xml,
        "deployment_id": workload.deployment_id,
        "generation": workload.generation,
        "ai_id": workload.ai.id,
        "filename": workload.ai.filename,
        "ai_class": workload.ai.ai_class,
    }


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
            key_for = lambda _edge: service_token  # noqa: E731
        self.key_for = key_for
        if allowed_networks is None:
            allowed_networks = parse_networks(DEFAULT_AGENT_NETWORKS)
        self.allowed_networks = allowed_networks
        # apply waits while the agent fetches and unpacks the package: a large model over a weak link.
        self.apply_timeout_s = apply_timeout_s
        verify: ssl.SSLContext | bool = True
        if ca_file:
            verify = ssl.create_default_context(cafile=ca_file)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    @staticmethod
    def _base(edge: EdgeTarget) -> str:
        if not edge.agent_url:
            raise DriverError(f"edge {edge.name} has no agent_url: register the edge with its agent's address")
        return edge.agent_url.rstrip("/")

    async def _call(
        self, method: str, url: str, *, what: str, edge: EdgeTarget, ok_404: bool = False, **kw
    ) -> httpx.Response | None:
        try:
            await resolve_and_check(url, self.allowed_networks)
        except ValueError as exc:
            raise DriverError(f"{what}: agent_url refused: {exc}") from exc
        headers = {"Authorization": f"Bearer {self.key_for(edge)}"}
        try:
            response = await self._client.request(method, url, headers=headers, **kw)
        except httpx.TimeoutException as exc:
            raise DriverUnavailable(f"{what}: the agent did not answer in time") from exc
        except httpx.InvalidURL as exc:  # an agent_url setup stored but no request can be made to
            raise DriverError(f"{what}: the edge's agent_url is not a usable URL ({exc})") from exc
        except httpx.HTTPError as exc:
            raise DriverUnavailable(f"{what}: agent unreachable ({exc.__class__.__name__})") from exc
        if response.status_code == 404 and ok_404:
            return None
        if response.is_success:
            return response
        message = _error_message(response)
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise DriverUnavailable(f"{what}: agent answered {response.status_code}: {message}")
        raise DriverError(f"{what}: agent answered {response.status_code}: {message}")

    async def apply(self, workload: Workload) -> None:
        base = self._base(workload.edge)
        await self._call(
            "PUT",
            f"{base}/workloads/{workload.name}",
            what=f"apply {workload.name} on {workload.edge.name}",
            edge=workload.edge,
            json=agent_spec(workload),
            timeout=httpx.Timeout(self.apply_timeout_s, connect=5.0),
        )

    async def remove(self, edge: EdgeTarget, name: str) -> None:
        await self._call("DELETE", f"{self._base(edge)}/workloads/{name}",
                         what=f"remove {name} on {edge.name}", edge=edge, ok_404=True)

    async def observe(self, edge: EdgeTarget) -> list[ObservedWorkload]:
        response = await self._call("GET", f"{self._base(edge)}/workloads",
                                    what=f"observe {edge.name}", edge=edge)
        assert response is not None
        return [
            ObservedWorkload(
                deployment_id=w.get("deployment_id"),
                name=w["name"],
                state=_STATES.get(w["state"], "pending"),  # type: ignore[arg-type]
                reason=w.get("reason"),
                restarts=w.get("restarts", 0),
                version=w.get("version"),
                exit_code=w.get("exit_code"),
                log_tail=w.get("log_tail") or [],
                generation=w.get("generation"),
            )
            for w in response.json()["workloads"]
        ]

    async def heartbeat(self, edge: EdgeTarget) -> dict:
        """The node's cpu, memory and uptime as the agent reports them."""
        response = await self._call("GET", f"{self._base(edge)}/heartbeat",
                                    what=f"heartbeat of {edge.name}", edge=edge)
        assert response is not None
        return response.json()

    async def logs(self, edge: EdgeTarget, name: str, tail: int = 100) -> list[str]:
        response = await self._call(
            "GET", f"{self._base(edge)}/workloads/{name}/logs", what=f"logs of {name}", edge=edge,
            params={"tail": tail},
        )
        assert response is not None
        return response.json()["lines"]


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return body.get("error", {}).get("message") or response.text[:300]
    except ValueError:
        return response.text[:300]
