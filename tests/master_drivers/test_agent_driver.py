"""The agent driver against the real edge agent process (and an artifact server answering like the
master)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from services.master.drivers.agent import AgentDriver
from services.master.drivers.base import (
    DriverError,
    DriverUnavailable,
    EdgeTarget,
    Workload,
)
from tests.agent.helpers import (
    AGENT_KEY,
    Agent,
    ArtifactServer,
    kill_leftovers,
    ticker_package,
    workload_processes,
)
from tests.helpers.env import free_port
from tests.master_drivers.workloads import workload as built_workload


@pytest.fixture
def artifacts():
    server = ArtifactServer()
    yield server
    server.close()


@pytest.fixture
def agent(tmp_path, artifacts):
    a = Agent(tmp_path, artifacts.url, node="edgecctv01").start()
    yield a
    a.close()
    kill_leftovers(a.workdir)


@pytest.fixture
async def driver():
    d = AgentDriver(key_for=lambda edge: AGENT_KEY, timeout_s=5)
    yield d
    await d.aclose()


def workload(edge: EdgeTarget, digest: str, version: str, *, generation: int = 1) -> Workload:
    """What the reconcile pass hands the agent driver for a deployment of the ticker package."""
    return built_workload(
        edge,
        digest=digest,
        version=version,
        generation=generation,
        ai_id=3,
        deployment_id=7,
        image=False,
        secret_env={"RTSP_URL": "rtsp://cam-user:cam-pass-123@127.0.0.1:8554/stream"},
    )


async def observed_until(driver, edge, check, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        seen = await driver.observe(edge)
        if check(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {seen}")
        await asyncio.sleep(0.1)


async def test_apply_observe_replace_remove(agent, artifacts, driver):
    edge = EdgeTarget(name="EdgeCCTV01", nid="0x01", agent_url=agent.url)
    d1 = artifacts.add(ticker_package("01"))
    d2 = artifacts.add(ticker_package("02"))

    await driver.apply(workload(edge, d1, "01"))
    (seen,) = await observed_until(driver, edge, lambda s: s and s[0].state == "running")
    assert (seen.name, seen.deployment_id, seen.version, seen.restarts, seen.generation) == (
        "monitoring-01",
        7,
        "01",
        0,
        1,
    )
    directory = agent.workdir / "workloads" / "monitoring-01" / f"01-{d1.split(':')[1][:12]}"
    assert "<NID>0x01</NID>" in (directory / "edgeconfig.xml").read_text()
    (proc,) = workload_processes(agent.workdir)
    assert proc.environ()["FUNC"] == "SUNNY"
    assert proc.environ()["RTSP_URL"].startswith("rtsp://cam-user:cam-pass-123@")
    assert "cam-pass-123" not in str(await driver.observe(edge))  # never in the agent's answers

    await driver.apply(workload(edge, d1, "01"))  # idempotent: same process
    assert [p.pid for p in workload_processes(agent.workdir)] == [proc.pid]

    await driver.apply(workload(edge, d2, "02", generation=2))
    (seen,) = await observed_until(
        driver,
        edge,
        lambda s: (
            s[0].version == "02"
            and s[0].state == "running"
            and len(workload_processes(agent.workdir)) == 1
        ),
    )
    assert seen.generation == 2

    assert any(
        line.startswith("v02 ")
        for line in agent.client.get("/workloads/monitoring-01/logs").json()["lines"]
    )

    await driver.remove(edge, "monitoring-01")
    assert await driver.observe(edge) == []
    assert workload_processes(agent.workdir) == []
    await driver.remove(edge, "monitoring-01")  # already gone: success


async def test_errors_are_retryable_or_permanent(agent, artifacts, driver):
    edge = EdgeTarget(name="EdgeCCTV01", nid="0x01", agent_url=agent.url)
    digest = artifacts.add(ticker_package("01"))

    down = EdgeTarget(name="EdgeCCTV02", nid="0x02", agent_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(DriverUnavailable, match="unreachable"):
        await driver.observe(down)
    with pytest.raises(DriverUnavailable):
        await driver.apply(workload(down, digest, "01"))

    wrong = AgentDriver(service_token="not-the-service-token-0000", timeout_s=5)
    try:
        with pytest.raises(DriverError, match="401") as info:
            await wrong.apply(workload(edge, digest, "01"))
        assert not isinstance(info.value, DriverUnavailable)
    finally:
        await wrong.aclose()

    artifacts.substitutes[digest] = ticker_package("66")  # corrupted on the way: worth another try
    with pytest.raises(DriverUnavailable, match="digest mismatch"):
        await driver.apply(workload(edge, digest, "01"))

    with pytest.raises(DriverError, match="agent_url"):
        await driver.observe(EdgeTarget(name="EdgeCCTV03", nid="0x03"))
    no_digest = workload(edge, digest, "01")
    no_digest.ai = replace(no_digest.ai, package_digest=None)
    with pytest.raises(DriverError, match="no package digest"):
        await driver.apply(no_digest)
    assert await driver.observe(edge) == []
