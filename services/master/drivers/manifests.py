"""Kubernetes objects for a workload, as plain dicts: a ConfigMap holding edgeconfig.xml and a
Deployment pinned to the edge's node. Every object built here passes kubernetes-validate --strict
(1.30)."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from services.master.drivers.base import (
    DriverError,
    EdgeTarget,
    Workload,
    dns_label,
    label_value,
    workload_name,
)
from services.master.registry.node_config import PULL_SECRET_NAME

MANAGED_BY = "edge-master"
PREFIX = "edge-ai/"
L_MANAGED = "app.kubernetes.io/managed-by"
L_INSTANCE = "app.kubernetes.io/instance"
L_NAME = "app.kubernetes.io/name"
L_VERSION = "app.kubernetes.io/version"
L_AI_ID = PREFIX + "ai-id"
L_AI_VERSION = PREFIX + "version"
L_EDGE = PREFIX + "edge"
L_NID = PREFIX + "nid"
L_DEPLOYMENT = PREFIX + "deployment-id"
L_FILENAME = PREFIX + "filename"
L_AI_CLASS = PREFIX + "ai-class"
A_SPEC_HASH = PREFIX + "spec-hash"
A_DIGEST = PREFIX + "package-digest"
A_GENERATION = PREFIX + "generation"
A_WORKLOAD = PREFIX + "workload"

CONFIG_KEY = "edgeconfig.xml"
LIVE_KEY = "live.json"
LIVE_SECRETS_KEY = "secrets.json"

# k8s.io/apimachinery resource.Quantity
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


@dataclass(frozen=True)
class KubernetesOptions:
    """How this cluster runs workloads (from the master's settings and the cluster row in setup)."""

    namespace: str = "edge-ai"
    image_pull_secret: str | None = PULL_SECRET_NAME  # what `edgectl registry node-config` creates
    config_mount_path: str = "/app/edgeconfig.xml"  # where the program reads edgeconfig.xml
    # The live params (routing, hand-off, focus) as a directory mount of the same ConfigMap: the
    # kubelet refreshes it in place (a subPath mount never is), so no pod restarts for them.
    live_mount_dir: str = "/var/run/edge-ai/live"
    # A ``hot_handoff`` workload's live secrets: a Secret volume, refreshed by the kubelet.
    live_secrets_mount_dir: str = "/var/run/edge-ai/live-secrets"
    # Several edges in one namespace each run e.g. weatherai-00: the object name then carries the
    # edge
    # (``weatherai-00-edgecctv01``). Off: the field's bare ``{filename}-{ai_class}`` (one edge per
    # namespace).
    name_per_edge: bool = True
    node_label: str = "kubernetes.io/hostname"
    progress_deadline_s: int = 600
    termination_grace_s: int = 30
    liveness_command: tuple[str, ...] | None = None  # e.g. ("test", "-f", "/tmp/alive")
    failed_after_restarts: int = 5  # CrashLoopBackOff this many restarts counts as failed


def object_name(name: str, edge: EdgeTarget, options: KubernetesOptions) -> str:
    """The Deployment's name for workload ``name`` (``{filename}-{ai_class}``) on ``edge``."""
    base = f"{name}-{edge.node}" if options.name_per_edge else name
    # Pods add a 10-character ReplicaSet hash and a 5-character suffix to this name.
    return dns_label(base, max_len=47)


def configmap_name(obj_name: str) -> str:
    return f"{obj_name}-edgeconfig"


def edge_selector(edge: EdgeTarget) -> str:
    """The label selector of everything this master runs on ``edge``."""
    return f"{L_MANAGED}={MANAGED_BY},{L_EDGE}={label_value(edge.name)}"


def workload_labels(workload: Workload) -> dict[str, str]:
    ai = workload.ai
    labels = {
        L_MANAGED: MANAGED_BY,
        L_NAME: label_value(workload.name),
        L_VERSION: label_value(ai.version),
        L_AI_ID: label_value(ai.id),
        L_AI_VERSION: label_value(ai.version),
        L_FILENAME: label_value(ai.filename),
        L_AI_CLASS: label_value(ai.ai_class),
        L_EDGE: label_value(workload.edge.name),
        L_NID: label_value(workload.edge.nid),
        L_DEPLOYMENT: label_value(workload.deployment_id),
    }
    return {k: v for k, v in labels.items() if v}


def selector_labels(obj_name: str) -> dict[str, str]:
    """Immutable on a Deployment: never the version."""
    return {L_MANAGED: MANAGED_BY, L_INSTANCE: obj_name}


def quantity(value: Any, field: str) -> str:
    text = str(value).strip()
    if isinstance(value, bool) or not _QUANTITY.match(text):
        raise DriverError(
            f"resources.{field}: {value!r} is not a Kubernetes quantity (e.g. 500m, 1, 256Mi)"
        )
    return text


def container_resources(resources: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The manifest's resources as a container's requests/limits.

    Accepts ``{"requests": {...}, "limits": {...}}`` as Kubernetes writes it, or the short form
    ``{"cpu": "500m", "memory": "256Mi" | "memory_mb": 256, "gpu": 1}``: cpu and memory are
    requested,
    a GPU is a limit (``nvidia.com/gpu``) as the device plugin wants it.
    """
    out: dict[str, dict[str, str]] = {}
    for section in ("requests", "limits"):
        for key, value in (resources.get(section) or {}).items():
            out.setdefault(section, {})[str(key)] = quantity(value, f"{section}.{key}")
    if resources.get("cpu") is not None:
        out.setdefault("requests", {})["cpu"] = quantity(resources["cpu"], "cpu")
    if resources.get("memory") is not None:
        out.setdefault("requests", {})["memory"] = quantity(resources["memory"], "memory")
    if resources.get("memory_mb") is not None:
        out.setdefault("requests", {})["memory"] = quantity(
            f"{int(resources['memory_mb'])}Mi", "memory_mb"
        )
    gpu = resources.get("gpu")
    if gpu:
        out.setdefault("limits", {})["nvidia.com/gpu"] = quantity(int(gpu), "gpu")
    return out


def config_hash(workload: Workload) -> str:
    return hashlib.sha256(workload.edgeconfig_xml.encode()).hexdigest()[:16]


def secret_name(obj_name: str) -> str:
    return f"{obj_name}-env"


def secret_manifest(workload: Workload, options: KubernetesOptions) -> dict[str, Any] | None:
    """The workload's secret environment (camera credentials), or None when it has none."""
    if not workload.secret_env:
        return None
    for key in workload.secret_env:
        if not _ENV_NAME.match(key):
            raise DriverError(f"secret_env: {key!r} is not a valid environment variable name")
    name = object_name(workload.name, workload.edge, options)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(name),
            "namespace": options.namespace,
            "labels": {**workload_labels(workload), L_INSTANCE: name},
            "annotations": {A_WORKLOAD: workload.name},
        },
        "type": "Opaque",
        "stringData": {k: str(v) for k, v in sorted(workload.secret_env.items())},
    }


