"""An operator pauses and resumes a version rollout over HTTP: no new wave while paused, waves go
on after; the optimizer's /metrics counts rollouts by status and the decisions it recorded."""

from __future__ import annotations

from tests.optimizer.conftest import Stack, cycle, optimizer


async def test_paused_rollout_starts_no_wave_until_resumed(stack: Stack):
    v1 = stack.package("monitoring", "01", "01")
    edges = [stack.edge(f"R{i}", f"0x{i:02x}") for i in range(1, 5)]
    deps = [stack.deploy(e, v1) for e in edges]
    for d in deps:
        stack.observe(d)
    async with optimizer(
        stack, version={"first_wave": 1, "growth": 2.0}, recovery={"enabled": False}
    ) as opt:
        await cycle(opt)
        v2 = stack.package("monitoring", "02", "01")
        await cycle(opt)
        ai = lambda: [stack.deployment(d["id"])["ai_id"] for d in deps]  # noqa: E731
        assert ai() == [v2["id"], v1["id"], v1["id"], v1["id"]]  # wave 0
        [rollout] = (await opt.get("/rollouts")).json()
        assert rollout["status"] == "active"

        paused = await opt.post(f"/rollouts/{rollout['id']}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        assert (await opt.post(f"/rollouts/{rollout['id']}/pause")).json()["status"] == "paused"
        stack.observe(deps[0])  # wave 0 ran: an active rollout would start wave 1 now
        assert (await cycle(opt))["operations"] == 0
        assert ai() == [v2["id"], v1["id"], v1["id"], v1["id"]]
        [rollout] = (await opt.get("/rollouts")).json()
        assert rollout["status"] == "paused" and rollout["wave"] == 0
        metrics = (await opt.get("/metrics")).text
        assert 'optimizer_rollouts{status="paused"} 1.0' in metrics
        assert 'optimizer_decisions_total{action="rollout_started"' in metrics

        resumed = await opt.post(f"/rollouts/{rollout['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] == "active"
        await cycle(opt)
        assert ai() == [v2["id"], v2["id"], v2["id"], v1["id"]]  # wave 1: two more

        missing = await opt.post("/rollouts/999999/pause")
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "rollout_id"


async def test_pause_and_resume_are_idempotent_and_a_finished_rollout_refuses(stack: Stack):
    v1 = stack.package("monitoring", "01", "01")
    e = stack.edge("Solo", "0x01")
    d = stack.deploy(e, v1)
    stack.observe(d)
    async with optimizer(stack, recovery={"enabled": False}) as opt:
        await cycle(opt)
        stack.package("monitoring", "02", "01")
        await cycle(opt)
        [rollout] = (await opt.get("/rollouts")).json()
        resumed = await opt.post(f"/rollouts/{rollout['id']}/resume")  # already active
        assert resumed.status_code == 200 and resumed.json()["status"] == "active"
        stack.observe(d)
        await cycle(opt)  # every edge updated: completed
        [rollout] = (await opt.get("/rollouts")).json()
        assert rollout["status"] == "completed"
        for verb in ("pause", "resume"):
            refused = await opt.post(f"/rollouts/{rollout['id']}/{verb}")
            assert refused.status_code == 409, refused.text
            assert "is completed" in refused.json()["error"]["message"]
