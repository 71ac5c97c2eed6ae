"""Real container tools for tests: podman, buildah and skopeo on a private storage root.

Nothing is installed here (scripts/test.sh installs Debian's ``podman buildah runc mmdebstrap
qemu-user-static``). What this module gives:

- ``ContainerEnv``: a storage root, run root and configuration of their own (``storage.conf``,
  ``containers.conf`` with runtime ``runc`` and ``default_ulimits`` within this machine's hard
  limits, a ``registries.conf`` marking the loopback registries insecure), as environment
  variables (``.env``) that ``podman``, ``buildah`` and ``skopeo`` read: pass them to any process
  that should use this root (the master building with buildah, a podman service).
- ``base_rootfs()``: a Debian bookworm minbase root file system with python3, pip and
  ca-certificates, made once with ``mmdebstrap`` and cached in ``~/.cache/edge-platform/``.
- ``base_oci_layout()``: that root file system as an image (OCI layout), cached beside it;
  ``ContainerEnv.import_base(image)`` copies it into a (test) registry as ``image``.
- ``PodmanService``: ``podman system service`` on a private unix socket (the Docker Engine API).
- ``CA_BUNDLE``: the machine's CA bundle, to mount into ``RUN`` steps that reach a package index
  (outbound HTTPS may go through an intercepting proxy).

The pytest fixtures (``container_env``, ``container_registry``, ``base_image``, ``podman_service``)
live in ``tests/helpers/container_fixtures.py``; a conftest imports them with
``from tests.helpers.container_fixtures import *``. They are session-wide: one storage root, one
registry and one base image per test session.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import resource
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.processes import Proc

PODMAN_BIN = shutil.which("podman") or "/usr/bin/podman"
BUILDAH_BIN = shutil.which("buildah") or "/usr/bin/buildah"
SKOPEO_BIN = shutil.which("skopeo") or "/usr/bin/skopeo"
MMDEBSTRAP_BIN = shutil.which("mmdebstrap") or "/usr/bin/mmdebstrap"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CACHE_DIR = Path(os.environ.get("EDGE_TEST_CACHE", str(Path.home() / ".cache" / "edge-platform")))
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "ca-certificates")


def tools_missing(*tools: str) -> list[str]:
    """The named container tools (podman, buildah, skopeo, mmdebstrap, runc) not installed."""
    return [t for t in tools if shutil.which(t) is None]


def _hard_limit(res: int, wanted: int) -> int:
    hard = resource.getrlimit(res)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def _toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


@dataclass
class ContainerEnv:
    """A private podman/buildah/skopeo world under ``root`` (see the module docstring)."""

    root: Path
    insecure_registries: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("storage", "run", "tmp", "networks", "volumes"):
            (self.root / sub).mkdir(exist_ok=True)
        self.storage_conf = self.root / "storage.conf"
        self.containers_conf = self.root / "containers.conf"
        self.registries_conf = self.root / "registries.conf"
        self.storage_conf.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f"graphroot = {json.dumps(str(self.root / 'storage'))}\n"
            f"runroot = {json.dumps(str(self.root / 'run'))}\n"
        )
        nofile = _hard_limit(resource.RLIMIT_NOFILE, 20000)
        nproc = _hard_limit(resource.RLIMIT_NPROC, 32768)
        self.containers_conf.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            "[network]\n"
            f"network_config_dir = {json.dumps(str(self.root / 'networks'))}\n"
            "[engine]\n"
            # crun 1.8 fails on hybrid cgroup hosts; runc works.
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f"tmp_dir = {json.dumps(str(self.root / 'tmp'))}\n"
            f"volume_path = {json.dumps(str(self.root / 'volumes'))}\n"
        )
        self.write_registries()

    def write_registries(self) -> None:
        """registries.conf: no search registries (short names fail loudly), every registry in
        ``insecure_registries`` over plain HTTP. Written before any tool or service starts."""
        lines = ["unqualified-search-registries = []", 'short-name-mode = "disabled"', ""]
        for host in self.insecure_registries:
            lines += ["[[registry]]", f"location = {json.dumps(host)}", "insecure = true", ""]
        self.registries_conf.write_text("\n".join(lines))

    def add_insecure_registry(self, host: str) -> None:
        if host not in self.insecure_registries:
            self.insecure_registries.append(host)
            self.write_registries()

    @property
    def env(self) -> dict[str, str]:
        """The variables that point podman, buildah and skopeo at this world."""
        return {
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
            "TMPDIR": str(self.root / "tmp"),
        }

    def process_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra)
        return env

    def run(
        self, args: list[str], *, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            args, env=self.process_env(), capture_output=True, text=True, timeout=timeout
        )
        if check and out.returncode != 0:
            raise ContainerToolError(args, out.returncode, out.stdout + out.stderr)
        return out

    def podman(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run([PODMAN_BIN, *args], **kw)

    def buildah(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run([BUILDAH_BIN, *args], **kw)

    def skopeo(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run([SKOPEO_BIN, *args], **kw)

    def import_base(self, image: str, *, arch: str = "amd64") -> str:
        """Copy the cached Debian base image (``base_oci_layout``) into a registry as ``image``
        (``host/name:tag``, plain HTTP); returns ``image``."""
        self.add_insecure_registry(image.split("/", 1)[0])
        layout = base_oci_layout(arch=arch)
        self.skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:base", f"docker://{image}")
        return image

    def cleanup(self) -> None:
        """Remove every container, image and the storage root (overlay mounts included)."""
        with contextlib.suppress(Exception):
            self.podman("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
        with contextlib.suppress(Exception):
            self.buildah("rm", "--all", check=False, timeout=60)
        with contextlib.suppress(Exception):
            self.podman("system", "reset", "--force", check=False, timeout=120)
        _unmount_below(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def _unmount_below(root: Path) -> None:
    """Unmount whatever is still mounted under ``root`` (deepest first)."""
    prefix = str(root.resolve())
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    targets = [m.split()[1] for m in mounts if m.split()[1].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


class ContainerToolError(RuntimeError):
    def __init__(self, args: list[str], code: int, output: str):
        super().__init__(f"{' '.join(args[:3])}... exited {code}:\n{output[-4000:]}")
        self.code = code
        self.output = output


def base_rootfs(
    *, arch: str = "amd64", packages: tuple[str, ...] = BASE_PACKAGES, timeout: float = 900
) -> Path:
    """A Debian bookworm minbase root file system (tar) with ``packages``, made with mmdebstrap
    once and cached (``~/.cache/edge-platform/``; ``EDGE_TEST_CACHE`` moves it). A lock keeps
    concurrent sessions from building it twice."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    name = f"debian-{BASE_SUITE}-{arch}-" + "-".join(sorted(packages)) + ".tar"
    target = CACHE_DIR / name
    with open(CACHE_DIR / (name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        partial = target.with_suffix(".partial.tar")
        args = [
            MMDEBSTRAP_BIN,
            "--variant=minbase",
            f"--architectures={arch}",
            "--include=" + ",".join(packages),
            BASE_SUITE,
            str(partial),
        ]
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            partial.unlink(missing_ok=True)
            raise ContainerToolError(args, out.returncode, out.stdout + out.stderr)
        partial.rename(target)
    return target


def base_oci_layout(*, arch: str = "amd64") -> Path:
    """``base_rootfs()`` as an image (OCI layout, compressed once, tag ``base``), cached beside
    it: copying it into a registry then takes seconds."""
    rootfs = base_rootfs(arch=arch)
    layout = rootfs.with_suffix(".oci")
    with open(str(layout) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (layout / "index.json").exists():
            return layout
        shutil.rmtree(layout, ignore_errors=True)
        partial = rootfs.with_suffix(".oci-partial")
        shutil.rmtree(partial, ignore_errors=True)
        with container_world(CACHE_DIR / f"work-{os.getpid()}") as cenv:
            cenv.podman(
                "import",
                "--arch",
                arch,
                "--change",
                'CMD ["/bin/bash"]',
                str(rootfs),
                "localhost/base",
            )
            cenv.podman("push", "localhost/base", f"oci:{partial}:base")
        partial.rename(layout)
    return layout


@dataclass
class PodmanService:
    """``podman system service --time=0`` serving the Docker Engine API on a unix socket."""

    proc: Proc
    socket: Path

    @property
    def docker_host(self) -> str:
        """The value for ``DOCKER_HOST`` / ``MASTER_DOCKER_HOST``."""
        return f"unix://{self.socket}"

    def stop(self) -> None:
        self.proc.stop()
        self.socket.unlink(missing_ok=True)


def start_podman_service(cenv: ContainerEnv, *, timeout: float = 30) -> PodmanService:
    sock = cenv.root / "podman.sock"
    proc = Proc(
        [PODMAN_BIN, "system", "service", "--time=0", f"unix://{sock}"],
        env=cenv.process_env(),
        log_path=cenv.root / "podman-service.log",
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"podman system service exited:\n{proc.log_text()[-4000:]}")
            if sock.exists() and _ping(sock):
                return PodmanService(proc, sock)
            time.sleep(0.1)
        raise TimeoutError(f"podman service not ready after {timeout}s:\n{proc.log_text()}")
    except BaseException:
        proc.stop()
        raise


def _ping(sock: Path) -> bool:
    import httpx

    try:
        transport = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(transport=transport, timeout=2) as client:
            return client.get("http://d/_ping").status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def container_world(root: Path) -> Iterator[ContainerEnv]:
    cenv = ContainerEnv(root)
    try:
        yield cenv
    finally:
        cenv.cleanup()


def ensure_binfmt(arch: str = "arm64") -> bool:
    """Register qemu-user-static's binfmt_misc handler for ``arch`` if this machine allows it (root:
    mount binfmt_misc, ``update-binfmts --enable``); True when programs of ``arch`` run now."""
    name = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}.get(arch, f"qemu-{arch}")
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    entry = binfmt / name

    def enabled() -> bool:
        try:
            return entry.read_text().splitlines()[0].strip() == "enabled"
        except (OSError, IndexError):
            return False

    if enabled():
        return True
    if os.geteuid() != 0:
        return False
    if not (binfmt / "register").exists():
        subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)],
            capture_output=True,
            check=False,
        )
    if shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", name], capture_output=True, check=False)
    return enabled()