def live_secret_name(obj_name: str) -> str:
    return f"{obj_name}-live"


def live_secret_manifest(workload: Workload, options: KubernetesOptions) -> dict[str, Any] | None:
    """A ``hot_handoff`` workload's live secrets (the cameras of the edges it helps) as a Secret
    mounted as a volume: the kubelet refreshes a mounted Secret in the running pod, so a hand-off
    changes it without rolling the pod. Created even when empty (the pod mounts it). None for other
    workloads."""
    if not workload.hot_handoff:
        return None
    name = object_name(workload.name, workload.edge, options)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": live_secret_name(name),
            "namespace": options.namespace,
            "labels": {**workload_labels(workload), L_INSTANCE: name},
            "annotations": {A_WORKLOAD: workload.name},
        },
        "type": "Opaque",
        "stringData": {LIVE_SECRETS_KEY: json.dumps(workload.live_secrets, sort_keys=True)},
    }


def configmap_manifest(workload: Workload, options: KubernetesOptions) -> dict[str, Any]:
    name = object_name(workload.name, workload.edge, options)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(name),
            "namespace": options.namespace,
            "labels": {**workload_labels(workload), L_INSTANCE: name},
            "annotations": {A_WORKLOAD: workload.name},
        },
        "data": {CONFIG_KEY: workload.edgeconfig_xml, LIVE_KEY: live_json(workload)},
    }


