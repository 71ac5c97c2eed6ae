"""Removing an AI through the master while setup, having recorded the removal, asks the master to
clean up as well (SETUP_NOTIFY_MASTER on, both services on real ports): the clean-up runs once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from services.master.app import create_app
from tests.helpers.env import OPERATOR, free_port, service_env, settings_for
from tests.helpers.processes import start_service
from tests.master.helpers import package_files, targz


@contextlib.asynccontextmanager
async def serving(app, port: int) -> AsyncIterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the master did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def until(check, timeout: float = 20):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)
    return value


@pytest.fixture
def ports() -> tuple[int, int]:
    return free_port(), free_port()


async def test_removal_through_the_master_cleans_up_once(database_url, db, tmp_path, ports, caplog):
    setup_port, master_port = ports
    env = service_env(
        database_url, SETUP_NOTIFY_MASTER="true", EDGE_MASTER_URL=f"http://127.0.0.1:{master_port}"
    )
    setup = start_service("setup", env=env, port=setup_port, tmp_path=tmp_path)
    settings = settings_for(
        "master",
        db,
        setup_url=f"http://127.0.0.1:{setup_port}",
        notify_optimizer=False,
        artifact_dir=tmp_path / "artifacts",
        package_dir=tmp_path / "packages",
        reconcile_on_start=False,
        reconcile_seconds=3600,
    )
    app = create_app(settings)
    try:
        async with (
            serving(app, master_port) as url,
            httpx.AsyncClient(base_url=url, headers=OPERATOR, timeout=30) as master,
        ):
            # The master's start set up its own log handlers: listen again.
            logging.getLogger().addHandler(caplog.handler)
            caplog.set_level(logging.INFO, logger="edge.master.removal")
            r = await master.post("/ai-packages", content=targz(package_files()))
            ai_id = r.json()["ai"]["id"]

            async def ready() -> bool:
                return (await master.get(f"/ai-packages/{ai_id}")).json()["status"] == "ready"

            await until(ready)
            r = await master.delete(f"/ai-packages/{ai_id}")
            assert r.status_code == 200 and r.json()["artifact"] == "deleted", r.text

            async def setup_asked() -> bool:  # setup's own call to .../remove has been answered
                value = app.state.metrics_registry.get_sample_value(
                    "http_requests_total",
                    {
                        "service": "master",
                        "method": "POST",
                        "route": "/ai-packages/{ai_id}/remove",
                        "status": "200",
                    },
                )
                return bool(value)

            await until(setup_asked)
    finally:
        setup.stop()
    cleanups = [m for m in caplog.messages if m.startswith(f"AI {ai_id} removed:")]
    assert len(cleanups) == 1, cleanups
