"""Setup's calls to the master, against a stand-in master on a real port: the requests to act go
out after commit through the outbox (counted on /metrics), and a master that cannot be reached
never fails setup's answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request

from services.setup.app import create_app
from tests.conftest import running_app
from tests.helpers.env import OPERATOR, free_port, service_credential, settings_for
from tests.setup.test_registry import FIELD_EDGE


@contextlib.asynccontextmanager
async def stand_in_master() -> AsyncIterator[tuple[str, list[str]]]:
    """Records the path of every POST it gets, checking setup's own credential."""
    received: list[str] = []
    app = FastAPI()

    @app.post("/{path:path}", status_code=202)
    async def anything(path: str, request: Request) -> dict[str, bool]:
        assert request.headers["authorization"] == f"Bearer {service_credential('setup')}"
        received.append("/" + path)
        return {"accepted": True}

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.should_exit = True
        await task


async def _eventually(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_requests_to_act_reach_the_master_after_commit(db: str) -> None:
    async with stand_in_master() as (url, received):
        app = create_app(settings_for("setup", db, notify_master=True, master_url=url))
        async with running_app(app) as client:
            r = await client.post(
                "/ai-packages",
                json={"filename": "monitoring", "version": "01", "ai_class": "01"},
                headers=OPERATOR,
            )
            assert r.status_code == 201, r.text
            ai_id = r.json()["id"]
            cluster = await client.post("/clusters", json={"name": "c"}, headers=OPERATOR)
            edge = await client.post(
                "/edges",
                json={**FIELD_EDGE, "nid": "0x01", "cluster_id": cluster.json()["id"]},
                headers=OPERATOR,
            )
            r = await client.post(
                "/deployments",
                json={"edge_id": edge.json()["id"], "ai_id": ai_id},
                headers=OPERATOR,
            )
            assert r.status_code == 201, r.text

            async def both_arrived() -> bool:
                return len(received) >= 2

            await _eventually(both_arrived)
            assert received == [f"/ai-packages/{ai_id}/build", "/reconcile"]
            metrics = (await client.get("/metrics")).text
            for kind in ("build", "reconcile"):
                assert (
                    f'setup_outbox_deliveries_total{{kind="{kind}",outcome="sent",'
                    f'target="master"}} 1.0'
                ) in metrics


async def test_an_absent_master_never_fails_the_request(db: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    app = create_app(settings_for("setup", db, notify_master=True, master_url=nowhere))
    async with running_app(app) as client:
        r = await client.post(
            "/ai-packages",
            json={"filename": "monitoring", "version": "02", "ai_class": "01"},
            headers=OPERATOR,
        )
        assert r.status_code == 201, r.text
        failed = 'setup_outbox_deliveries_total{kind="build",outcome="failed",target="master"} 1.0'

        async def counted() -> bool:
            return failed in (await client.get("/metrics")).text

        await _eventually(counted)