def busybox_rootfs(arch: str) -> Path:
    """A tiny root file system for ``arch`` (Debian's busybox-static, ``/bin/sh`` linked to it),
    extracted by mmdebstrap without running anything of ``arch``; cached like ``base_rootfs``."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    target = CACHE_DIR / f"busybox-{BASE_SUITE}-{arch}.tar"
    with open(str(target) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        partial = target.with_suffix(".partial.tar")
        args = [
            MMDEBSTRAP_BIN,
            "--variant=extract",
            "--include=busybox-static",
            f"--architectures={arch}",
            BASE_SUITE,
            str(partial),
        ]
        out = subprocess.run(args, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            partial.unlink(missing_ok=True)
            raise ContainerToolError(args, out.returncode, out.stdout + out.stderr)
        # The extract variant runs no hooks: /bin/sh (for RUN steps) is added to the tar here.
        with tarfile.open(partial, "a") as tf:
            link = tarfile.TarInfo("./bin/sh")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            tf.addfile(link)
        partial.rename(target)
    return target


def busybox_oci_layout(cenv: ContainerEnv, dest: Path, archs: tuple[str, ...]) -> Path:
    """An OCI layout folder holding one image index: busybox for each of ``archs``."""
    name = f"localhost/busybox-index-{os.getpid()}"
    cenv.buildah("manifest", "rm", name, check=False)
    cenv.buildah("manifest", "create", name)
    for arch in archs:
        local = f"localhost/busybox-{arch}"
        cenv.podman("import", "--arch", arch, str(busybox_rootfs(arch)), local)
        cenv.buildah("manifest", "add", "--arch", arch, name, f"containers-storage:{local}")
    cenv.buildah("manifest", "push", "--all", name, f"oci:{dest}")
    cenv.buildah("manifest", "rm", name, check=False)
    return dest


def push_multiarch_busybox(cenv: ContainerEnv, image: str, archs: tuple[str, ...]) -> str:
    """``image`` (``host/name:tag``) as one image index with a busybox image per architecture."""
    cenv.add_insecure_registry(image.split("/", 1)[0])
    layout = busybox_oci_layout(cenv, cenv.root / "tmp" / f"index-{os.getpid()}", archs)
    try:
        cenv.skopeo(
            "copy", "--all", "--dest-tls-verify=false", f"oci:{layout}", f"docker://{image}"
        )
    finally:
        shutil.rmtree(layout, ignore_errors=True)
    return image


def save_busybox(cenv: ContainerEnv, name: str, dest: Path, arch: str = "amd64") -> Path:
    """A ``podman save`` tarball (docker-archive) of a busybox image named ``name``."""
    cenv.podman("import", "--arch", arch, str(busybox_rootfs(arch)), name)
    cenv.podman("save", "--format", "docker-archive", "-o", str(dest), name)
    cenv.podman("rmi", name, check=False)
    return dest
