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
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

_HOST = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$|^\[[0-9A-Fa-f:]+\](:\d{1,5})?$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
CONTAINERD_CA_NAME = "ca.crt"
# The one pull Secret name: what `edgectl registry node-config` creates, what the master's AI pods
# name in imagePullSecrets (MASTER_IMAGE_PULL_SECRET's default) and what k8s/ configures.
PULL_SECRET_NAME = "edge-registry"


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
    return json.dumps(
        {"auths": {host: {"username": username, "password": password, "auth": auth}}},
        separators=(",", ":"),
    )


def pull_secret(
    host: str, username: str, password: str, *, namespace: str = "edge-ai", name: str | None = None
) -> dict:
    """A Secret the AI Deployments name in ``imagePullSecrets``."""
    name = name or secret_name(host)
    payload = base64.b64encode(dockerconfigjson(host, username, password).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": check_namespace(namespace),
            "labels": {
                "app.kubernetes.io/managed-by": "edge-ai",
                "app.kubernetes.io/component": "registry-pull",
            },
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": payload},
    }


def secret_name(host: str) -> str:
    """The pull Secret's name: the same for every registry host, the one the AI pods reference."""
    return PULL_SECRET_NAME


def check_secret_name(name: str) -> str:
    if not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
        raise ValueError(f"{name!r} is not a valid Kubernetes Secret name")
    return name


def render_all(
    host: str,
    *,
    username: str | None = None,
    password: str | None = None,
    insecure: bool = False,
    ca_file: str | None = None,
    namespace: str = "edge-ai",
    name: str = PULL_SECRET_NAME,
) -> dict[str, str]:
    """Every file a node needs, as text keyed by a suggested file name."""
    host = check_host(host)
    out = {
        "hosts.toml": hosts_toml(host, insecure=insecure, ca_file=ca_file),
        "daemon.json": json.dumps(daemon_json(host, insecure=insecure), indent=2) + "\n",
    }
    if username and password is not None:
        secret = pull_secret(
            host, username, password, namespace=namespace, name=check_secret_name(name)
        )
        out["pull-secret.yaml"] = yaml.safe_dump(secret, sort_keys=False)
    return out


@dataclass
class TrustResult:
    """What :func:`install_trust` did on a node."""

    written: list[str] = field(default_factory=list)  # node paths
    backups: list[str] = field(default_factory=list)  # node paths of the previous files
    restart_containerd: bool = False  # config.toml changed: containerd reads it only at start
    reload_docker: bool = False  # daemon.json changed: dockerd re-reads it on SIGHUP
    notes: list[str] = field(default_factory=list)


def _write(root: str, node_path: str, text: str) -> None:
    target = Path(root) / node_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, target)


def _read(root: str, node_path: str) -> str | None:
    path = Path(root) / node_path.lstrip("/")
    return path.read_text() if path.is_file() else None


def _backup(root: str, node_path: str, stamp: str) -> str:
    backup = f"{node_path}.bak-{stamp}"
    shutil.copy2(Path(root) / node_path.lstrip("/"), Path(root) / backup.lstrip("/"))
    return backup


def install_trust(
    root: str,
    host: str,
    *,
    insecure: bool = False,
    ca_pem: str | None = None,
    containerd: bool | None = None,
    docker: bool | None = None,
) -> TrustResult:
    """Install the registry's trust on the node whose filesystem is at ``root`` (``/`` on the node
    itself, the host mount in the registry-trust DaemonSet).

    containerd (``containerd``: None = when ``/etc/containerd/config.toml`` exists): sets the
    CRI registry ``config_path`` (only that key; legacy mirrors/configs.tls migrated into
    hosts.toml), backing the file up first, and writes ``hosts.toml`` (plus the CA beside it).
    Docker (``docker``: None = when ``/etc/docker/daemon.json`` exists): merges a plain-HTTP
    registry into ``insecure-registries``; a CA goes to ``/etc/docker/certs.d/<host>/ca.crt``.
    Every file is replaced atomically and only when its content changes; the answer says whether
    containerd must be restarted or dockerd reloaded. No credential is ever written here (the
    pull Secret has it)."""
    from services.master.registry import runtime_config as rc

    host = check_host(host)
    if insecure and ca_pem:
        raise ValueError("a CA is for a TLS registry; insecure means plain HTTP")
    if ca_pem and "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise ValueError("the CA is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = TrustResult()
    files: dict[str, str] = {}  # node path -> text, written when different

    config_toml = "/etc/containerd/config.toml"
    certs = rc.DEFAULT_CONFIG_PATH
    current = _read(root, config_toml)
    if containerd is None:
        containerd = current is not None
    if containerd:
        edit = rc.edit_containerd_config(current)
        certs = edit.config_path
        result.notes += edit.notes
        for folder, text in edit.hosts.items():
            if folder != host and _read(root, f"{certs}/{folder}/hosts.toml") is None:
                files[f"{certs}/{folder}/hosts.toml"] = text
            elif folder != host:
                result.notes.append(f"{certs}/{folder}/hosts.toml exists: kept, not migrated over")
        if edit.changed:
            if current is not None:
                result.backups.append(_backup(root, config_toml, stamp))
            files[config_toml] = edit.text
            result.restart_containerd = True
    hosts_dir = f"{certs}/{host}"
    files[f"{hosts_dir}/hosts.toml"] = hosts_toml(
        host, insecure=insecure, ca_file="ca" if ca_pem else None
    ).replace(containerd_dir(host), hosts_dir)
    if ca_pem:
        files[f"{hosts_dir}/{CONTAINERD_CA_NAME}"] = ca_pem
        files[f"/etc/docker/certs.d/{host}/ca.crt"] = ca_pem

    daemon = "/etc/docker/daemon.json"
    current_daemon = _read(root, daemon)
    if docker is None:
        docker = current_daemon is not None
    if docker and insecure:
        text, changed = rc.edit_docker_daemon_json(current_daemon, host)
        if changed:
            if current_daemon is not None:
                result.backups.append(_backup(root, daemon, stamp))
            files[daemon] = text
            result.reload_docker = True

    for node_path, text in files.items():
        if _read(root, node_path) != text:
            _write(root, node_path, text)
            result.written.append(node_path)
    result.written.sort()
    return result
