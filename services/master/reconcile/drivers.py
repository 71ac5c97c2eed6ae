"""One runtime driver per cluster settings, kind and Kubernetes namespace, created on first use,
closed with the app. A cluster named in MASTER_CLUSTER_RUNTIME gets its own kubeconfig, context,
namespace, Docker host or agent CA; the others the master's own settings."""

from __future__ import annotations

import asyncio
import logging

from services.master.drivers.agent import AgentDriver
from services.master.drivers.base import DriverError, DriverUnavailable, RuntimeDriver
from services.master.settings import MasterSettings
from shared.agent_urls import parse_networks
from shared.contracts.master import Runtime

log = logging.getLogger("edge.master.drivers")


class DriverSet:
    def __init__(self, settings: MasterSettings, pull: RuntimeDriver | None = None):
        """``pull``: the agent-pull driver (services.master.pull.runtime), shared with the routes
        its agents call."""
        self.settings = settings
        self._drivers: dict[tuple[str, str, str], RuntimeDriver] = {}
        if pull is not None:
            # One pull driver for every cluster: its agents call this master's routes.
            self._drivers[(Runtime.AGENT_PULL, "", "")] = pull

    def _settings_for(self, cluster: str | None) -> MasterSettings:
        """The master's settings with the cluster's own runtime settings over them."""
        own = self.settings.cluster_runtime.get(cluster or "")
        if own is None:
            return self.settings
        return self.settings.model_copy(
            update=own.model_dump(exclude_none=True, exclude={"namespace"})
        )

    async def get(
        self, runtime: str, namespace: str = "edge-ai", cluster: str | None = None
    ) -> RuntimeDriver:
        per_cluster = cluster if cluster in self.settings.cluster_runtime else ""
        if runtime == Runtime.AGENT_PULL:
            per_cluster = ""
        override = self.settings.cluster_runtime.get(per_cluster)
        if override is not None and override.namespace:
            namespace = override.namespace
        key = (runtime, namespace if runtime == Runtime.KUBERNETES else "", per_cluster or "")
        driver = self._drivers.get(key)
        if driver is None:
            # Creating the kubernetes/docker clients reads files and may connect: off the event
            # loop.
            s = self._settings_for(per_cluster)
            driver = self._drivers[key] = await asyncio.to_thread(
                self._create, runtime, namespace, s
            )
        return driver

    def _create(self, runtime: str, namespace: str, s: MasterSettings) -> RuntimeDriver:
        if runtime == Runtime.AGENT:
            return AgentDriver(
                key_for=lambda edge: s.agent_key_for(edge.nid),  # each agent its own key
                apply_timeout_s=s.agent_timeout_s,
                allowed_networks=parse_networks(s.agent_allowed_networks),
                ca_file=s.agent_ca_file,
            )
        if runtime == Runtime.KUBERNETES:
            from services.master.drivers.kubernetes import KubernetesDriver
            from services.master.drivers.manifests import KubernetesOptions

            options = KubernetesOptions(
                namespace=namespace, image_pull_secret=s.image_pull_secret or None
            )
            try:
                return KubernetesDriver.from_kubeconfig(
                    options,
                    kubeconfig=s.kubeconfig,
                    context=s.kube_context,
                    in_cluster=s.kube_in_cluster,
                )
            except Exception as exc:  # no kubeconfig, bad context, not in a pod
                raise DriverError(
                    f"the kubernetes runtime is not configured on this master: {exc}"
                ) from exc
        if runtime == Runtime.DOCKER:
            from services.master.drivers.docker import DockerDriver, DockerOptions

            if not s.docker_host:
                raise DriverError(
                    "the docker runtime needs MASTER_DOCKER_HOST (e.g. unix:///var/run/docker.sock)"
                )
            auth = None
            if s.registry_url and s.registry_username and s.registry_password is not None:
                auth = {
                    "username": s.registry_username,
                    "password": s.registry_password.get_secret_value(),
                    "serveraddress": s.registry_url.split("://")[-1],
                }
            try:
                docker_options = DockerOptions(
                    registry_auth=auth,
                    live_host_dir=s.docker_live_dir,
                    network_mode=s.docker_network,
                )
                return DockerDriver.from_url(s.docker_host, docker_options)
            except Exception as exc:  # the SDK asks the engine its API version at once
                raise DriverUnavailable(
                    f"the Docker engine at {s.docker_host} is unreachable: {type(exc).__name__}"
                ) from exc
        raise DriverError(f"unknown runtime {runtime!r}")

    async def aclose(self) -> None:
        for driver in self._drivers.values():
            try:
                await driver.aclose()
            except Exception:  # closing is best effort
                log.exception("closing a %s driver failed", driver.kind)
        self._drivers.clear()
