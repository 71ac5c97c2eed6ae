"""``edgectl ai``: upload AI packages to the master (streamed, with a progress bar) and look at
them."""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import typer

ai_app = typer.Typer(help="AI packages on the master.", no_args_is_help=True)

CHUNK = 256 * 1024


def _master_url(value: str | None) -> str:
    return (value or os.environ.get("EDGE_MASTER_URL") or "http://127.0.0.1:8002").rstrip("/")


def _token(token_env: str) -> str:
    token = os.environ.get(token_env)
    if not token:
        raise typer.BadParameter(
            f"environment variable {token_env} is not set (the operator's token)",
            param_hint="--token-env",
        )
    return token


def _pack_folder(folder: Path) -> Path:
    """A package folder becomes a tar.gz in a temp file (the master validates and normalises it)."""
    fd, name = tempfile.mkstemp(prefix="edgectl-", suffix=".tar.gz")
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return Path(name)


def _chunks(path: Path, advance) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            advance(len(block))
            yield block


@ai_app.command("upload")
def upload(
    path: Path = typer.Argument(
        ...,
        exists=True,
        help="package archive (zip / tar.gz) or package folder with aipackage.yaml",
    ),
    filename: str = typer.Option(None, "--filename", help="must match the manifest when given"),
    version: str = typer.Option(None, "--version", help="must match the manifest when given"),
    ai_class: str = typer.Option(None, "--ai-class", help="must match the manifest when given"),
    condition: str = typer.Option(
        None, "--condition", help="the condition this variant serves (SUNNY, RAINY ...)"
    ),
    master_url: str = typer.Option(
        None, "--master-url", help="default: EDGE_MASTER_URL or http://127.0.0.1:8002"
    ),
    token_env: str = typer.Option(
        "EDGE_OPERATOR_TOKEN",
        "--token-env",
        metavar="VAR",
        help="environment variable holding the token",
    ),
    wait: bool = typer.Option(
        False, "--wait", help="wait until the build has ended and print the AI"
    ),
    timeout: float = typer.Option(600, "--timeout", help="seconds to wait with --wait"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Upload a package; the body is streamed from disk with a progress bar, never read whole."""
    import httpx
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from edge_ai.common.http import CallFailed, EdgeSyncClient

    token = _token(token_env)
    archive = _pack_folder(path) if path.is_dir() else path
    try:
        size = archive.stat().st_size
        params = {
            k: v
            for k, v in (
                ("filename", filename),
                ("version", version),
                ("ai_class", ai_class),
                ("condition", condition),
            )
            if v is not None
        }
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
        }
        base = _master_url(master_url)
        columns = (
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, disable=quiet, transient=False) as progress:
            task = progress.add_task(f"upload {path.name}", total=size)
            with EdgeSyncClient("master", base, timeout=httpx.Timeout(600, connect=10)) as master:
                try:
                    body = master.json(
                        "POST",
                        "/ai-packages",
                        params=params,
                        headers=headers,
                        content=_chunks(archive, lambda n: progress.advance(task, n)),
                    )
                except CallFailed as exc:
                    if exc.unreachable:
                        typer.echo(f"edgectl: cannot reach master at {base}: {exc}", err=True)
                    else:
                        typer.echo(
                            f"edgectl ai upload: refused ({exc.status}): {exc.detail}", err=True
                        )
                    raise typer.Exit(1) from None
        ai = body["ai"]
        typer.echo(
            f"AI {ai['id']}: {ai['filename']} {ai['version']} class "
            f"{ai['ai_class']}, package {body['package_digest']} "
            f"({'stored' if body['stored'] else 'already stored'}), build {body['build']}"
        )
        if wait:
            ai = _wait_built(base, token, ai["id"], timeout)
            typer.echo(json.dumps(ai, indent=2, default=str))
            if ai["status"] != "ready":
                raise typer.Exit(1)
    finally:
        if archive != path:
            archive.unlink(missing_ok=True)


def _wait_built(base: str, token: str, ai_id: int, timeout: float) -> dict:
    """The AI once its build has ended: setup's status final *and* the master's build record no
    longer queued or running (setup marks an AI ready a moment before the build job ends)."""
    from edge_ai.common.http import EdgeSyncClient

    deadline = time.monotonic() + timeout
    with EdgeSyncClient("master", base, token=token, timeout=30) as master:
        while True:
            ai = master.json("GET", f"/ai-packages/{ai_id}")
            build_state = (ai.get("build") or {}).get("state")
            ended = ai.get("status") in ("ready", "failed", "removed") and build_state not in (
                "queued",
                "running",
            )
            if ended or time.monotonic() > deadline:
                return ai
            time.sleep(0.5)


def _use_master(master_url: str | None) -> None:
    if master_url:
        os.environ["EDGE_MASTER_URL"] = master_url


AI_COLUMNS = ["ID", "FILENAME", "VERSION", "CLASS", "CONDITION", "STATUS", "IMAGE"]


@ai_app.command("list")
def list_ais(
    master_url: str = typer.Option(None, "--master-url", help="default: EDGE_MASTER_URL"),
    token_env: str = typer.Option("EDGE_OPERATOR_TOKEN", "--token-env", metavar="VAR"),
    as_json: bool = typer.Option(False, "--json", help="print the service's JSON (for scripts)"),
) -> None:
    """The AI packages (id, names, condition, status, image)."""
    from edgectl.ops import client

    _use_master(master_url)
    body = client.call(
        "GET", "master", "/ai-packages", params={"limit": 10_000}, token_env=token_env
    )
    if as_json:
        client.print_json(body)
        return
    rows = [
        [
            ai["id"],
            ai["filename"],
            ai["version"],
            ai["ai_class"],
            ai.get("condition"),
            ai["status"],
            ai.get("image_ref"),
        ]
        for ai in body["items"]
    ]
    client.console().print(client.table(None, AI_COLUMNS, rows))


@ai_app.command("show")
def show_ai(
    ai_id: int = typer.Argument(..., help="AI package id"),
    master_url: str = typer.Option(None, "--master-url", help="default: EDGE_MASTER_URL"),
    token_env: str = typer.Option("EDGE_OPERATOR_TOKEN", "--token-env", metavar="VAR"),
    as_json: bool = typer.Option(False, "--json", help="print the service's JSON (for scripts)"),
    log: bool = typer.Option(False, "--log", help="print the last build's log (builder output)"),
) -> None:
    """One AI package with the master's last build."""
    from edgectl.ops import client

    _use_master(master_url)
    if log:
        response = client.request("GET", "master", f"/builds/{ai_id}/log", token_env=token_env)
        if response.status_code >= 400:
            client.fail(f"master answered {response.status_code}: {client.error_text(response)}")
        typer.echo(response.text, nl=False)
        return
    body = client.call("GET", "master", f"/ai-packages/{ai_id}", token_env=token_env)
    if as_json:
        client.print_json(body)
        return
    build = body.pop("build", None)
    out = client.console()
    out.print(client.fields_table(body))
    out.print(client.fields_table(build, "Build") if build else "Build: none recorded")


@ai_app.command("remove")
def remove_ai(
    ai_id: int = typer.Argument(..., help="AI package id"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
    master_url: str = typer.Option(None, "--master-url", help="default: EDGE_MASTER_URL"),
    token_env: str = typer.Option("EDGE_OPERATOR_TOKEN", "--token-env", metavar="VAR"),
    as_json: bool = typer.Option(False, "--json", help="print the service's JSON (for scripts)"),
) -> None:
    """Remove an AI: marked removed, its image and unused package deleted (409 while deployed)."""
    from edgectl.ops import client

    if not yes:
        typer.confirm(f"remove AI {ai_id}?", abort=True)
    _use_master(master_url)
    body = client.call("DELETE", "master", f"/ai-packages/{ai_id}", token_env=token_env)
    if as_json:
        client.print_json(body)
        return
    typer.echo(f"AI {ai_id} removed")


def _folder_requirements(folder: Path) -> list[str]:
    """The requirements the master will read into the package's manifest."""
    from services.master.builds.field_folder import DOCKERFILE, dockerfile_requirements
    from services.master.packages import MANIFEST_NAMES, parse_manifest
    from shared.errors import Invalid

    try:
        for name in MANIFEST_NAMES:
            if (folder / name).is_file():
                return parse_manifest((folder / name).read_bytes(), name).requirements
        if (folder / DOCKERFILE).is_file():
            return dockerfile_requirements((folder / DOCKERFILE).read_text(), folder)
    except Invalid as exc:
        raise typer.BadParameter(exc.message, param_hint="FOLDER") from None
    raise typer.BadParameter(f"{folder} has neither aipackage.yaml nor a Dockerfile")


# manylinux tags that name a glibc older than 2.17 exist for x86 only; the legacy names' glibc.
_OLD_MANYLINUX = ("x86_64", "i686")
_LEGACY_MANYLINUX = {5: "manylinux1", 12: "manylinux2010", 17: "manylinux2014"}


def _pip_platforms(machine: str, glibc: str) -> list[str]:
    """pip's --platform tags for a Linux ``machine`` with ``glibc`` (2.31: manylinux_2_31 and
    every older manylinux tag, which pip does not work out by itself)."""
    try:
        major, minor = (int(x) for x in glibc.split("."))
    except ValueError:
        raise typer.BadParameter(f"{glibc!r} is not a version", param_hint="--glibc") from None
    if major != 2 or minor < 17:
        raise typer.BadParameter("manylinux wheels need glibc 2.17 or newer", param_hint="--glibc")
    first = 5 if machine in _OLD_MANYLINUX else 17
    tags = [f"manylinux_2_{m}_{machine}" for m in range(minor, first - 1, -1)]
    tags += [f"{name}_{machine}" for m, name in _LEGACY_MANYLINUX.items() if first <= m <= minor]
    return tags


def _platform_tags(platforms: list[str], glibc: str) -> dict[str, list[str]]:
    """Architecture (amd64, arm64) -> pip --platform tags, from ``linux/arm64``-style names
    (``arm64``, ``aarch64`` too) and pip's own tags (``manylinux2014_aarch64``)."""
    from edge_common.platforms import ARCHITECTURES, architecture, wheel_architecture

    out: dict[str, list[str]] = {}
    for value in platforms:
        name = value.removeprefix("linux/")
        arch = architecture(name)
        if arch in ARCHITECTURES:
            out.setdefault(arch, []).extend(_pip_platforms(ARCHITECTURES[arch], glibc))
            continue
        tag_arch = wheel_architecture(f"probe-0-py3-none-{name}.whl")
        if "/" in value or tag_arch is None:
            raise typer.BadParameter(
                f"{value!r}: name linux/amd64 or linux/arm64 (or a pip platform tag such as "
                "manylinux2014_aarch64)",
                param_hint="--platform",
            )
        out.setdefault(tag_arch, []).append(name)
    return out


@ai_app.command("pack")
def pack(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="the package folder"),
    platform: list[str] = typer.Option(
        None,
        "--platform",
        help="the edges' platform: linux/arm64, linux/amd64 (repeatable), or a pip platform tag "
        "such as manylinux2014_aarch64; default: this machine's",
    ),
    python_version: str = typer.Option(
        None,
        "--python",
        "--python-version",
        help="the edges' Python, e.g. 3.8 (default: this one's)",
    ),
    glibc: str = typer.Option(
        "2.31",
        "--glibc",
        help="with --platform linux/...: the edges' glibc, the newest manylinux wheels take "
        "(2.31: Ubuntu 20.04, JetPack 5)",
    ),
    index_url: str = typer.Option(None, "--index-url", help="the index to download from"),
    find_links: list[str] = typer.Option(
        None, "--find-links", help="also look for wheels here (a folder or URL; repeatable)"
    ),
    no_index: bool = typer.Option(False, "--no-index", help="use --find-links only"),
) -> None:
    """Download the wheels of a package's Python requirements into FOLDER/wheels, so that edge
    agents install them with no index reachable (`pip download` where one is).

    The requirements are the manifest's, or a field folder's `RUN pip install` lines and the
    requirements files they name (what the master reads into the manifest at upload).

    With --platform, the wheels are downloaded for each platform named (CPython, --python): when
    every one is pure Python (the same for every platform) they go in FOLDER/wheels, one set for
    all machines; else (a wheel carries native code) FOLDER/wheels/<architecture> holds a
    complete set for each (wheels/arm64, wheels/amd64). Either replaces what FOLDER/wheels held.
    The master records the architectures at upload and deploys the package to edge agents of
    those only."""
    import shutil
    import subprocess
    import sys

    from edge_common.platforms import is_native
    from services.master.builds.field_folder import WHEELHOUSE

    requirements = _folder_requirements(folder)
    if not requirements:
        typer.echo(f"{folder}: no Python requirements: nothing to download")
        return
    wheels = folder / WHEELHOUSE
    base = [sys.executable, "-m", "pip", "download", "--only-binary", ":all:"]
    base += ["--disable-pip-version-check", "--no-input"]
    if python_version:
        base += ["--python-version", python_version]
    if index_url:
        base += ["--index-url", index_url]
    for link in find_links or []:
        base += ["--find-links", link]
    if no_index:
        base.append("--no-index")

    def download(dest: Path, tags: list[str], what: str) -> list[str]:
        argv = [*base, "--dest", str(dest)]
        for tag in tags:
            argv += ["--platform", tag]
        if tags:
            argv += ["--implementation", "cp"]
        typer.echo(f"downloading wheels for {', '.join(requirements)}{what} into {dest}")
        done = subprocess.run([*argv, "--", *requirements], capture_output=True, text=True)
        if done.returncode != 0:
            typer.echo((done.stderr or done.stdout).strip(), err=True)
            raise typer.Exit(1)
        return sorted(p.name for p in dest.glob("*.whl"))

    if not platform:
        names = download(wheels, [], "")
        typer.echo(f"{len(names)} wheel(s) in {wheels}: {', '.join(names)}")
    else:
        per_arch = _platform_tags(platform, glibc)
        staging = Path(tempfile.mkdtemp(prefix=".wheels-", dir=folder))
        try:
            got = {
                arch: download(staging / arch, tags, f" (linux/{arch})")
                for arch, tags in per_arch.items()
            }
            native = sorted(
                {n.split("-")[0] for names in got.values() for n in names if is_native(n)}
            )
            if native:
                for arch, names in got.items():
                    typer.echo(f"{len(names)} wheel(s) for {arch} in {wheels / arch}")
                typer.echo(
                    f"native code ({', '.join(native)}): the package runs on {', '.join(got)} only"
                )
            elif len({tuple(names) for names in got.values()}) > 1:
                # Pure Python, but not the same wheels everywhere (platform markers).
                for arch, names in got.items():
                    typer.echo(f"{len(names)} wheel(s) for {arch} in {wheels / arch}")
                typer.echo(f"the platforms need different wheels: runs on {', '.join(got)} only")
            else:  # pure Python: one set for every machine
                first = staging / next(iter(got))
                for arch in list(got)[1:]:
                    shutil.rmtree(staging / arch)
                for wheel in first.iterdir():
                    wheel.rename(staging / wheel.name)
                first.rmdir()
                names = sorted(p.name for p in staging.glob("*.whl"))
                typer.echo(
                    f"{len(names)} pure-Python wheel(s) in {wheels}, for every machine: "
                    f"{', '.join(names)}"
                )
            if wheels.exists():
                shutil.rmtree(wheels)
            staging.rename(wheels)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if any((folder / name).is_file() for name in ("aipackage.yaml", "aipackage.toml")):
        typer.echo(f"add `wheelhouse: {WHEELHOUSE}` to the manifest so that agents use them")


def register(app: typer.Typer) -> None:
    app.add_typer(ai_app, name="ai")
