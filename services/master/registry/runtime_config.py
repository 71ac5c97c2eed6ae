"""The container runtimes' own configuration, edited so that a node honours the registry trust.

containerd 1.6/1.7 reads ``certs.d/<host>/hosts.toml`` only when ``config_path`` is set in the
CRI plugin's ``registry`` table of ``/etc/containerd/config.toml`` (2.0 reads it by default).
This module sets that one key and keeps the rest of the file as it was (comments and order
included). A node fixed by hand carries the deprecated ``registry.mirrors`` /
``registry.configs.<host>.tls`` entries instead; containerd refuses ``config_path`` beside them
(the CRI plugin does not load), so they are translated into hosts.toml files and removed.
Credentials (``configs.<host>.auth``) are never copied into a plain file: containerd still
accepts them beside ``config_path``, so they stay where the operator put them, and the answer
says to move them into an imagePullSecret.

Docker reads ``insecure-registries`` from ``/etc/docker/daemon.json`` (reloadable with SIGHUP);
the registry is merged into that list, every other key kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.items import Table

DEFAULT_CONFIG_PATH = "/etc/containerd/certs.d"
DOCKER_HUB = "docker.io"

# The CRI plugin's registry table, per config.toml schema version.
_CRI_PLUGIN = {
    1: ("cri",),
    2: ("io.containerd.grpc.v1.cri",),
    3: ("io.containerd.cri.v1.images",),
}


class RuntimeConfigError(ValueError):
    """The runtime's configuration file cannot be read or edited safely (nothing was written)."""


@dataclass
class ContainerdEdit:
    """What :func:`edit_containerd_config` decided."""

    text: str  # the new config.toml
    changed: bool
    config_path: str  # where containerd reads hosts.toml (as the node sees it)
    hosts: dict[str, str] = field(default_factory=dict)  # migrated: host dir name -> hosts.toml
    notes: list[str] = field(default_factory=list)


def _version(doc: tomlkit.TOMLDocument) -> int:
    raw = doc.get("version", 1)
    if not isinstance(raw, int) or raw not in _CRI_PLUGIN:
        raise RuntimeConfigError(f"config.toml: version = {raw!r} is not one of 1, 2, 3")
    return raw


def _table(parent: Any, key: str, *, create: bool) -> Table | None:
    value = parent.get(key)
    if value is None:
        if not create:
            return None
        value = tomlkit.table()
        parent[key] = value
        return parent[key]
    if not isinstance(value, dict):
        raise RuntimeConfigError(f"config.toml: {key!r} is not a table")
    return value  # type: ignore[return-value]


def _registry_table(doc: tomlkit.TOMLDocument, version: int, *, create: bool) -> Table | None:
    node: Any = doc
    for key in ("plugins", *_CRI_PLUGIN[version], "registry"):
        node = _table(node, key, create=create)
        if node is None:
            return None
    return node


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for what we write


def _host_of(endpoint: str) -> str:
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    return parts.netloc


def _default_server(host: str) -> str:
    return "https://registry-1.docker.io" if host == DOCKER_HUB else f"https://{host}"


def _host_lines(endpoint: str, tls: dict[str, Any]) -> list[str]:
    lines = [f"[host.{_toml_str(endpoint)}]", '  capabilities = ["pull", "resolve"]']
    if tls.get("insecure_skip_verify"):
        lines.append("  skip_verify = true")
    if tls.get("ca_file"):
        lines.append(f"  ca = {_toml_str(str(tls['ca_file']))}")
    if tls.get("cert_file") and tls.get("key_file"):
        lines.append(
            f"  client = [[{_toml_str(str(tls['cert_file']))}, {_toml_str(str(tls['key_file']))}]]"
        )
    elif tls.get("cert_file"):
        lines.append(f"  client = {_toml_str(str(tls['cert_file']))}")
    return lines


