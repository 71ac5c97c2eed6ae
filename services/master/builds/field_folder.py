"""The field's package folders: a Dockerfile and the program, no ``aipackage.yaml``.

The field named a package by the upload request alone (filename, version, ai_class) and built it
from its Dockerfile. Such a folder gets a manifest derived from the request's names and the
Dockerfile (its ``ENTRYPOINT``/``CMD`` is the command), written into a staged copy: the operator's
folder is never written to. A folder with its own manifest, or an archive, is used as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from services.master.packages import MANIFEST_NAMES, ArchiveLimits, parse_manifest
from services.master.registry.dockerfile import dockerfile_env
from shared.errors import Invalid, PayloadTooLarge

DOCKERFILE = "Dockerfile"
WHEELHOUSE = "wheels"  # where `edgectl ai pack` puts the wheels of a folder's requirements


def needs_derived_manifest(folder: Path) -> bool:
    return folder.is_dir() and not any((folder / name).is_file() for name in MANIFEST_NAMES)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _argv(arguments: str) -> tuple[list[str], bool]:
    """An instruction's argv and whether it was the exec (JSON) form."""
    if arguments.startswith("["):
        try:
            value = json.loads(arguments)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(a, str) for a in value):
            return value, True
    return ["/bin/sh", "-c", arguments], False


def dockerfile_command(text: str) -> list[str]:
    """The command the Dockerfile's image runs: ENTRYPOINT + CMD as Docker combines them."""
    entrypoint: tuple[list[str], bool] | None = None
    cmd: tuple[list[str], bool] | None = None
    for word, arguments in _instructions(text):
        if word == "FROM":
            entrypoint = cmd = None  # a later stage starts afresh
        elif word == "ENTRYPOINT" and arguments:
            entrypoint = _argv(arguments)
        elif word == "CMD" and arguments:
            cmd = _argv(arguments)
    if entrypoint is not None:
        argv, exec_form = entrypoint
        return argv + (cmd[0] if exec_form and cmd is not None else [])
    if cmd is not None:
        argv, exec_form = cmd
        # "CMD python main.py": run it as the words it is rather than through a shell.
        return argv if exec_form else shlex.split(argv[2])
    return []


# pip options that take a value (skipped with it); -r/--requirement is read, -c only constrains.
_PIP_VALUE_OPTIONS = {
    "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
    "--trusted-host", "--target", "-t", "--prefix", "--root", "--platform", "--python-version",
    "--implementation", "--abi", "--cache-dir", "--src", "--progress-bar", "--timeout",
    "--retries", "--proxy", "--cert", "--client-cert", "--log", "--upgrade-strategy",
}  # fmt: skip
_PIP_PROGRAMS = ("pip", "pip3")


def _requirements_file(folder: Path, name: str, line: str) -> list[str]:
    path = folder / name.lstrip("/").removeprefix("app/")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise Invalid(
            f"the Dockerfile line `RUN {line}` installs from {name!r}, which is not in the "
            f"folder {folder.name!r}",
            field="filename",
        ) from None
    out = []
    for raw in text.splitlines():
        item = raw.split(" #", 1)[0].strip()
        if item and not item.startswith(("#", "-")):
            out.append(item)
    return out


def _pip_installs(words: list[str]) -> list[str] | None:
    """The arguments after ``install`` when ``words`` is a pip install command, else None."""
    if not words:
        return None
    program = Path(words[0]).name
    if program in _PIP_PROGRAMS or re.fullmatch(r"pip3(\.\d+)?", program):
        rest = words[1:]
    elif re.fullmatch(r"python3?(\.\d+)?", program) and words[1:3] == ["-m", "pip"]:
        rest = words[3:]
    else:
        return None
    return rest[1:] if rest[:1] == ["install"] else None


