"""The kubernetes driver: a Deployment and a ConfigMap per workload, through the official client.

The client is blocking: every call runs in a thread. Objects go out and come back as plain dicts
(``_preload_content=False``), so the driver depends on the API's JSON, not on the client's models.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from services.master.drivers.base import (
    DriverError,
    DriverUnavailable,
    EdgeTarget,
    ObservedWorkload,
    RuntimeDriver,
    Workload,
    WorkloadState,
)
from services.master.drivers.manifests import (
    A_GENERATION,
    A_SPEC_HASH,
    A_WORKLOAD,
    L_AI_VERSION,
    L_DEPLOYMENT,
    L_INSTANCE,
    KubernetesOptions,
    configmap_manifest,
    configmap_name,
    deployment_manifest,
    edge_selector,
    live_secret_manifest,
    live_secret_name,
    object_name,
    secret_manifest,
    secret_name,
)

# Waiting reasons that will not fix themselves without a change (or the registry/node being
# repaired).
_FAILED_WAITING = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
}
_CONFLICT_RETRIES = 3
A_APPLIED = "edge-ai/applied-hash"


def _body(response: Any) -> dict:
    return json.loads(response.data or b"{}")


class KubernetesDriver(RuntimeDriver):
    kind = "kubernetes"

    def __init__(
        self,
        api_client: k8s.ApiClient,
        options: KubernetesOptions | None = None,
        *,
        request_timeout_s: float = 30,
    ):
        self.api_client = api_client
        self.options = options or KubernetesOptions()
        self.apps = k8s.AppsV1Api(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.timeout = request_timeout_s

    @classmethod
    def from_kubeconfig(
        cls,
        options: KubernetesOptions,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool = False,
    ) -> KubernetesDriver:
        from kubernetes import config as k8s_config

        configuration = k8s.Configuration()
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        return cls(k8s.ApiClient(configuration), options)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.api_client.close)

    # -- the interface -----------------------------------------------------------------------------
    async def apply(self, workload: Workload) -> None:
        configmap = configmap_manifest(workload, self.options)
        deployment = deployment_manifest(workload, self.options)
        secret = secret_manifest(workload, self.options)
        live_secret = live_secret_manifest(workload, self.options)
        # The ConfigMap and Secrets first: the new pods mount them.
        for s in (secret, live_secret):
            if s is not None:
                await self._run(self._upsert, "Secret", s, what=f"apply {s['metadata']['name']}")
        await self._run(
            self._upsert, "ConfigMap", configmap, what=f"apply {configmap['metadata']['name']}"
        )
        await self._run(
            self._upsert, "Deployment", deployment, what=f"apply {deployment['metadata']['name']}"
        )

    async def remove(self, edge: EdgeTarget, name: str) -> None:
        obj = object_name(name, edge, self.options)
        await self._run(self._delete, "Deployment", obj, what=f"remove {obj}")
        await self._run(
            self._delete, "ConfigMap", configmap_name(obj), what=f"remove {configmap_name(obj)}"
        )
        for sname in (secret_name(obj), live_secret_name(obj)):
            await self._run(self._delete, "Secret", sname, what=f"remove {sname}")

    async def observe(self, edge: EdgeTarget) -> list[ObservedWorkload]:
        deployments, pods = await self._run(
            self._list_for_edge, edge_selector(edge), what=f"observe {edge.name}"
        )
        by_instance: dict[str, list[dict]] = {}
        for pod in pods:
            by_instance.setdefault(
                pod["metadata"].get("labels", {}).get(L_INSTANCE, ""), []
            ).append(pod)
        return [
            self._observed(d, by_instance.get(d["metadata"]["name"], []))
            for d in sorted(deployments, key=lambda d: d["metadata"]["name"])
        ]

    # -- blocking calls (run in a thread) ----------------------------------------------------------
    def _ops(self, kind: str):
        ns = self.options.namespace
        kw: dict[str, Any] = {"_preload_content": False, "_request_timeout": self.timeout}
        if kind == "Deployment":
            return (
                lambda body: self.apps.create_namespaced_deployment(ns, body, **kw),
                lambda name: self.apps.read_namespaced_deployment(name, ns, **kw),
                lambda name, body: self.apps.replace_namespaced_deployment(name, ns, body, **kw),
                lambda name: self.apps.delete_namespaced_deployment(
                    name, ns, propagation_policy="Background", **kw
                ),
            )
        if kind == "Secret":
            return (
                lambda body: self.core.create_namespaced_secret(ns, body, **kw),
                lambda name: self.core.read_namespaced_secret(name, ns, **kw),
                lambda name, body: self.core.replace_namespaced_secret(name, ns, body, **kw),
                lambda name: self.core.delete_namespaced_secret(
                    name, ns, propagation_policy="Background", **kw
                ),
            )
        return (
            lambda body: self.core.create_namespaced_config_map(ns, body, **kw),
            lambda name: self.core.read_namespaced_config_map(name, ns, **kw),
            lambda name, body: self.core.replace_namespaced_config_map(name, ns, body, **kw),
            lambda name: self.core.delete_namespaced_config_map(
                name, ns, propagation_policy="Background", **kw
            ),
        )

    def _upsert(self, kind: str, body: dict) -> None:
        """Create; on 409 (already there) replace, carrying the current resourceVersion so a
        concurrent writer is noticed (another 409) rather than overwritten. An object already as
        we want it (same applied-hash annotation) is left alone: the reconcile loop applies every
        pass."""
        create, read, replace, _ = self._ops(kind)
        name = body["metadata"]["name"]
        applied = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        body["metadata"].setdefault("annotations", {})[A_APPLIED] = applied
        try:
            create(body)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        for _attempt in range(_CONFLICT_RETRIES):
            current = _body(read(name))
            if current["metadata"].get("annotations", {}).get(A_APPLIED) == applied:
                return
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                replace(name, body)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise DriverUnavailable(
            f"{kind} {name} kept changing under us ({_CONFLICT_RETRIES} conflicts)"
        )

    def _delete(self, kind: str, name: str) -> None:
        *_, delete = self._ops(kind)
        try:
            delete(name)
        except ApiException as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise

    def _list_for_edge(self, selector: str) -> tuple[list[dict], list[dict]]:
        ns = self.options.namespace
        kw: dict[str, Any] = {
            "_preload_content": False,
            "_request_timeout": self.timeout,
            "label_selector": selector,
        }
        deployments = _body(self.apps.list_namespaced_deployment(ns, **kw)).get("items", [])
        pods = _body(self.core.list_namespaced_pod(ns, **kw)).get("items", [])
        return deployments, pods

    async def _run(self, fn, *args, what: str):
        try:
            return await asyncio.to_thread(fn, *args)
        except ApiException as exc:
            raise _translate(exc, what) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise DriverUnavailable(
                f"{what}: Kubernetes API unreachable ({exc.__class__.__name__})"
            ) from exc

    # -- state -------------------------------------------------------------------------------------
    def _observed(self, deployment: dict, pods: list[dict]) -> ObservedWorkload:
        meta = deployment["metadata"]
        spec = deployment.get("spec", {})
        status = deployment.get("status", {})
        template = spec.get("template", {}).get("metadata", {})
        labels = meta.get("labels", {})
        want_hash = template.get("annotations", {}).get(A_SPEC_HASH)
        current_pods = [
            p for p in pods if p["metadata"].get("annotations", {}).get(A_SPEC_HASH) == want_hash
        ]
        restarts = 0
        exit_code = None
        waiting: tuple[str, str] | None = None
        for pod in current_pods:
            for cs in pod.get("status", {}).get("containerStatuses", []) or []:
                restarts += cs.get("restartCount", 0)
                terminated = (cs.get("lastState") or {}).get("terminated")
                if terminated:
                    exit_code = terminated.get("exitCode")
                w = (cs.get("state") or {}).get("waiting")
                if w and w.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
                    waiting = (w["reason"], w.get("message", ""))
        deployment_id = labels.get(L_DEPLOYMENT)
        observed = ObservedWorkload(
            deployment_id=int(deployment_id) if deployment_id and deployment_id.isdigit() else None,
            name=meta.get("annotations", {}).get(A_WORKLOAD, meta["name"]),
            state=WorkloadState.PENDING,
            restarts=restarts,
            version=template.get("labels", {}).get(L_AI_VERSION),
            exit_code=exit_code,
            generation=_int(template.get("annotations", {}).get(A_GENERATION)),
        )
        conditions = {c.get("type"): c for c in status.get("conditions", []) or []}
        progressing = conditions.get("Progressing", {})
        rolled_out = (
            status.get("observedGeneration", 0) >= meta.get("generation", 1)
            and status.get("updatedReplicas", 0) >= spec.get("replicas", 1)
            and status.get("replicas", 0) == status.get("updatedReplicas", 0)
            and status.get("readyReplicas", 0) >= spec.get("replicas", 1)
        )
        if waiting and waiting[0] in _FAILED_WAITING:
            observed.state, observed.reason = (
                WorkloadState.FAILED,
                f"{waiting[0]}: {waiting[1]}".rstrip(": "),
            )
        elif waiting and waiting[0] == "CrashLoopBackOff":
            failed = restarts >= self.options.failed_after_restarts
            observed.state = WorkloadState.FAILED if failed else WorkloadState.RESTARTING
            observed.reason = f"CrashLoopBackOff: {waiting[1]}".rstrip(": ")
        elif (
            progressing.get("status") == "False"
            and progressing.get("reason") == "ProgressDeadlineExceeded"
        ):
            observed.state, observed.reason = (
                WorkloadState.FAILED,
                progressing.get("message") or "ProgressDeadlineExceeded",
            )
        elif rolled_out:
            observed.state = WorkloadState.RUNNING
        else:
            observed.reason = (
                "rolling out"
                if status.get("replicas", 0) > status.get("updatedReplicas", 0)
                else "waiting for the pod"
            )
        return observed


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _translate(exc: ApiException, what: str) -> Exception:
    """The API server's Status into the driver's two classes; the message says what the server
    said."""
    message = exc.reason or ""
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        message = json.loads(exc.body or "{}").get("message") or message
    text = f"{what}: Kubernetes answered {exc.status}: {message}"
    if exc.status in (0, 408, 429) or (exc.status or 0) >= 500 or exc.status == 409:
        return DriverUnavailable(text)
    return DriverError(text)
