"""An operator pauses, resumes and rolls back a version rollout over HTTP: no new wave while
paused, waves go on after; rolled back, its edges go back to the version they ran before (one bulk
write to setup, a rollback decision each) and none is upgraded again; the optimizer's /metrics
counts rollouts by status and the decisions it recorded."""

from __future__ import annotations

from tests.optimizer.conftest import Stack, cycle, decisions, optimizer


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


async def test_rolled_back_rollout_sends_its_edges_back_and_upgrades_none_again(stack: Stack):
    v1 = stack.package("monitoring", "01", "01")
    edges = [stack.edge(f"B{i}", f"0x{i:02x}") for i in range(1, 5)]
    deps = [stack.deploy(e, v1) for e in edges]
    for d in deps:
        stack.observe(d)
    async with optimizer(
        stack, version={"first_wave": 1, "growth": 2.0}, recovery={"enabled": False}
    ) as opt:
        await cycle(opt)
        v2 = stack.package("monitoring", "02", "01")
        await cycle(opt)  # wave 0: B1
        stack.observe(deps[0])
        await cycle(opt)  # wave 0 ran: wave 1, B2 and B3
        ai = lambda: [stack.deployment(d["id"])["ai_id"] for d in deps]  # noqa: E731
        assert ai() == [v2["id"], v2["id"], v2["id"], v1["id"]]
        [rollout] = (await opt.get("/rollouts")).json()
        assert rollout["status"] == "active" and rollout["wave"] == 1

        back = await opt.post(f"/rollouts/{rollout['id']}/rollback")
        assert back.status_code == 200, back.text
        assert back.json()["status"] == "rolled_back"
        summary = await cycle(opt)
        assert summary["operations"] == 3  # one bulk write to setup: the three upgraded edges
        assert ai() == [v1["id"]] * 4
        rolled = await decisions(opt, policy="version", action="rollback")
        assert sorted(d["edge_name"] for d in rolled) == ["B1", "B2", "B3"]
        for d in rolled:
            assert "an operator rolled back the monitoring 02 rollout" in d["reason"], d
            assert d["inputs"]["rollout_status"] == "rolled_back"
            assert d["inputs"]["from_version"] == "02" and d["inputs"]["to_version"] == "01"

        # The version policy leaves them there: no wave, no re-upgrade, however long it runs.
        for d in deps:
            stack.observe(d)
        assert (await cycle(opt))["operations"] == 0
        assert ai() == [v1["id"]] * 4
        [rollout] = (await opt.get("/rollouts")).json()
        assert rollout["status"] == "rolled_back"
        assert 'optimizer_rollouts{status="rolled_back"} 1.0' in (await opt.get("/metrics")).text
        again = await opt.post(f"/rollouts/{rollout['id']}/rollback")
        assert again.status_code == 200 and again.json()["status"] == "rolled_back"
        refused = await opt.post(f"/rollouts/{rollout['id']}/resume")
        assert refused.status_code == 409, refused.text

        missing = await opt.post("/rollouts/999999/rollback")
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "rollout_id"


async def test_a_superseded_rollout_cannot_be_rolled_back(stack: Stack):
    v1 = stack.package("monitoring", "01", "01")
    edges = [stack.edge(f"S{i}", f"0x{i:02x}") for i in range(1, 3)]
    deps = [stack.deploy(e, v1) for e in edges]
    for d in deps:
        stack.observe(d)
    async with optimizer(stack, version={"first_wave": 1}, recovery={"enabled": False}) as opt:
        await cycle(opt)
        stack.package("monitoring", "02", "01")
        await cycle(opt)
        stack.package("monitoring", "03", "01")
        await cycle(opt)  # the 03 rollout supersedes the 02 one
        by_version = {r["to_version"]: r for r in (await opt.get("/rollouts")).json()}
        assert by_version["02"]["status"] == "superseded"
        refused = await opt.post(f"/rollouts/{by_version['02']['id']}/rollback")
        assert refused.status_code == 409, refused.text
        assert "newer version" in refused.json()["error"]["message"]
