"""Builds that carry out every Dockerfile instruction: ``buildah bud`` on the master's machine
(daemonless), for one architecture or several (pushed as one image index), with a log per build,
a time bound, and buildah's layer cache reused between versions of a package.

What a build needs before it starts (checked by ``check_dockerfile``, at upload and again at
build time): a builder able to carry out the Dockerfile (the layer builder refuses ``RUN`` and
friends, naming the line), the ``FROM`` images in the private registry, and, for a ``RUN`` step of
a foreign architecture, qemu-user-static registered with binfmt_misc.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO

from shared.errors import Invalid, NotFound, Unavailable

from ..packages import ArtifactStore, PackageManifest, extract_artifact
from ..registry import RegistryClient
from ..registry import dockerfile as df
from ..registry.config import RegistryConfig
from ..registry.docker_build import image_labels
from ..registry.reference import image_name
from ..settings import MasterSettings

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# qemu-user-static's binfmt_misc entries, by the architecture they run.
QEMU_BINFMT = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64", "arm": "qemu-arm"}
_MACHINE = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
LOG_TAIL_LINES = 40


class BuilderKind(StrEnum):
    LAYERS = "layers"
    BUILDAH = "buildah"
    DOCKER = "docker"


def builder_kind(settings: MasterSettings) -> BuilderKind:
    if settings.builder == "auto":
        return BuilderKind.DOCKER if settings.docker_host else BuilderKind.LAYERS
    return BuilderKind(settings.builder)


def host_architecture() -> str:
    machine = platform.machine().lower()
    return _MACHINE.get(machine, machine)


def can_run(arch: str) -> bool:
    """Whether programs of ``arch`` run here: the host's own, or a registered and enabled qemu
    binfmt_misc handler (qemu-user-static with binfmt-support, or ``update-binfmts --enable``)."""
    if arch == host_architecture():
        return True
    entry = BINFMT_DIR / QEMU_BINFMT.get(arch, f"qemu-{arch}")
    try:
        return entry.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def read_dockerfile(root: Path, manifest: PackageManifest) -> str | None:
    """The package's Dockerfile text (``root`` is the unpacked package), None when it has none."""
    if not manifest.dockerfile:
        return None
    try:
        return (root / manifest.dockerfile).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(
            f"{manifest.dockerfile} cannot be read: {exc}", field="manifest.dockerfile"
        ) from None


async def check_dockerfile(
    settings: MasterSettings,
    registry: RegistryConfig | None,
    manifest: PackageManifest,
    text: str | None,
) -> None:
    """Refuse (Invalid, naming the Dockerfile line) a package this master cannot build as its
    Dockerfile says. Only for masters that build images (a registry is configured)."""
    if registry is None or text is None:
        return
    kind = builder_kind(settings)
    if kind == BuilderKind.LAYERS:
        reason = df.layer_builder_refusal(text, manifest)
        if reason:
            raise Invalid(reason, field="dockerfile")
        return
    archs = settings.build_architectures
    step = df.runs_steps(text)
    if step is not None:
        foreign = [a for a in archs if not can_run(a)]
        if foreign:
            enable = " ".join(f"update-binfmts --enable {QEMU_BINFMT.get(a, a)}" for a in foreign)
            raise Invalid(
                f"{manifest.dockerfile} line {step.line}: {step}: the images are built for "
                f"{', '.join(archs)}, and {', '.join(foreign)} programs cannot run on this "
                f"{host_architecture()} master: install qemu-user-static and binfmt-support and "
                f"register it ({enable}), "
                "or build on a machine of that architecture",
                field="dockerfile",
            )
    if kind == BuilderKind.DOCKER and len(archs) > 1:
        raise Invalid(
            f"images are built for {', '.join(archs)}: the Docker Engine API builds one platform "
            "per build; set MASTER_BUILDER=buildah for a multi-arch image index",
            field="dockerfile",
        )
    await check_bases(registry, text)


async def check_bases(registry: RegistryConfig, text: str) -> list[df.BaseReference]:
    """Every ``FROM`` image must be in the private registry; NotFound-as-Invalid names the first
    missing one and how to bring it in."""
    bases = df.base_references(text, registry.host)
    async with RegistryClient(registry) as client:
        for base in bases:
            ref = df.ImageRef.parse(base.resolved)
            try:
                digest = await client.manifest_digest(ref.repository, ref.reference)
            except NotFound:
                digest = None
            if digest is None:
                raise Invalid(
                    f"Dockerfile line {base.line}: FROM {base.written}: {base.resolved} is not in "
                    f"the private registry; bring it in with `edgectl registry import-base FILE "
                    f"--name {base.resolved.split('/', 1)[1]}`",
                    field="dockerfile",
                )
    return bases


@dataclass(frozen=True)
class BuiltImage:
    reference: str
    digest: str | None
    architectures: list[str]