def live_json(workload: Workload) -> str:
    """The live file's content, as the edge agent writes it."""
    return json.dumps(workload.live, sort_keys=True)


def deployment_manifest(workload: Workload, options: KubernetesOptions) -> dict[str, Any]:
    ai = workload.ai
    if not ai.image_ref:
        raise DriverError(
            f"AI {ai.id} ({workload.name} {ai.version}) has no image: build and push it first"
        )
    for key in workload.static_env:
        if not _ENV_NAME.match(key):
            raise DriverError(f"env: {key!r} is not a valid environment variable name")
    name = object_name(workload.name, workload.edge, options)
    labels = workload_labels(workload)
    container: dict[str, Any] = {
        "name": dns_label(workload.name),
        "image": ai.image_ref,
        "imagePullPolicy": "IfNotPresent",
        # Live params stay out of the pod template (a change would roll the pod): the program
        # reads them from the live file, which the kubelet refreshes.
        "env": [{"name": k, "value": str(v)} for k, v in sorted(workload.static_env.items())]
        + [
            {"name": "EDGE_CONFIG", "value": options.config_mount_path},
            {"name": "EDGE_LIVE_FILE", "value": posixpath.join(options.live_mount_dir, LIVE_KEY)},
        ]
        # Secrets (the camera URL) by reference to the Secret, never their value.
        + [
            {"name": k, "valueFrom": {"secretKeyRef": {"name": secret_name(name), "key": k}}}
            for k in sorted(workload.secret_env)
        ],
        "volumeMounts": [
            {
                "name": "edgeconfig",
                "mountPath": options.config_mount_path,
                "subPath": CONFIG_KEY,
                "readOnly": True,
            },
            {"name": "live", "mountPath": options.live_mount_dir, "readOnly": True},
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "edgeconfig", "configMap": {"name": configmap_name(name)}},
        {
            "name": "live",
            "configMap": {
                "name": configmap_name(name),
                "items": [{"key": LIVE_KEY, "path": LIVE_KEY}],
            },
        },
    ]
    if workload.hot_handoff:
        secrets_file = posixpath.join(options.live_secrets_mount_dir, LIVE_SECRETS_KEY)
        container["env"].append({"name": "EDGE_LIVE_SECRETS_FILE", "value": secrets_file})
        container["volumeMounts"].append(
            {"name": "live-secrets", "mountPath": options.live_secrets_mount_dir, "readOnly": True}
        )
        volumes.append(
            {
                "name": "live-secrets",
                "secret": {"secretName": live_secret_name(name), "defaultMode": 0o400},
            }
        )
    resources = container_resources(workload.resources)
    if resources:
        container["resources"] = resources
    if options.liveness_command:
        container["livenessProbe"] = {
            "exec": {"command": list(options.liveness_command)},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        }
    pod_spec: dict[str, Any] = {
        # Node names are lowercase hostnames: an edge registered without node_name is matched by its
        # name.
        "nodeSelector": {
            options.node_label: label_value(workload.edge.node_name or workload.edge.name.lower())
        },
        "containers": [container],
        "volumes": volumes,
        "terminationGracePeriodSeconds": options.termination_grace_s,
    }
    if options.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": options.image_pull_secret}]
    annotations = {
        A_WORKLOAD: workload.name,
        A_SPEC_HASH: workload.spec_hash(),
        A_DIGEST: ai.package_digest or "",
        A_GENERATION: str(workload.generation),
        # A changed edgeconfig.xml rolls the pods (a subPath mount is never refreshed in place).
        PREFIX + "config-hash": config_hash(workload),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": options.namespace,
            "labels": {**labels, L_INSTANCE: name},
            "annotations": {A_WORKLOAD: workload.name, A_GENERATION: str(workload.generation)},
        },
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": options.progress_deadline_s,
            "selector": {"matchLabels": selector_labels(name)},
            # The new pod pulls its image and becomes ready before the old one goes: no blind gap.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": {**labels, **selector_labels(name)},
                    "annotations": annotations,
                },
                "spec": pod_spec,
            },
        },
    }


__all__ = [
    "KubernetesOptions",
    "configmap_manifest",
    "deployment_manifest",
    "edge_selector",
    "live_secret_manifest",
    "object_name",
    "workload_name",
]
