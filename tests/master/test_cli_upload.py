"""``edgectl ai upload`` against the master as a real process (setup beside it)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers.env import free_port, service_env
from tests.helpers.processes import REPO, edgectl, start_service
from tests.master.helpers import package_files, write_folder, zipped


@pytest.fixture
def master_proc(db, setup_service, tmp_path):
    port = free_port()
    env = service_env(
        db,
        EDGE_SETUP_URL=setup_service,
        MASTER_ARTIFACT_DIR=str(tmp_path / "artifacts"),
        MASTER_PACKAGE_DIR=str(tmp_path / "packages"),
        MASTER_NOTIFY_OPTIMIZER="false",
        MASTER_MAX_UPLOAD_BYTES="5000000",
    )
    proc = start_service("master", env=env, port=port, tmp_path=tmp_path)
    yield f"http://127.0.0.1:{port}", tmp_path / "artifacts"
    proc.stop()


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = service_env("postgresql+asyncpg://unused/unused", EDGE_MASTER_URL=url)
    return subprocess.run(
        edgectl("ai", *args), env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_upload_a_folder_and_an_archive_and_a_refusal(master_proc, tmp_path):
    url, artifacts = master_proc
    files = package_files("monitoring", "01", "01")
    files["models/best.pt"] = os.urandom(2_000_000)  # big enough for several chunks
    folder = write_folder(tmp_path / "src" / "monitoring", files)
    out = run_cli("upload", str(folder), "--version", "01", "--wait", url=url)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "monitoring 01 class 01" in out.stdout and '"status": "ready"' in out.stdout
    assert '"state": "ready"' in out.stdout  # --wait returns once the build itself has ended
    assert len(list((artifacts / "sha256").iterdir())) == 1

    archive = tmp_path / "weather.zip"
    archive.write_bytes(zipped(package_files("weatherai", "01", "00", condition=None)))
    out = run_cli("upload", str(archive), "--quiet", url=url)
    assert out.returncode == 0 and "weatherai 01 class 00" in out.stdout, out.stderr

    listed = run_cli("list", url=url)
    assert listed.returncode == 0 and "monitoring" in listed.stdout and "weatherai" in listed.stdout

    bad = tmp_path / "bad.zip"
    bad.write_bytes(zipped({"main.py": "print()"}))
    out = run_cli("upload", str(bad), "-q", url=url)
    assert out.returncode == 1 and "refused (422)" in out.stderr and "aipackage.yaml" in out.stderr
    assert len(list((artifacts / "sha256").iterdir())) == 2
