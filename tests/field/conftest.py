"""The field's scripts and devices against setup and the master as real processes (setup calls
the master, the master calls setup), and a VMS in-process that knows the nodes from that setup."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.vms.app import create_app as create_vms
from tests.conftest import running_app
from tests.helpers.env import OPERATOR, free_port, service_env, settings_for
from tests.helpers.processes import Proc, start_service


@dataclass
class FieldStack:
    setup: httpx.AsyncClient
    master: httpx.AsyncClient
    setup_url: str
    master_url: str
    package_dir: Path
    database_url: str

    @contextlib.asynccontextmanager
    async def vms(self, **overrides) -> AsyncIterator[httpx.AsyncClient]:
        """A VMS reading its nodes (and their time zones) from this stack's setup."""
        overrides.setdefault("optimizer_url", f"http://127.0.0.1:{free_port()}")
        overrides.setdefault("group_commit_window_ms", 1.0)
        app = create_vms(
            settings_for("vms", self.database_url, setup_url=self.setup_url, **overrides)
        )
        async with running_app(app) as client:
            yield client


@pytest.fixture
def field_processes(db: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    setup_port, master_port = free_port(), free_port()
    setup_url, master_url = f"http://127.0.0.1:{setup_port}", f"http://127.0.0.1:{master_port}"
    package_dir = tmp_path / "packages"
    package_dir.mkdir()
    nobody = f"http://127.0.0.1:{free_port()}"  # the optimizer is not running
    common = dict(EDGE_SETUP_URL=setup_url, EDGE_MASTER_URL=master_url, EDGE_OPTIMIZER_URL=nobody)
    procs: list[Proc] = []
    try:
        procs.append(
            start_service(
                "setup", env=service_env(db, **common), port=setup_port, tmp_path=tmp_path
            )
        )
        master_env = service_env(
            db,
            **common,
            MASTER_ARTIFACT_DIR=str(tmp_path / "artifacts"),
            MASTER_PACKAGE_DIR=str(package_dir),
            MASTER_RECONCILE_ON_START="false",
            MASTER_RECONCILE_SECONDS="3600",
            MASTER_NOTIFY_OPTIMIZER="false",
        )
        procs.append(start_service("master", env=master_env, port=master_port, tmp_path=tmp_path))
        yield setup_url, master_url, package_dir
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture
async def field(db: str, field_processes) -> AsyncIterator[FieldStack]:
    setup_url, master_url, package_dir = field_processes
    async with (
        httpx.AsyncClient(base_url=setup_url, headers=OPERATOR, timeout=30) as setup,
        httpx.AsyncClient(base_url=master_url, headers=OPERATOR, timeout=30) as master,
    ):
        yield FieldStack(setup, master, setup_url, master_url, package_dir, db)


# A package folder as the field keeps them: a Dockerfile and the program, no aipackage.yaml.
FIELD_PROGRAM = "import time\nwhile True:\n    time.sleep(1)\n"


def field_folder(root: Path, filename: str, *, cmd: str = 'CMD ["python", "main.py"]') -> Path:
    folder = root / filename
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(
        "FROM python:3.11-slim\nWORKDIR /app\nCOPY . /app\n" + (cmd + "\n" if cmd else "")
    )
    (folder / "main.py").write_text(FIELD_PROGRAM)
    return folder
