"""Render a kustomization: with the real `kubectl kustomize` when it is installed, else with a
small renderer of exactly the Kustomize features k8s/ uses.

The fallback supports: ``resources`` (files and directories holding a kustomization.yaml),
``labels`` (``pairs`` on metadata.labels only, no selectors or templates), ``images``
(newName/newTag) and ``patches`` (``path`` to strategic-merge patches that change maps and
scalars, matched by apiVersion/kind/name/namespace). Anything else in a kustomization is refused,
so the fallback cannot silently render something else than kustomize would.
A test renders k8s/ both ways and compares them wherever kubectl is present.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "labels", "images", "patches"}


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(directory: Path) -> list[dict[str, Any]]:
    """The manifests `kubectl kustomize DIRECTORY` gives (or the fallback's equivalent)."""
    exe = kubectl()
    if exe:
        return render_with_kubectl(directory, exe)
    return render_fallback(directory)


def render_with_kubectl(directory: Path, exe: str | None = None) -> list[dict[str, Any]]:
    out = subprocess.run(
        [exe or "kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_fallback(directory: Path) -> list[dict[str, Any]]:
    directory = Path(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_KEYS
    if unsupported:
        raise ValueError(
            f"{directory}/kustomization.yaml uses {sorted(unsupported)}, "
            "which the fallback renderer does not support"
        )

    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources") or []:
        path = directory / resource
        if path.is_dir():
            objects.extend(render_fallback(path))
        else:
            objects.extend(d for d in yaml.safe_load_all(path.read_text()) if d)

    for patch_ref in kustomization.get("patches") or []:
        if set(patch_ref) != {"path"}:
            raise ValueError(f"only `patches: - path:` is supported, not {patch_ref}")
        for patch in yaml.safe_load_all((directory / patch_ref["path"]).read_text()):
            if patch:
                _apply_patch(objects, patch)

    for entry in kustomization.get("labels") or []:
        if set(entry) - {"pairs"}:
            raise ValueError(f"only `labels: - pairs:` is supported, not {entry}")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])

    for image in kustomization.get("images") or []:
        for obj in objects:
            for container in _containers(obj):
                _set_image(container, image)
    return objects


def _key(obj: dict[str, Any]) -> tuple:
    meta = obj.get("metadata", {})
    return obj.get("apiVersion"), obj.get("kind"), meta.get("namespace"), meta.get("name")


def _apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    matches = [o for o in objects if _key(o) == _key(patch)]
    if len(matches) != 1:
        raise ValueError(f"patch target {_key(patch)} matches {len(matches)} objects")
    _merge(matches[0], patch)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif isinstance(value, list):
            raise ValueError(
                f"list in a patch ({key}): strategic merge "
                "of lists is not supported by the fallback"
            )
        else:
            target[key] = copy.deepcopy(value)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod = (spec.get("template") or {}).get("spec") or {}
    return [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]


def _set_image(container: dict[str, Any], image: dict[str, Any]) -> None:
    current = container.get("image", "")
    name, tag = current, None
    if ":" in current.rsplit("/", 1)[-1]:
        name, tag = current.rsplit(":", 1)
    if name != image["name"]:
        return
    name = image.get("newName", name)
    tag = image.get("newTag", tag)
    container["image"] = f"{name}:{tag}" if tag else name
