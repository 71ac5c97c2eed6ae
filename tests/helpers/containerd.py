"""A real containerd for tests: Debian's ``containerd`` run as a process of the test's own, with
root, state and socket in a temp folder, reading the config.toml of a scratch *node root*.

containerd runs in a private mount namespace where the node root's ``etc/containerd`` is bound
over ``/etc/containerd`` (so the paths a node tool writes, ``/etc/containerd/certs.d/...``, are
the ones containerd reads) and a hosts file of the test's own over ``/etc/hosts`` (so a registry
can have a name: containerd talks plain HTTP to any loopback address by itself, never to a name
without configuration; the registry still listens on 127.0.0.1 only).

    cd = start_containerd(tmp_path, node_root, names={"edge-registry.test": "127.0.0.1"})
    cd.ctr("images", "pull", "--hosts-dir", "/etc/containerd/certs.d", ref)
    cd.cri_pull(ref)           # the CRI plugin's runtime.v1 ImageService, as the kubelet calls it
    cd.restart(); cd.stop()

Needs root (mount namespaces, containerd's own needs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.processes import Proc

CONTAINERD_BIN = shutil.which("containerd") or "/usr/bin/containerd"
CTR_BIN = shutil.which("ctr") or "/usr/bin/ctr"


def node_config_toml(workdir: Path) -> str:
    """Debian's default config.toml, pointed at the test's own root, state and socket (what a
    node tool must keep when it edits the file)."""
    return f"""version = 2
root = "{workdir}/root"
state = "{workdir}/state"

[grpc]
  address = "{workdir}/containerd.sock"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "native"
  [plugins."io.containerd.internal.v1.opt"]
    path = "{workdir}/opt"
"""


class CriError(RuntimeError):
    def __init__(self, code: str, details: str):
        super().__init__(f"CRI {code}: {details}")
        self.code = code
        self.details = details


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (all a PullImageRequest needs)."""
    size, varint = len(payload), bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        varint.append(byte | (0x80 if size else 0))
        if not size:
            break
    return bytes([(number << 3) | 2]) + bytes(varint) + payload


@dataclass
class RunningContainerd:
    proc: Proc
    workdir: Path
    node_root: Path
    hosts_file: Path

    @property
    def socket(self) -> Path:
        return self.workdir / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``ctr`` in containerd's mount namespace (its /etc/hosts, its /etc/containerd)."""
        return subprocess.run(
            [
                "nsenter",
                "-t",
                str(self.proc.pid),
                "-m",
                CTR_BIN,
                "--address",
                str(self.socket),
                "--namespace",
                "k8s.io",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cri_pull(self, image: str, timeout: float = 60) -> str:
        """``runtime.v1.ImageService/PullImage`` over the socket: answers the image ref."""
        import grpc

        deadline = time.monotonic() + 15
        with grpc.insecure_channel(f"unix://{self.socket}") as channel:
            pull = channel.unary_unary("/runtime.v1.ImageService/PullImage")
            while True:
                try:
                    reply: bytes = pull(_field(1, _field(1, image.encode())), timeout=timeout)
                    break
                except grpc.RpcError as exc:
                    details = exc.details() or ""
                    # Just started: the CRI service answers this until its own start is done.
                    if "not initialized yet" in details and time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    raise CriError(exc.code().name, details) from None
        assert reply[0] == 0x0A and reply[1] < 0x80, reply  # field 1 (image_ref), a short string
        return reply[2 : 2 + reply[1]].decode()

    def log_text(self) -> str:
        return self.proc.log_text()

    def restart(self) -> None:
        self.stop()
        fresh = _start(self.workdir, self.node_root, self.hosts_file)
        self.proc = fresh.proc

    def stop(self) -> None:
        self.proc.stop()


def _start(
    workdir: Path, node_root: Path, hosts_file: Path, timeout: float = 20
) -> RunningContainerd:
    etc = node_root / "etc/containerd"
    etc.mkdir(parents=True, exist_ok=True)
    Path("/etc/containerd").mkdir(exist_ok=True)  # the mount point (Debian's package has it)
    script = (
        f"mount --bind {hosts_file} /etc/hosts && mount --bind {etc} /etc/containerd && "
        f"exec {CONTAINERD_BIN} --config /etc/containerd/config.toml"
    )
    sock = workdir / "containerd.sock"
    sock.unlink(missing_ok=True)
    proc = Proc(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        log_path=workdir / "containerd.log",
    )
    deadline = time.monotonic() + timeout
    log = workdir / "containerd.log"
    booted_before = (
        log.read_text(errors="replace").count("successfully booted") if log.exists() else 0
    )
    while not sock.exists() or proc.log_text().count("successfully booted") <= booted_before:
        if not proc.alive() or time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"containerd did not start:\n{proc.log_text()[-4000:]}")
        time.sleep(0.05)
    return RunningContainerd(proc, workdir, node_root, hosts_file)


def start_containerd(
    workdir: Path, node_root: Path, *, names: dict[str, str] | None = None
) -> RunningContainerd:
    """containerd reading ``node_root/etc/containerd/config.toml`` (written by the test; its
    root/state/socket must be under ``workdir``, see :func:`node_config_toml`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    hosts_file = workdir / "hosts"
    lines = ["127.0.0.1 localhost", *(f"{ip} {name}" for name, ip in (names or {}).items())]
    hosts_file.write_text("\n".join(lines) + "\n")
    return _start(workdir, node_root, hosts_file)
