"""Runtime drivers: how the master makes a desired workload run on an edge.

``RuntimeDriver`` (base.py) is the interface; ``driver_for`` builds the one a cluster's ``runtime``
(setup's clusters.runtime: agent | kubernetes | docker) names.
"""
from __future__ import annotations

from services.master.drivers.base import (
    AiArtifact,
    DriverError,
    DriverUnavailable,
    EdgeTarget,
    ObservedWorkload,
    RuntimeDriver,
    RuntimeDriverFailure,
    Workload,
    render_edgeconfig,
    workload_name,
)
from services.master.registry.node_config import PULL_SECRET_NAME

RUNTIMES = ("agent", "kubernetes", "docker")


def driver_for(
    runtime: str,
    *,
    service_token: str,
    namespace: str = "edge-ai",
    image_pull_secret: str | None = PULL_SECRET_NAME,
    kubeconfig: str | None = None,
    kube_context: str | None = None,
    in_cluster: bool = False,
    docker_url: str | None = None,
    registry_auth: dict[str, str] | None = None,
    name_per_edge: bool = True,
) -> RuntimeDriver:
    """The driver for one cluster. Imports are local: an agent-only master needs neither SDK loaded."""
    if runtime == "agent":
        from services.master.drivers.agent import AgentDriver

        return AgentDriver(service_token=service_token)
    if runtime == "kubernetes":
        from services.master.drivers.kubernetes import KubernetesDriver
        from services.master.drivers.manifests import KubernetesOptions

        options = KubernetesOptions(namespace=namespace, image_pull_secret=image_pull_secret, name_per_edge=name_per_edge)
        return KubernetesDriver.from_kubeconfig(options, kubeconfig=kubeconfig, context=kube_context, in_cluster=in_cluster)
    if runtime == "docker":
        from services.master.drivers.docker import DockerDriver, DockerOptions

        if not docker_url:
            raise DriverError("the docker runtime needs the Docker engine's URL (docker_url)")
        return DockerDriver.from_url(docker_url, DockerOptions(registry_auth=registry_auth, name_per_edge=name_per_edge))
    raise DriverError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")


__all__ = [
    "RUNTIMES",
    "AiArtifact",
    "DriverError",
    "DriverUnavailable",
    "EdgeTarget",
    "ObservedWorkload",
    "RuntimeDriver",
    "RuntimeDriverFailure",
    "Workload",
    "driver_for",
    "render_edgeconfig",
    "workload_name",
]