class BuildLogs:
    """One log file per build (by AI id) under ``<artifact_dir>/build-logs``."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, ai_id: int) -> Path:
        return self.root / f"{ai_id}.log"

    def start(self, ai_id: int) -> IO[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        return open(self.path(ai_id), "w", encoding="utf-8", errors="replace")

    def read(self, ai_id: int) -> str:
        try:
            return self.path(ai_id).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise NotFound(f"no build log for AI {ai_id}", field="id") from None

    def delete(self, ai_id: int) -> None:
        self.path(ai_id).unlink(missing_ok=True)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


async def _run_logged(args: list[str], log: IO[str], deadline: float, what: str) -> None:
    """Run ``args`` with its output appended to ``log``; a non-zero exit fails the build with
    the output's tail; past ``deadline`` (loop time) or when cancelled, the process group is
    stopped."""
    log.write(f"$ {' '.join(_redact(args))}\n")
    log.flush()
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise Unavailable(
            f"{args[0]} is not installed on the master (MASTER_BUILDER=buildah needs it: "
            "apt-get install buildah runc)"
        ) from None
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        code = await asyncio.wait_for(proc.wait(), timeout=max(remaining, 0.1))
    except TimeoutError:
        await _stop(proc)
        log.write("\nstopped: the build ran past its time limit (MASTER_BUILD_TIMEOUT_S)\n")
        log.flush()
        raise Invalid(
            f"{what} ran past the build time limit (MASTER_BUILD_TIMEOUT_S) and was stopped",
            field="dockerfile",
        ) from None
    except asyncio.CancelledError:
        await _stop(proc)
        log.write("\ncancelled\n")
        log.flush()
        raise
    if code != 0:
        log.flush()
        raise Invalid(f"{what} failed (exit {code}):\n{_tail(Path(log.name))}", field="dockerfile")


def _redact(args: list[str]) -> list[str]:
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a == "--creds":
            out[i + 1] = out[i + 1].split(":", 1)[0] + ":***"
    return out


async def _stop(proc: asyncio.subprocess.Process) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
            return
        except TimeoutError:
            continue


def _registry_args(registry: RegistryConfig) -> list[str]:
    args = []
    if registry.base_url.startswith("http://") or not registry.tls_verify:
        args.append("--tls-verify=false")
    elif registry.ca_file:
        args += ["--cert-dir", str(Path(registry.ca_file).parent)]
    if registry.has_credentials():
        password = registry.password.get_secret_value()  # type: ignore[union-attr]
        args += ["--creds", f"{registry.username}:{password}"]
    return args


async def buildah_build_and_push(
    *,
    settings: MasterSettings,
    store: ArtifactStore,
    package_digest: str,
    manifest: PackageManifest,
    registry: RegistryConfig,
    log: IO[str],
) -> BuiltImage:
    """Unpack the package, resolve its ``FROM`` lines against the private registry, build it with
    ``buildah bud --layers`` for every target architecture and push the image (one architecture)
    or the image index (several)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.build_timeout_s
    archs = settings.build_architectures
    ref = str(image_name(registry.host, manifest.filename, manifest.ai_class, manifest.version))
    context = Path(tempfile.mkdtemp(dir=store.tmp_dir, prefix="buildah-ctx-"))
    buildah = settings.buildah_path
    reg_args = _registry_args(registry)
    try:
        await extract_artifact(store, package_digest, context)
        text = read_dockerfile(context, manifest)
        if text is None:
            raise Invalid(
                "the package has no dockerfile in its manifest; it is built by the layer builder",
                field="manifest.dockerfile",
            )
        await check_dockerfile(settings, registry, manifest, text)
        bases = await check_bases(registry, text)
        dockerfile = context / (manifest.dockerfile or "Dockerfile")
        dockerfile.write_text(df.rewrite_from_lines(text, bases), encoding="utf-8")
        log.write(f"building {ref} for {', '.join(archs)} with buildah\n")
        for base in bases:
            log.write(f"FROM {base.written} -> {base.resolved}\n")
        args = [buildah, "bud", "--layers", "--file", str(dockerfile)]
        args += ["--platform", ",".join(f"linux/{a}" for a in archs)]
        for key, value in image_labels(manifest, package_digest).items():
            args += ["--label", f"{key}={value}"]
        if settings.build_ca_file:
            bundle = "/etc/ssl/certs/ca-certificates.crt"
            args += ["--volume", f"{settings.build_ca_file}:{bundle}:ro"]
        args += reg_args
        multi = len(archs) > 1
        if multi:
            # A manifest list of that name from an earlier attempt would collect entries twice.
            with contextlib.suppress(Invalid):
                await _run_logged([buildah, "manifest", "rm", ref], log, deadline, "cleanup")
            args += ["--manifest", ref]
        else:
            args += ["--tag", ref]
        await _run_logged([*args, str(context)], log, deadline, "the build")
        digest_file = context.parent / f"{context.name}.digest"
        push = [buildah, "manifest", "push", "--all"] if multi else [buildah, "push"]
        push += ["--digestfile", str(digest_file), *reg_args, ref, f"docker://{ref}"]
        try:
            await _run_logged(push, log, deadline, "pushing the image")
            digest = digest_file.read_text().strip() or None
        finally:
            digest_file.unlink(missing_ok=True)
        if multi:
            with contextlib.suppress(Invalid):
                await _run_logged([buildah, "manifest", "rm", ref], log, deadline, "cleanup")
        log.write(f"pushed {ref} {digest or ''}\n")
        return BuiltImage(ref, digest, archs)
    finally:
        log.flush()
        await asyncio.to_thread(shutil.rmtree, context, True)
