"""Fixtures for the master's package and registry tests: real registries on loopback,
package archives built on the fly, an artifact store per test."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from services.master.packages import ArtifactStore
from tests.helpers.registry import start_registry

REGISTRY_USERS = {"edge-ci": "pull-push-Secret-42"}

MANIFEST = """\
filename: monitoring
version: "{version}"
ai_class: "01"
condition: SUNNY
description: people counting, daylight variant
command: ["python", "main.py", "--config", "edgeconfig.xml"]
env:
  MODEL_PATH: models/best.pt
  LOG_LEVEL: info
resources: {{cpu: 1.5, memory_mb: 1024, gpu: 0}}
models: [models/best.pt]
"""


def package_files(version: str = "01", **extra: bytes | str) -> dict[str, bytes]:
    files: dict[str, bytes | str] = {
        "aipackage.yaml": MANIFEST.format(version=version),
        "main.py": "print('monitoring running')\n",
        "models/best.pt": b"\x00weights" * 100,
    }
    files.update(extra)
    return {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}


def make_targz(
    path: Path,
    files: dict[str, bytes],
    *,
    prefix: str = "",
    extra: list[tarfile.TarInfo] | None = None,
) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(prefix + name)
            ti.size = len(data)
            ti.mode = 0o755 if name.endswith(".sh") else 0o644
            tf.addfile(ti, io.BytesIO(data))
        for ti in extra or []:
            tf.addfile(ti)
    return path


def make_zip(path: Path, files: dict[str, bytes], *, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(prefix + name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def assert_nothing_stored(store: ArtifactStore) -> None:
    assert store.digests() == []
    assert list(store.sha_dir.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == [], "a refused package left temp files behind"


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """An anonymous docker-registry with deletion enabled."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory):
    """A docker-registry behind htpasswd (bcrypt) basic auth."""
    reg = start_registry(tmp_path_factory.mktemp("registry-auth"), users=REGISTRY_USERS)
    yield reg
    reg.stop()