def _migrated_hosts(
    mirrors: dict[str, Any], tls_by_host: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """hosts.toml text per certs.d folder for the legacy ``mirrors`` and ``configs.*.tls``."""
    out: dict[str, str] = {}
    for host, mirror in mirrors.items():
        endpoints = [str(e) for e in (mirror or {}).get("endpoint", [])]
        folder = "_default" if host == "*" else host
        lines = ["# migrated from config.toml registry.mirrors by edgectl registry install-trust"]
        if host != "*":
            own = [e for e in endpoints if _host_of(e) == host]
            lines.append(f"server = {_toml_str(own[0] if own else _default_server(host))}")
        for endpoint in endpoints:
            lines += ["", *_host_lines(endpoint, tls_by_host.get(_host_of(endpoint), {}))]
        out[folder] = "\n".join(lines) + "\n"
    for host, tls in tls_by_host.items():
        if host in out or any(
            _host_of(e) == host for m in mirrors.values() for e in m.get("endpoint", [])
        ):
            continue
        lines = [
            "# migrated from config.toml registry.configs.tls by edgectl registry install-trust",
            f"server = {_toml_str(_default_server(host))}",
            "",
            *_host_lines(_default_server(host), tls),
        ]
        out[host] = "\n".join(lines) + "\n"
    return out


def edit_containerd_config(
    text: str | None, *, config_path: str = DEFAULT_CONFIG_PATH
) -> ContainerdEdit:
    """Set the CRI registry ``config_path`` in config.toml ``text`` (None: no file yet), migrating
    legacy ``mirrors``/``configs.*.tls`` into hosts.toml texts. An existing ``config_path`` is kept
    (the answer names it: hosts.toml goes there). Nothing else in the file changes."""
    try:
        doc = tomlkit.parse(text) if text is not None else tomlkit.document()
    except tomlkit.exceptions.ParseError as exc:
        raise RuntimeConfigError(f"config.toml is not valid TOML: {exc}") from None
    if text is None:
        doc["version"] = 2
    version = _version(doc)
    registry = _registry_table(doc, version, create=True)
    assert registry is not None
    notes: list[str] = []

    mirrors_raw = registry.get("mirrors") or {}
    configs_raw = registry.get("configs") or {}
    if not isinstance(mirrors_raw, dict) or not isinstance(configs_raw, dict):
        raise RuntimeConfigError("config.toml: registry.mirrors / registry.configs are not tables")
    mirrors = {str(k): dict(v) for k, v in mirrors_raw.items()}
    tls_by_host = {
        str(k): dict(v["tls"]) for k, v in configs_raw.items() if isinstance(v, dict) and "tls" in v
    }
    hosts = _migrated_hosts(mirrors, tls_by_host)
    if "mirrors" in registry:
        del registry["mirrors"]
    for host in tls_by_host:
        del configs_raw[host]["tls"]
        if not configs_raw[host]:
            del configs_raw[host]
    if "configs" in registry and not registry["configs"]:
        del registry["configs"]
    for host, entry in (registry.get("configs") or {}).items():
        if isinstance(entry, dict) and "auth" in entry:
            notes.append(
                f"registry.configs.{host!r}.auth left in config.toml (containerd still reads it); "
                "move the credential into an imagePullSecret and remove it there"
            )
    if hosts:
        notes.append(
            "migrated registry.mirrors/configs.tls for "
            + ", ".join(sorted(hosts))
            + " into hosts.toml files (containerd refuses them beside config_path)"
        )

    current = registry.get("config_path")
    if current:
        used = str(current).split(":")[0]
    else:
        registry["config_path"] = config_path
        used = config_path
    new_text = tomlkit.dumps(doc)
    return ContainerdEdit(
        text=new_text,
        changed=new_text != (text or ""),
        config_path=used,
        hosts=hosts,
        notes=notes,
    )


def edit_docker_daemon_json(text: str | None, host: str) -> tuple[str, bool]:
    """Merge ``host`` into ``insecure-registries`` of daemon.json ``text`` (None: no file yet),
    keeping every other key; answers (new text, changed)."""
    try:
        data = json.loads(text) if text and text.strip() else {}
    except json.JSONDecodeError as exc:
        raise RuntimeConfigError(f"daemon.json is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RuntimeConfigError("daemon.json is not a JSON object")
    listed = data.get("insecure-registries", [])
    if not isinstance(listed, list):
        raise RuntimeConfigError("daemon.json: insecure-registries is not a list")
    if host in listed:
        return text or "", False
    data["insecure-registries"] = [*listed, host]
    return json.dumps(data, indent=2) + "\n", True