def dockerfile_requirements(text: str, folder: Path) -> list[str]:
    """The Python requirements a Dockerfile's ``RUN pip install`` lines install (``-r FILE`` read
    from the folder): what the edge agent installs for a field folder it runs without an image."""
    found: list[str] = []
    for word, arguments in _instructions(text):
        if word == "FROM":
            found = []  # only the last stage is what runs
        if word != "RUN" or "pip" not in arguments:
            continue
        for command in re.split(r"&&|;|\|\|", arguments):
            args = _pip_installs(shlex.split(command, comments=True))
            if args is None:
                continue
            skip_value = False
            for i, arg in enumerate(args):
                if skip_value:
                    skip_value = False
                elif arg in ("-r", "--requirement"):
                    if i + 1 < len(args):
                        found += _requirements_file(folder, args[i + 1], arguments)
                    skip_value = True
                elif arg.startswith("--requirement="):
                    found += _requirements_file(folder, arg.split("=", 1)[1], arguments)
                elif arg in _PIP_VALUE_OPTIONS:
                    skip_value = True
                elif arg.startswith("-"):
                    continue
                else:
                    found.append(arg)
    return list(dict.fromkeys(found))


def derive_manifest(folder: Path, filename: str, version: str, ai_class: str) -> str:
    """The aipackage.yaml text for a field folder; Invalid naming the problem when it cannot be."""
    dockerfile = folder / DOCKERFILE
    if not dockerfile.is_file():
        raise Invalid(
            f"the package folder {folder.name!r} has neither aipackage.yaml nor a Dockerfile",
            field="filename",
        )
    try:
        text = dockerfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(
            f"the Dockerfile of {folder.name!r} cannot be read: {exc}", field="filename"
        ) from None
    command = dockerfile_command(text)
    if not command:
        raise Invalid(
            f"the Dockerfile of {folder.name!r} has no CMD or ENTRYPOINT: "
            "the program to run is unknown",
            field="filename",
        )
    manifest: dict[str, Any] = {
        "filename": filename,
        "version": version,
        "ai_class": ai_class,
        "description": f"{filename} {version} class {ai_class}, from the field's package folder",
        "command": command,
        "dockerfile": DOCKERFILE,
    }
    requirements = dockerfile_requirements(text, folder)
    if requirements:
        manifest["requirements"] = requirements
    if (folder / WHEELHOUSE).is_dir():
        manifest["wheelhouse"] = WHEELHOUSE
    env = dockerfile_env(text)
    if env:
        manifest["env"] = env
    body = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)
    parse_manifest(body.encode())  # the same rules as a manifest written by hand
    return body


def _folder_size(folder: Path, limits: ArchiveLimits) -> None:
    total = files = 0
    for root, dirs, names in os.walk(folder):
        files += len(names) + len(dirs)
        for name in names:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
        if files > limits.max_files or total > limits.max_unpacked_bytes:
            raise PayloadTooLarge(
                f"the package folder {folder.name!r} is over the package limits "
                f"({limits.max_files} files, {limits.max_unpacked_bytes} bytes)",
                field="filename",
            )


def _stage(folder: Path, manifest: str, tmp_dir: Path, limits: ArchiveLimits) -> Path:
    _folder_size(folder, limits)
    staged = Path(tempfile.mkdtemp(dir=tmp_dir, prefix="field-")) / folder.name
    shutil.copytree(folder, staged, symlinks=True)
    (staged / MANIFEST_NAMES[0]).write_text(manifest, encoding="utf-8")
    return staged


@contextlib.asynccontextmanager
async def with_manifest(
    source: Path,
    tmp_dir: Path,
    limits: ArchiveLimits,
    *,
    filename: str,
    version: str,
    ai_class: str,
) -> AsyncIterator[Path]:
    """``source`` itself, or a staged copy of a field folder with its derived manifest."""
    if not needs_derived_manifest(source):
        yield source
        return
    manifest = await asyncio.to_thread(derive_manifest, source, filename, version, ai_class)
    staged = await asyncio.to_thread(_stage, source, manifest, tmp_dir, limits)
    try:
        yield staged
    finally:
        await asyncio.to_thread(shutil.rmtree, staged.parent, True)
