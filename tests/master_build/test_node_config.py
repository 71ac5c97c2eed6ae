"""``edgectl registry node-config`` run as a real process: the node's trust files, and a pull
Secret that Kubernetes 1.30 accepts (kubernetes-validate, strict)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml

from tests.helpers.processes import REPO, edgectl

PASSWORD = "pull-Secret-xyz-123"


def _run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    # wide, colourless terminal: typer's error box must not wrap the messages asserted below
    full_env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb", **(env or {})}
    return subprocess.run(
        edgectl("registry", "node-config", *args),
        cwd=REPO,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_secret_validates_for_kubernetes_1_30_and_holds_the_credential(tmp_path: Path):
    out = _run(
        "--registry",
        "127.0.0.1:5000",
        "--username",
        "edge-pull",
        "--password-env",
        "REG_PW",
        "--namespace",
        "edge-ai",
        "--only",
        "secret",
        env={"REG_PW": PASSWORD},
    )
    assert out.returncode == 0, out.stderr
    secret = yaml.safe_load(out.stdout)
    kubernetes_validate.validate(secret, "1.30", strict=True)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"] == {
        "name": "edge-registry",
        "namespace": "edge-ai",
        "labels": {
            "app.kubernetes.io/managed-by": "edge-ai",
            "app.kubernetes.io/component": "registry-pull",
        },
    }
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["127.0.0.1:5000"]
    assert (entry["username"], entry["password"]) == ("edge-pull", PASSWORD)
    assert base64.b64decode(entry["auth"]).decode() == f"edge-pull:{PASSWORD}"
    assert PASSWORD not in out.stdout  # only base64 inside the Secret


def test_full_output_insecure_registry_keeps_credentials_out_of_plain_files(tmp_path: Path):
    out = _run(
        "--registry",
        "127.0.0.1:5000",
        "--username",
        "edge-pull",
        "--password-stdin",
        "--insecure",
        "--out-dir",
        str(tmp_path),
        stdin=PASSWORD + "\n",
    )
    assert out.returncode == 0, out.stderr
    assert PASSWORD not in out.stdout
    assert "/etc/containerd/certs.d/127.0.0.1:5000/hosts.toml" in out.stdout
    assert "imagePullSecrets: [{name: edge-registry}]" in out.stdout

    hosts = tomllib.loads((tmp_path / "hosts.toml").read_text())
    assert hosts["server"] == "http://127.0.0.1:5000"
    assert hosts["host"]["http://127.0.0.1:5000"]["capabilities"] == ["pull", "resolve"]
    daemon = json.loads((tmp_path / "daemon.json").read_text())
    assert daemon == {"insecure-registries": ["127.0.0.1:5000"]}
    for plain in ("hosts.toml", "daemon.json"):
        text = (tmp_path / plain).read_text()
        assert PASSWORD not in text and base64.b64encode(PASSWORD.encode()).decode() not in text
        assert "edge-pull" not in text
    secret_file = tmp_path / "pull-secret.yaml"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    kubernetes_validate.validate(yaml.safe_load(secret_file.read_text()), "1.30", strict=True)
    # The full output's Secret document is the same one.
    docs = [d for d in yaml.safe_load_all(out.stdout.split("\n---\n", 1)[1]) if d]
    assert docs == [yaml.safe_load(secret_file.read_text())]


def test_tls_registry_with_ca_has_no_insecure_entry(tmp_path: Path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    out = _run(
        "--registry",
        "registry.edge.lan:5443",
        "--ca-file",
        str(ca),
        "--out-dir",
        str(tmp_path / "o"),
    )
    assert out.returncode == 0, out.stderr
    hosts = tomllib.loads((tmp_path / "o" / "hosts.toml").read_text())
    assert hosts["server"] == "https://registry.edge.lan:5443"
    assert (
        hosts["host"]["https://registry.edge.lan:5443"]["ca"]
        == "/etc/containerd/certs.d/registry.edge.lan:5443/ca.crt"
    )
    assert json.loads((tmp_path / "o" / "daemon.json").read_text()) == {}
    assert f"copy {ca} to /etc/docker/certs.d/registry.edge.lan:5443/ca.crt" in out.stdout
    assert not (tmp_path / "o" / "pull-secret.yaml").exists()  # no credentials, no Secret


def test_refusals():
    missing_env = _run(
        "--registry", "127.0.0.1:5000", "--username", "u", "--password-env", "NOT_SET_ANYWHERE_42"
    )
    assert missing_env.returncode == 2 and "NOT_SET_ANYWHERE_42 is not set" in missing_env.stderr
    no_password = _run("--registry", "127.0.0.1:5000", "--username", "u")
    assert no_password.returncode == 2 and "--username needs a password" in no_password.stderr
    scheme = _run("--registry", "http://127.0.0.1:5000")
    assert scheme.returncode == 2 and "must be HOST or HOST:PORT" in scheme.stderr
    no_password_option = _run("--registry", "127.0.0.1:5000", "--password", "x")
    assert no_password_option.returncode == 2  # there is deliberately no way to pass it in argv
    bad_ns = _run(
        "--registry",
        "127.0.0.1:5000",
        "--username",
        "u",
        "--password-env",
        "P",
        "--namespace",
        "Edge_AI",
        env={"P": "x"},
    )
    assert bad_ns.returncode == 2 and "not a valid Kubernetes namespace" in bad_ns.stderr
