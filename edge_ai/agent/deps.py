"""A package's Python dependencies on the agent path.

A package's manifest may list ``requirements`` (a field folder's ``RUN pip install`` lines and
requirements.txt are read into it at upload) and a ``wheelhouse`` (a folder of wheels shipped in
the package, `edgectl ai pack`). Wheels with native code come in one folder per architecture
(``wheels/arm64``, ``wheels/amd64``: `edgectl ai pack --platform`); the agent installs from its
own architecture's folder (and the wheelhouse itself, where pure wheels may lie), and refuses a
package that has such folders but none for its architecture. The agent installs them with its
own interpreter's pip into an environment folder of its own (``pip install --target``), put
first on the program's PYTHONPATH: the program runs with the agent's interpreter, seeing its
dependencies before anything else.

Environments are keyed by a content hash (interpreter version and platform, the requirements,
every shipped wheel's bytes, the index), so the next version of a package with the same
dependencies reuses the same folder at once. Each is built in a temporary folder renamed into
place when pip succeeded: a half-installed environment is never used. Without a site index
(``AGENT_PIP_INDEX_URL``) pip runs with ``--no-index``: only the shipped wheels are used.

Runs on the edge: Python 3.8+.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from edge_common.platforms import ARCHITECTURES, architecture

MANIFEST_NAMES = ("aipackage.yaml", "aipackage.toml")
PIP_TAIL_LINES = 15


class DependencyError(Exception):
    """The package's dependencies cannot be installed (pip's own message)."""


def read_requirements(directory: Path) -> tuple[list[str], Path | None]:
    """(requirements, wheelhouse folder or None) from the unpacked package's manifest."""
    for name in MANIFEST_NAMES:
        path = directory / name
        if path.is_file():
            break
    else:
        return [], None
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        import tomli  # the same parser on Python 3.8 (the edges) and later

        raw = tomli.loads(text)
    else:
        import yaml

        raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        return [], None
    requirements = [str(r).strip() for r in raw.get("requirements") or []]
    for item in requirements:
        if not item or item.startswith("-"):
            raise DependencyError(f"{name}: {item!r} is not a requirement (no pip options)")
    wheelhouse = raw.get("wheelhouse")
    folder = None
    if wheelhouse:
        folder = (directory / str(wheelhouse)).resolve()
        if directory.resolve() not in folder.parents or not folder.is_dir():
            raise DependencyError(f"{name}: wheelhouse {wheelhouse!r} is not a folder in it")
    return requirements, folder


def wheel_folders(wheelhouse: Path, machine: str | None = None) -> list[Path]:
    """The folders pip finds the package's wheels in on this machine (``machine``: default
    ``platform.machine()``): the wheelhouse itself when it holds wheels, and its folder for this
    architecture (``wheels/arm64`` on an aarch64 box) when it has folders per architecture.
    DependencyError when it has such folders but not this machine's."""
    arch = architecture(machine)
    per_arch = sorted(
        d.name
        for d in wheelhouse.iterdir()
        if d.is_dir() and d.name in ARCHITECTURES and any(d.glob("*.whl"))
    )
    folders = [wheelhouse] if any(wheelhouse.glob("*.whl")) else []
    if per_arch:
        if arch not in per_arch:
            raise DependencyError(
                f"the package carries native code for {', '.join(per_arch)} only and this edge "
                f"is {arch} ({machine or platform.machine()}): pack its wheels for it too "
                f"(edgectl ai pack --platform linux/{arch})"
            )
        folders.append(wheelhouse / arch)
    return folders


def environment_key(requirements: list[str], folders: list[Path], index_url: str | None) -> str:
    """What makes two environments the same: interpreter, platform, requirements, wheels, index."""
    h = hashlib.sha256()
    parts: dict[str, object] = {
        "python": list(sys.version_info[:2]),
        "implementation": sys.implementation.name,
        "machine": platform.machine(),
        "requirements": sorted(requirements),
        "index": index_url or "",
    }
    h.update(json.dumps(parts, sort_keys=True).encode())
    for folder in folders:
        for wheel in sorted(folder.glob("*.whl")):
            h.update(wheel.name.encode())
            with open(wheel, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:24]


def _pip_env() -> dict[str, str]:
    """The agent's environment without pip settings of the box (the index is the operator's
    AGENT_PIP_INDEX_URL, nothing else) and without the agent's secrets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "AGENT_")) and not k.endswith(("TOKEN", "KEY", "PASSWORD"))
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def ensure_environment(
    envs_dir: Path,
    requirements: list[str],
    wheelhouse: Path | None,
    *,
    index_url: str | None = None,
    timeout_s: float = 900.0,
) -> Path:
    """The environment folder holding ``requirements`` (installed now unless already there).
    Blocking: run it in a thread. DependencyError with pip's message when they cannot be had."""
    folders = wheel_folders(wheelhouse) if wheelhouse is not None else []
    key = environment_key(requirements, folders, index_url)
    target = envs_dir / key
    if target.is_dir():
        return target
    envs_dir.mkdir(parents=True, exist_ok=True)
    tmp = envs_dir / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
    argv = [sys.executable, "-m", "pip", "install", "--no-input", "--target", str(tmp)]
    argv += ["--no-warn-script-location", "--no-cache-dir"]
    argv += ["--index-url", index_url] if index_url else ["--no-index"]
    for folder in folders:
        argv += ["--find-links", str(folder)]
    argv += ["--", *requirements]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, env=_pip_env()
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DependencyError(
            f"installing {', '.join(requirements)} took longer than {timeout_s:.0f} s"
        ) from None
    except OSError as exc:
        raise DependencyError(f"pip cannot run with {sys.executable}: {exc}") from None
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise DependencyError(
            "pip could not install "
            + ", ".join(requirements)
            + (" (no index: only the wheels shipped in the package)" if not index_url else "")
            + ": "
            + " | ".join(lines[-PIP_TAIL_LINES:])
        )
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # installed meanwhile by another run
        if not target.is_dir():
            raise
    return target


def prune_environments(envs_dir: Path, keep: set[Path]) -> None:
    """Remove environments no instance uses (and leftovers of interrupted installs)."""
    if not envs_dir.is_dir():
        return
    for child in envs_dir.iterdir():
        if child.is_dir() and child not in keep:
            shutil.rmtree(child, ignore_errors=True)
