"""compose.yaml as Compose itself reads it: YAML (anchors and merge keys resolved) plus
variable interpolation from the env file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"

# ${VAR}, ${VAR:?message}, ${VAR?message}, ${VAR:-default}, ${VAR-default}, $VAR; $$ is a literal $.
_VAR = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[?-])?(?P<arg>[^}]*)\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines skipped (the subset of the env-file format we
    use)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        out[key.strip()] = value.strip()
    return out


def variables_used(text: str) -> set[str]:
    return {m.group("braced") or m.group("bare") for m in _VAR.finditer(text) if m.group(0) != "$$"}


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation over every string of a loaded document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if present:
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-"):
            return arg
        return ""

    return _VAR.sub(one, value)


def load_raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def load(env: dict[str, str] | None = None) -> dict[str, Any]:
    return interpolate(load_raw(), read_env_file() if env is None else env)


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def env_files_of(service: dict[str, Any]) -> list[tuple[str, bool]]:
    """(path, required) of each env_file entry."""
    files = service.get("env_file") or []
    if isinstance(files, str):
        files = [files]
    out = []
    for f in files:
        if isinstance(f, str):
            out.append((f, True))
        else:
            out.append((f["path"], f.get("required", True)))
    return out


def published_ports(service: dict[str, Any]) -> list[tuple[int | None, int]]:
    """(host port, container port) for each ports entry (short syntax "H:C" or "C", or long)."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            out.append((int(p["published"]) if p.get("published") else None, int(p["target"])))
            continue
        parts = str(p).split("/")[0].split(":")
        out.append((int(parts[-2]) if len(parts) >= 2 else None, int(parts[-1])))
    return out


def option(command: list[str], name: str) -> str | None:
    """Value of ``--name V`` in an argv list."""
    for i, arg in enumerate(command):
        if arg == name and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
