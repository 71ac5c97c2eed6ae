"""Registry trust against a real containerd (Debian's 1.6, as a process with its own root, state
and socket): an image in the plain-HTTP registry does not pull before `edgectl registry
install-trust` runs and pulls after, through ``ctr --hosts-dir`` and through the CRI plugin (the
kubelet's path, runtime.v1 ImageService); a node fixed by hand with legacy ``registry.mirrors``
is migrated instead of broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from tests.helpers.containerd import CriError, node_config_toml, start_containerd
from tests.helpers.oci import make_oci_layout, push_layout
from tests.helpers.processes import REPO, edgectl
from tests.helpers.registry import start_registry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containerd needs root")

NAME = "edge-registry.test"  # resolves to 127.0.0.1 in containerd's mount namespace only


def install_trust(node: Path, *args: str, hook_log: Path) -> subprocess.CompletedProcess[str]:
    hook = f"{sys.executable} -c \"open({str(hook_log)!r}, 'a').write('restart\\n')\""
    return subprocess.run(
        [
            *edgectl("registry", "install-trust", "--root", str(node), *args),
            "--restart-containerd",
            hook,
        ],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def registry_table(node: Path) -> dict:
    config = tomllib.loads((node / "etc/containerd/config.toml").read_text())
    return config["plugins"]["io.containerd.grpc.v1.cri"].get("registry", {})


@pytest.fixture
def short_dir():
    """containerd's sockets need a path under 104 bytes: a short folder of the test's own (pytest's
    tmp_path grows with the test's name and the xdist worker)."""
    path = Path(tempfile.mkdtemp(prefix="ctrd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_http_registry_pulls_only_after_install_trust_and_a_hand_fixed_node_is_migrated(
    tmp_path, short_dir
):
    registry = start_registry(tmp_path / "registry")
    layout = make_oci_layout(tmp_path / "image", {"hello.txt": b"trusted\n"}, tag="v1")
    for tag in ("fresh", "legacy"):
        push_layout(layout, "v1", f"{registry.host}/trust/hello:{tag}")
    host = f"{NAME}:{registry.port}"
    fresh, legacy = f"{host}/trust/hello:fresh", f"{host}/trust/hello:legacy"

    node = tmp_path / "node"
    work = short_dir / "containerd"
    original = node_config_toml(work)
    (node / "etc/containerd").mkdir(parents=True)
    (node / "etc/containerd/config.toml").write_text(original)
    cd = start_containerd(work, node, names={NAME: "127.0.0.1"})
    try:
        # Before: containerd speaks HTTPS to a registry it has no configuration for.
        pulled = cd.ctr("images", "pull", "--hosts-dir", "/etc/containerd/certs.d", fresh)
        assert pulled.returncode != 0
        assert "server gave HTTP response to HTTPS client" in pulled.stderr
        with pytest.raises(CriError, match="server gave HTTP response to HTTPS client"):
            cd.cri_pull(fresh)

        hooks = tmp_path / "hooks.log"
        out = install_trust(node, "--registry", host, "--insecure", hook_log=hooks)
        assert out.returncode == 0, out.stderr
        assert hooks.read_text() == "restart\n"  # config.toml changed: containerd restarted
        # Only config_path was added: every other key is as it was; the original is backed up.
        [backup] = (node / "etc/containerd").glob("config.toml.bak-*")
        assert backup.read_text() == original
        edited = tomllib.loads((node / "etc/containerd/config.toml").read_text())
        before = tomllib.loads(original)
        assert edited["plugins"]["io.containerd.grpc.v1.cri"].pop("registry") == {
            "config_path": "/etc/containerd/certs.d"
        }
        assert edited == before
        cd.restart()

        # After: ctr with the hosts dir and the CRI plugin (config_path) both pull.
        pulled = cd.ctr("images", "pull", "--hosts-dir", "/etc/containerd/certs.d", fresh)
        assert pulled.returncode == 0, pulled.stderr
        assert cd.cri_pull(fresh).startswith("sha256:")

        # Idempotent: a second run changes nothing, restarts nothing, backs nothing up.
        again = install_trust(node, "--registry", host, "--insecure", hook_log=hooks)
        assert again.returncode == 0 and "nothing to change" in again.stdout, again.stderr
        assert hooks.read_text() == "restart\n"
        assert len(list((node / "etc/containerd").glob("config.toml.bak-*"))) == 1

        # A node fixed by hand: legacy mirrors/configs (its pulls work) plus a credential.
        legacy_config = original + (
            f'  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{host}"]\n'
            f'    endpoint = ["http://{host}"]\n'
            f'  [plugins."io.containerd.grpc.v1.cri".registry.configs."{host}".tls]\n'
            "    insecure_skip_verify = true\n"
            f'  [plugins."io.containerd.grpc.v1.cri".registry.configs."{host}".auth]\n'
            '    username = "field"\n'
            '    password = "by-hand"\n'
        )
        # Setting config_path beside them, as a naive tool would, takes the CRI plugin down.
        naive = legacy_config.replace(
            f'  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{host}"]',
            '  [plugins."io.containerd.grpc.v1.cri".registry]\n'
            '    config_path = "/etc/containerd/certs.d"\n'
            f'  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{host}"]',
        )
        (node / "etc/containerd/config.toml").write_text(naive)
        cd.restart()
        with pytest.raises(CriError) as refused:
            cd.cri_pull(legacy)
        assert refused.value.code == "UNIMPLEMENTED"
        assert "cannot be set when `config_path` is provided" in cd.log_text()

        (node / "etc/containerd/config.toml").write_text(legacy_config)
        cd.restart()
        # The hand-fixed node still resolves by its mirrors (not by a hosts.toml: removed here).
        (node / f"etc/containerd/certs.d/{host}/hosts.toml").unlink()
        out = install_trust(node, "--registry", host, "--insecure", hook_log=hooks)
        assert out.returncode == 0, out.stderr
        assert "imagePullSecret" in out.stderr  # the credential stays out of hosts.toml
        registry_cfg = registry_table(node)
        assert registry_cfg["config_path"] == "/etc/containerd/certs.d"
        assert "mirrors" not in registry_cfg
        assert registry_cfg["configs"] == {
            host: {"auth": {"username": "field", "password": "by-hand"}}
        }
        assert "by-hand" not in "".join(
            p.read_text() for p in (node / "etc/containerd/certs.d").rglob("hosts.toml")
        )
        assert hooks.read_text() == "restart\nrestart\n"
        cd.restart()
        assert cd.cri_pull(legacy).startswith("sha256:")  # the node works after the migration
    finally:
        cd.stop()
        registry.stop()
