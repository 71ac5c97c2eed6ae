"""Registry trust (item 12): one pull Secret name everywhere, and the node side shipped as a
DaemonSet in k8s/ whose installer is a real command, run here against a scratch node root."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml

from services.master.drivers.manifests import KubernetesOptions, deployment_manifest
from services.master.settings import MasterSettings
from tests.deploy.test_k8s import objects, one, pod_spec
from tests.helpers.env import settings_for
from tests.helpers.processes import REPO, edgectl
from tests.master_drivers.workloads import workload


def run_edgectl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb", **(env or {})}
    return subprocess.run(
        edgectl(*args), cwd=REPO, env=full_env, capture_output=True, text=True, timeout=60
    )


def test_the_pull_secret_node_config_creates_is_the_one_the_pods_reference(tmp_path):
    out = run_edgectl(
        "registry",
        "node-config",
        "--registry",
        "registry.example.com:30500",
        "--insecure",
        "--username",
        "edge-pull",
        "--password-env",
        "REG_PW",
        "--only",
        "secret",
        env={"REG_PW": "pull-Secret-xyz-123"},
    )
    assert out.returncode == 0, out.stderr
    secret = yaml.safe_load(out.stdout)
    kubernetes_validate.validate(secret, "1.30", strict=True)
    # What the master's AI pods name: its default setting, the manifests it renders, k8s/'s config.
    settings = settings_for("master", "postgresql+asyncpg://unused/unused")
    assert isinstance(settings, MasterSettings)
    pod = deployment_manifest(
        workload(), KubernetesOptions(image_pull_secret=settings.image_pull_secret)
    )
    referenced = {s["name"] for s in pod["spec"]["template"]["spec"]["imagePullSecrets"]}
    configured = one("ConfigMap", "edge-master-config")["data"].get(
        "MASTER_IMAGE_PULL_SECRET", "edge-registry"
    )
    assert referenced == {secret["metadata"]["name"]} == {configured}
    assert (
        secret["metadata"]["namespace"] == "edge-ai"
    )  # where the AI pods run (a cluster's default)


def test_the_registry_trust_daemonset_installs_hosts_toml_and_ca_on_every_node(tmp_path):
    [daemonset] = [d for d in objects("DaemonSet") if d["metadata"]["name"] == "registry-trust"]
    kubernetes_validate.validate(daemonset, "1.30", strict=True)
    spec = pod_spec(daemonset)
    assert {"operator": "Exists"} in spec["tolerations"]  # every node, tainted ones too
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths == {"containerd-etc": "/etc/containerd", "docker-etc": "/etc/docker"}
    install, restart = spec["initContainers"]
    assert install["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert install["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in install["volumeMounts"]}
    args = install["args"]
    from_dir, root = args[args.index("--from-dir") + 1], args[args.index("--root") + 1]
    changes = args[args.index("--changes-file") + 1]
    assert mounts[from_dir] == "trust" and mounts[f"{root}/etc/containerd"] == "containerd-etc"
    assert mounts[f"{root}/etc/docker"] == "docker-etc"
    # Only the restart step is privileged, and it acts on what the installer listed.
    assert restart["securityContext"]["privileged"] is True and spec["hostPID"] is True
    restart_mounts = {m["mountPath"]: m["name"] for m in restart["volumeMounts"]}
    assert restart_mounts[str(Path(changes).parent)] == "work"
    script = restart["args"][0]
    assert f"grep -qx containerd {changes}" in script and f"grep -qx docker {changes}" in script
    assert f"cat {from_dir}/restart-containerd" in script

    # The ConfigMap names the registry the master pushes to, as the example overlay sets it.
    trust = one("ConfigMap", "registry-trust")["data"]
    master = one("ConfigMap", "edge-master-config")["data"]
    assert trust["registry"] == master["MASTER_REGISTRY_URL"]
    assert trust["insecure"] == master["MASTER_REGISTRY_INSECURE"]

    # Run the init container's command as the pod would: the ConfigMap as files, a node root.
    node = tmp_path / "node"
    config = tmp_path / "trust"
    config.mkdir()
    for key, value in trust.items():
        (config / key).write_text(value)
    (node / "etc/containerd").mkdir(parents=True)
    (node / "etc/containerd/config.toml").write_text('version = 2\nroot = "/var/lib/containerd"\n')
    listed = tmp_path / "changes"
    out = run_edgectl(
        *install["args"][:2],
        "--from-dir",
        str(config),
        "--root",
        str(node),
        "--changes-file",
        str(listed),
    )
    assert out.returncode == 0, out.stderr
    assert listed.read_text() == "containerd\n"  # config_path set: the restart step restarts
    assert {"restart-containerd", "reload-docker"} <= trust.keys()
    hosts = tomllib.loads(
        (node / f"etc/containerd/certs.d/{trust['registry']}/hosts.toml").read_text()
    )
    assert hosts["server"] == f"http://{trust['registry']}"
    assert hosts["host"][f"http://{trust['registry']}"]["capabilities"] == ["pull", "resolve"]

    # A TLS registry with its own CA: the CA lands beside hosts.toml and in Docker's certs.d.
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    (config / "registry").write_text("registry.edge.lan:5443")
    (config / "insecure").write_text("false")
    (config / "ca.crt").write_text(pem)
    out = run_edgectl(*install["args"][:2], "--from-dir", str(config), "--root", str(node))
    assert out.returncode == 0, out.stderr
    certs = node / "etc/containerd/certs.d/registry.edge.lan:5443"
    hosts = tomllib.loads((certs / "hosts.toml").read_text())
    assert (
        hosts["host"]["https://registry.edge.lan:5443"]["ca"]
        == "/etc/containerd/certs.d/registry.edge.lan:5443/ca.crt"
    )
    assert (certs / "ca.crt").read_text() == pem
    assert (node / "etc/docker/certs.d/registry.edge.lan:5443/ca.crt").read_text() == pem
    # A running installation is replaced in place: the same command again succeeds.
    assert (
        run_edgectl(*install["args"][:2], "--from-dir", str(config), "--root", str(node)).returncode
        == 0
    )


def test_install_trust_refuses_a_bad_configuration_and_writes_nothing(tmp_path):
    config = tmp_path / "trust"
    config.mkdir()
    (config / "registry").write_text("registry.example.com:30500")
    (config / "insecure").write_text("maybe")
    out = run_edgectl(
        "registry", "install-trust", "--from-dir", str(config), "--root", str(tmp_path / "node")
    )
    assert out.returncode != 0 and "insecure must be true or false" in out.stderr
    assert not (tmp_path / "node").exists()


def test_install_trust_merges_the_registry_into_a_docker_nodes_daemon_json(tmp_path):
    node = tmp_path / "node"
    (node / "etc/docker").mkdir(parents=True)
    original = '{"log-driver": "journald", "insecure-registries": ["192.0.2.7:5000"]}\n'
    (node / "etc/docker/daemon.json").write_text(original)
    listed = tmp_path / "changes"
    args = ["registry", "install-trust", "--registry", "registry.edge.lan:30500", "--insecure"]
    args += ["--root", str(node), "--changes-file", str(listed)]
    out = run_edgectl(*args)
    assert out.returncode == 0, out.stderr
    daemon = json.loads((node / "etc/docker/daemon.json").read_text())
    assert daemon == {
        "log-driver": "journald",
        "insecure-registries": ["192.0.2.7:5000", "registry.edge.lan:30500"],
    }
    [backup] = (node / "etc/docker").glob("daemon.json.bak-*")
    assert backup.read_text() == original
    assert listed.read_text() == "docker\n"  # no config.toml on this node: containerd untouched
    assert not (node / "etc/containerd/config.toml").exists()
    again = run_edgectl(*args)
    assert again.returncode == 0 and "nothing to change" in again.stdout
    assert listed.read_text() == ""
