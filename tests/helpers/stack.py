"""Every port ``edgectl up`` would listen on, picked free for a test's own stack.

A stack a test starts must never take a fixed port: an ``edgectl up`` of a developer (or of
another test) on the same machine holds the defaults (8001..., 51883 for MQTT, 55432 for
Postgres...). The ports are read off ``StackSettings`` itself, so a port added there is covered
here without anyone remembering to."""

from __future__ import annotations

import json

from edgectl.stack.config import StackSettings
from tests.helpers.env import free_port


def _is_port_field(name: str) -> bool:
    return name.endswith("_port") or name.endswith("_ports")


def stack_port_env() -> tuple[dict[str, str], dict[str, int]]:
    """The ``EDGE_UP_*_PORT(S)`` environment for every port the stack has, and the ports by
    name (``setup``, ``mqtt``, ``db``, ``site2_master``, ``agent1``, ``registry2``, ...)."""
    env: dict[str, str] = {}
    ports: dict[str, int] = {}
    for name, field in StackSettings.model_fields.items():
        if not _is_port_field(name):
            continue
        variable = f"EDGE_UP_{name.upper()}"
        if name.endswith("_ports"):
            picked = [free_port() for _ in field.default]  # as many as the default has
            env[variable] = json.dumps(picked)
            stem = name.removesuffix("_ports")
            ports.update({f"{stem}{i + 1}": port for i, port in enumerate(picked)})
        else:
            ports[name.removesuffix("_port")] = free_port()
            env[variable] = str(ports[name.removesuffix("_port")])
    return env, ports
