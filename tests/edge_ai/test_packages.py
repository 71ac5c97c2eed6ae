"""The AI package archives: built by edgectl, accepted by the master's validator, and runnable
from the unpacked folder alone (the program code travels inside)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from services.master.packages.archive import ingest_sync
from services.master.packages.store import ArtifactStore
from tests.helpers.processes import edgectl

EXPECTED = {
    "weatherai-00-01.tar.gz": ("weatherai", "01", "00", None, "edge_ai.weather"),
    "monitoring-01-01.tar.gz": ("monitoring", "01", "01", "SUNNY", "edge_ai.monitoring"),
    "monitoring-02-01.tar.gz": ("monitoring", "01", "02", "RAINY", "edge_ai.monitoring"),
    "yoloworker-10-02.tar.gz": ("yoloworker", "02", "10", None, "edge_ai.yolo"),
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("packages")
    proc = subprocess.run(
        edgectl("edge", "build-packages", "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_edgectl_builds_every_package(archives):
    assert sorted(p.name for p in archives.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_master_accepts_each_archive(archives, tmp_path, name):
    filename, version, ai_class, condition, module = EXPECTED[name]
    pkg = ingest_sync(
        archives / name,
        ArtifactStore(tmp_path / "store"),
        expected={"filename": filename, "version": version, "ai_class": ai_class},
    )
    m = pkg.manifest
    assert (m.filename, m.version, m.ai_class, m.condition) == (
        filename,
        version,
        ai_class,
        condition,
    )
    assert m.command == ["python", "-m", module] and m.uses_agent_python()
    assert m.dockerfile == "Dockerfile"
    with tarfile.open(archives / name) as tar:
        names = set(tar.getnames())
        dockerfile = tar.extractfile("Dockerfile").read().decode()
    assert {
        "aipackage.yaml",
        "edgeconfig.xml",
        "edge_ai/__init__.py",
        "edge_ai/common/vms_client.py",
        "edge_common/redaction.py",
        "edge_common/log_format.py",
        f"edge_ai/{module.split('.')[1]}/__main__.py",
    } <= names
    assert not any("__pycache__" in n for n in names)
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile and "FROM ${BASE_IMAGE}" in dockerfile


def test_builds_are_reproducible(archives, tmp_path):
    proc = subprocess.run(
        edgectl("edge", "build-packages", "--out", str(tmp_path), "--only", "weatherai"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "weatherai-00-01.tar.gz").read_bytes() == (
        archives / "weatherai-00-01.tar.gz"
    ).read_bytes()


def test_real_weights_go_into_the_yolo_package(tmp_path):
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not really a model, the build only copies it")
    out = tmp_path / "out"
    proc = subprocess.run(
        edgectl(
            "edge",
            "build-packages",
            "--out",
            str(out),
            "--only",
            "yoloworker",
            "--yolo-weights",
            str(weights),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    archive = out / "yoloworker-10-02.tar.gz"
    with tarfile.open(archive) as tar:
        manifest = yaml.safe_load(tar.extractfile("aipackage.yaml").read())
        assert tar.extractfile("models/best.pt").read() == weights.read_bytes()
    assert manifest["models"] == ["models/best.pt"]
    assert (
        manifest["detector"]["model"] == "models/best.pt"
        and manifest["env"]["YOLO_MODEL_NAME"] == "best"
    )
    assert ingest_sync(archive, ArtifactStore(tmp_path / "store")).manifest.models == [
        "models/best.pt"
    ]


def test_the_unpacked_package_runs_on_its_own(archives, tmp_path):
    """The program is imported from the unpacked folder, not from this repository."""
    from edge_ai.packages.build import unpack

    root = unpack(archives / "weatherai-00-01.tar.gz", tmp_path / "weatherai")
    probe = "import edge_ai.weather.app as m, sys; print(m.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == str(root / "edge_ai" / "weather" / "app.py")
    # --help parses without a configuration file.
    proc = subprocess.run(
        [sys.executable, "-m", "edge_ai.weather", "--help"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "--sequence" in proc.stdout


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        (
            "edge_ai.weather.app",
            ("fastapi", "sqlalchemy", "shared", "services", "torch", "ultralytics", "cv2"),
        ),
        (
            "edge_ai.monitoring.app",
            ("fastapi", "sqlalchemy", "shared", "services", "torch", "ultralytics", "cv2"),
        ),
        (
            "edge_ai.yolo.app",
            ("fastapi", "sqlalchemy", "shared", "services", "torch", "ultralytics", "cv2"),
        ),
    ],
)
def test_edge_programs_stay_light(module, forbidden):
    """The Jetson images carry no service code; heavy libraries load only when a frame source or
    model does."""
    probe = f"import sys, {module}; print(','.join(m for m in {forbidden!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
