"""Setup and the master as real processes, the master building with a real builder (buildah on a
private storage root) and pushing to the session's local registry."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.container_fixtures import *  # noqa: F403
from tests.helpers.containers import ContainerEnv
from tests.helpers.env import OPERATOR, free_port, service_env
from tests.helpers.processes import Proc, start_service
from tests.helpers.registry import RunningRegistry


@dataclass
class BuildStack:
    setup: httpx.AsyncClient
    master: httpx.AsyncClient
    master_url: str
    package_dir: Path
    artifact_dir: Path

    async def wait_built(self, ai_id: int, timeout: float = 300) -> dict[str, Any]:
        """The AI once its build has ended (ready or failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ai = (await self.master.get(f"/ai-packages/{ai_id}")).json()
            build = ai.get("build") or {}
            if ai["status"] in ("ready", "failed") and build.get("state") != "running":
                return ai
            await asyncio.sleep(0.5)
        raise TimeoutError(f"AI {ai_id} still building after {timeout}s")


StackFactory = Callable[..., contextlib.AbstractAsyncContextManager[BuildStack]]


@pytest.fixture
def build_stack(
    db: str, tmp_path: Path, container_env: ContainerEnv, container_registry: RunningRegistry
) -> StackFactory:
    """``async with build_stack(MASTER_BUILDER="buildah", ...) as stack``: setup and a master
    whose registry is the session's, with the container tools pointed at the session's storage."""

    @contextlib.asynccontextmanager
    async def start(**master_env: str) -> AsyncIterator[BuildStack]:
        run = tmp_path / f"stack-{free_port()}"
        package_dir, artifact_dir = run / "packages", run / "artifacts"
        package_dir.mkdir(parents=True)
        setup_port, master_port = free_port(), free_port()
        setup_url, master_url = f"http://127.0.0.1:{setup_port}", f"http://127.0.0.1:{master_port}"
        nobody = f"http://127.0.0.1:{free_port()}"
        common = dict(
            EDGE_SETUP_URL=setup_url, EDGE_MASTER_URL=master_url, EDGE_OPTIMIZER_URL=nobody
        )
        procs: list[Proc] = []
        try:
            procs.append(
                start_service("setup", env=service_env(db, **common), port=setup_port, tmp_path=run)
            )
            env = service_env(
                db,
                **common,
                **container_env.env,
                MASTER_ARTIFACT_DIR=str(artifact_dir),
                MASTER_PACKAGE_DIR=str(package_dir),
                MASTER_REGISTRY_URL=container_registry.url,
                MASTER_RECONCILE_ON_START="false",
                MASTER_RECONCILE_SECONDS="3600",
                MASTER_NOTIFY_OPTIMIZER="false",
                **master_env,
            )
            procs.append(start_service("master", env=env, port=master_port, tmp_path=run))
            async with (
                httpx.AsyncClient(base_url=setup_url, headers=OPERATOR, timeout=60) as setup,
                httpx.AsyncClient(base_url=master_url, headers=OPERATOR, timeout=60) as master,
            ):
                yield BuildStack(setup, master, master_url, package_dir, artifact_dir)
        finally:
            for proc in reversed(procs):
                proc.stop()

    return start
