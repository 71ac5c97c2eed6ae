"""What an edge node needs to pull from the private registry.

- containerd: ``/etc/containerd/certs.d/<host>/hosts.toml`` (plus the CA file beside it);
- Docker: a ``daemon.json`` fragment (``insecure-registries`` only for a plain-HTTP registry);
- Kubernetes: a ``kubernetes.io/dockerconfigjson`` Secret for ``imagePullSecrets``.

The credential is only ever written inside the Secret's base64 ``.dockerconfigjson``:
hosts.toml and daemon.json carry addresses and trust, never a password.
"""
from __future__ import annotations

import base64
import json
import re

import yaml

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$|^\[[0-9A-Fa-f:]+\](:\d{1,5})?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
CONTAINERD_CA_NAME = "ca.crt"


def check_host(host: str) -> str:
    host = host.strip()
    if "://" in host or "/" in host or not _HOST.match(host):
        raise ValueError(f"{host!r} must be HOST or HOST:PORT (no scheme, no path)")
    return host


def check_namespace(namespace: str) -> str:
    if not _DNS_LABEL.match(namespace):
        raise ValueError(f"{namespace!r} is not a valid Kubernetes namespace name")
    return namespace


def containerd_dir(host: str) -> str:
    return f"/etc/containerd/certs.d/{host}"


def hosts_toml(host: str, *, insecure: bool = False, ca_file: str | None = None) -> str:
    """containerd registry host config. ``insecure`` = the registry speaks plain HTTP."""
    scheme = "http" if insecure else "https"
    lines = [
        f"# {containerd_dir(host)}/hosts.toml",
        f'server = "{scheme}://{host}"',
        "",
        f'[host."{scheme}://{host}"]',
        '  capabilities = ["pull", "resolve"]',
    ]
    if ca_file and not insecure:
        lines.append(f'  ca = "{containerd_dir(host)}/{CONTAINERD_CA_NAME}"')
    return "\n".join(lines) + "\n"


def daemon_json(host: str, *, insecure: bool = False) -> dict:
    """The fragment to merge into /etc/docker/daemon.json (empty when nothing is needed:
    a TLS registry with its CA in /etc/docker/certs.d/<host>/ca.crt needs no daemon.json entry)."""
    return {"insecure-registries": [host]} if insecure else {}


def dockerconfigjson(host: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"username": username, "password": password, "auth": auth}}}, separators=(",", ":"))


def pull_secret(host: str, username: str, password: str, *, namespace: str = "edge-ai", name: str | None = None) -> dict:
    """A Secret the AI Deployments name in ``imagePullSecrets``."""
    name = name or secret_name(host)
    payload = base64.b64encode(dockerconfigjson(host, username, password).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": check_namespace(namespace),
            "labels": {"app.kubernetes.io/managed-by": "edge-ai", "app.kubernetes.io/component": "registry-pull"},
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": payload},
    }


def secret_name(host: str) -> str:
    """``edge-ai-registry-<host-with-dashes>``, a valid DNS subdomain."""
    slug = re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")
    return f"edge-ai-registry-{slug}"[:253].rstrip("-")


def render_all(host: str, *, username: str | None = None, password: str | None = None, insecure: bool = False,
               ca_file: str | None = None, namespace: str = "edge-ai") -> dict[str, str]:
    """Every file a node needs, as text keyed by a suggested file name."""
    host = check_host(host)
    out = {"hosts.toml": hosts_toml(host, insecure=insecure, ca_file=ca_file),
           "daemon.json": json.dumps(daemon_json(host, insecure=insecure), indent=2) + "\n"}
    if username and password is not None:
        out["pull-secret.yaml"] = yaml.safe_dump(pull_secret(host, username, password, namespace=namespace), sort_keys=False)
    return out
