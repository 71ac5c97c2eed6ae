"""A package's Dockerfile as the builders see it: its instructions with their line numbers, what
the engine-free layer builder can carry out exactly, and its ``FROM`` lines resolved against the
private registry.

The layer builder (services/master/registry/image.py) puts the package, as one layer, on
MASTER_BASE_IMAGE and runs the manifest's command in it. That is exactly what a Dockerfile made
only of ``FROM``, ``COPY``/``ADD`` of the package, ``WORKDIR``, ``CMD``/``ENTRYPOINT`` and
metadata does; anything else (``RUN`` above all) needs a real builder, and is refused naming the
line rather than skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import Invalid

from ..packages.manifest import PackageManifest
from .reference import ImageRef

# Instructions the layer builder's result matches (metadata, or what it does anyway).
LAYER_BUILDABLE = frozenset(
    {"FROM", "COPY", "ADD", "WORKDIR", "CMD", "ENTRYPOINT", "LABEL", "EXPOSE", "ARG", "MAINTAINER"}
)
BUILDER_HINT = (
    "configure a real builder: install buildah on the master and set MASTER_BUILDER=buildah, "
    "or set MASTER_DOCKER_HOST to a Docker or podman engine (MASTER_BUILDER=docker)"
)


@dataclass(frozen=True)
class Instruction:
    line: int  # 1-based line of the instruction's first line
    word: str  # upper case: RUN, COPY ...
    arguments: str  # continuation lines joined

    def __str__(self) -> str:
        text = f"{self.word} {self.arguments}".strip()
        return text if len(text) <= 120 else text[:117] + "..."


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments and blanks dropped."""
    out: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append(Instruction(start, word.upper(), rest.strip()))
    if pending:
        word, _, rest = pending.strip().partition(" ")
        out.append(Instruction(start, word.upper(), rest.strip()))
    return out


def _env_pairs(arguments: str) -> dict[str, str]:
    """``ENV A=1 B="x y"`` or the old ``ENV A value`` form."""
    import shlex

    try:
        words = shlex.split(arguments)
    except ValueError:
        return {}
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words if "=" in w)


def dockerfile_env(text: str) -> dict[str, str]:
    """The variables the Dockerfile's ``ENV`` lines set (the last stage's)."""
    env: dict[str, str] = {}
    for ins in instructions(text):
        if ins.word == "FROM":
            env = {}
        elif ins.word == "ENV":
            env.update(_env_pairs(ins.arguments))
    return env


def layer_builder_refusal(text: str, manifest: PackageManifest) -> str | None:
    """Why the layer builder cannot build this Dockerfile exactly (naming the line), or None."""
    dockerfile = manifest.dockerfile or "Dockerfile"
    stages = 0
    for ins in instructions(text):
        where = f"{dockerfile} line {ins.line}: {ins}"
        if ins.word == "FROM":
            stages += 1
            if stages > 1:
                return f"{where}: a multi-stage build needs a real builder; {BUILDER_HINT}"
            continue
        if ins.word == "ENV":
            missing = {
                k: v for k, v in _env_pairs(ins.arguments).items() if manifest.env.get(k) != v
            }
            if missing:
                return (
                    f"{where}: the manifest's env does not set {', '.join(sorted(missing))}; "
                    f"add it there or {BUILDER_HINT}"
                )
            continue
        if ins.word in ("COPY", "ADD") and (
            "--from" in ins.arguments or re.search(r"(^|\s)(https?|git)://", ins.arguments)
        ):
            return f"{where}: only the package's own files can be copied; {BUILDER_HINT}"
        if ins.word not in LAYER_BUILDABLE:
            what = "run build steps" if ins.word == "RUN" else f"carry out {ins.word}"
            return f"{where}: the engine-free layer builder cannot {what}; {BUILDER_HINT}"
    return None


def runs_steps(text: str) -> Instruction | None:
    """The first ``RUN`` instruction, if any (it executes programs of the target platform)."""
    return next((i for i in instructions(text) if i.word == "RUN"), None)


@dataclass(frozen=True)
class BaseReference:
    line: int
    written: str  # as in the Dockerfile
    resolved: str  # host/repository:tag in the private registry


def private_name(image: str, registry_host: str) -> str:
    """Where an image named ``image`` lives in the private registry: the same path without its
    registry host (``nvcr.io/nvidia/l4t-base:r35.4.1`` -> ``HOST/nvidia/l4t-base:r35.4.1``,
    ``python:3.11-slim`` and ``docker.io/library/python:3.11-slim`` -> ``HOST/python:3.11-slim``).
    ``edgectl registry import-base`` stores base images under the same rule."""
    ref = ImageRef.parse(image, field="FROM")
    repository = ref.repository
    if ref.host in (None, "docker.io", "index.docker.io", "registry-1.docker.io"):
        repository = repository.removeprefix("library/")
    suffix = f"@{ref.digest}" if ref.digest else f":{ref.tag or 'latest'}"
    return f"{registry_host}/{repository}{suffix}"


def base_references(text: str, registry_host: str) -> list[BaseReference]:
    """The ``FROM`` images, resolved against the private registry (``scratch``, earlier stages
    and names built from build arguments are left as they are)."""
    stages: set[str] = set()
    out: list[BaseReference] = []
    # `ARG BASE_IMAGE=python:3.11-slim` before the first FROM, then `FROM ${BASE_IMAGE}` (the
    # field's pattern): the default is what the master builds with (it passes no build args).
    defaults: dict[str, str] = {}
    seen_from = False
    for ins in instructions(text):
        if ins.word == "ARG" and not seen_from:
            name, eq, value = ins.arguments.partition("=")
            if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
                defaults[name.strip()] = value.strip().strip('"')
        if ins.word != "FROM":
            continue
        seen_from = True
        words = [w for w in ins.arguments.split() if not w.startswith("--")]
        if not words:
            raise Invalid(f"Dockerfile line {ins.line}: FROM names no image", field="dockerfile")
        written = words[0]
        image = re.sub(
            r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
            lambda m: defaults.get(m.group(1) or m.group(2), m.group(0)),
            written,
        )
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())
        if image == "scratch" or image.lower() in stages or "$" in image:
            continue
        try:
            resolved = private_name(image, registry_host)
        except Invalid:
            raise Invalid(
                f"Dockerfile line {ins.line}: {image!r} is not an image name", field="dockerfile"
            ) from None
        out.append(BaseReference(ins.line, written, resolved))
    return out


def rewrite_from_lines(text: str, bases: list[BaseReference]) -> str:
    """The Dockerfile with each ``FROM`` image replaced by its private-registry name."""
    by_line = {b.line: b for b in bases}
    lines = text.splitlines()
    for number, base in by_line.items():
        line = lines[number - 1]
        lines[number - 1] = re.sub(
            rf"(?<=\s){re.escape(base.written)}(?=\s|$)", base.resolved, line, count=1
        )
    return "\n".join(lines) + "\n"
