"""Each policy over HTTP with the real services: setup and the VMS as processes, the optimizer
in-process; conditions are driven through the VMS's routes and the master's reports through
setup's /deployments/observed; results are checked in setup's desired state and the decision log."""

from __future__ import annotations

from tests.optimizer.conftest import Stack, cycle, decisions, optimizer

RAINY, SUNNY = "2", "0"  # the documented default condition codes


async def test_weather_flip_swaps_sunny_and_rainy_variants(stack: Stack):
    sunny = stack.package("monitoring", "01", "01")
    rainy = stack.package("monitoring", "01", "02")
    weather = stack.package("weatherai", "01", "00")
    e1 = stack.edge("EdgeCCTV01", "0x01")
    d = stack.deploy(e1, sunny)
    w = stack.deploy(e1, weather)
    async with optimizer(stack, environment={"hysteresis_samples": 3}) as opt:
        stack.conditions("0x01", RAINY, 2)
        assert (await cycle(opt))["operations"] == 0  # 2 samples: hysteresis holds
        stack.conditions("0x01", RAINY, 2)  # 4 in a row now
        summary = await cycle(opt)
        assert summary["operations"] == 1
        now = stack.deployment(d["id"])
        assert now["ai_id"] == rainy["id"] and now["requested_by"] == "optimizer"
        assert stack.deployment(w["id"])["ai_id"] == weather["id"]  # the environment AI stays
        [decision] = await decisions(opt, edge="EdgeCCTV01", policy="environment")
        assert decision["action"] == "switch_variant" and decision["id"] == now["decision_id"]
        assert decision["inputs"]["condition"] == "RAINY" and decision["inputs"]["streak"] == 4
        assert (
            decision["inputs"]["from_ai_class"] == "01"
            and decision["inputs"]["to_ai_class"] == "02"
        )
        assert decision["outcome"] == "pending"
        assert (await cycle(opt))["operations"] == 0  # idempotent

        stack.observe(d)  # the master runs it
        await cycle(opt)
        [decision] = await decisions(opt, edge="0x01", policy="environment")
        assert decision["outcome"] == "succeeded"

        explained = (await opt.get("/edges/EdgeCCTV01/explain")).json()
        mon = next(x for x in explained["deployments"] if x["filename"] == "monitoring")
        assert mon["ai_class"] == "02" and mon["decided_by"]["action"] == "switch_variant"

        stack.conditions("0x01", SUNNY, 3)
        await cycle(opt)
        assert stack.deployment(d["id"])["ai_id"] == sunny["id"]


async def test_new_version_rolls_out_in_waves_and_a_bad_one_is_rolled_back(stack: Stack):
    v1 = stack.package("monitoring", "01", "01")
    edges = [stack.edge(f"E{i}", f"0x{i:02x}") for i in range(1, 6)]
    deps = [stack.deploy(e, v1) for e in edges]
    for d in deps:
        stack.observe(d)
    async with optimizer(
        stack,
        version={"first_wave": 1, "growth": 2.0, "failure_threshold": 0.3},
        recovery={"enabled": False},
    ) as opt:
        assert (await cycle(opt))["operations"] == 0
        v2 = stack.package("monitoring", "02", "01")
        await cycle(opt)
        ai = lambda: [stack.deployment(d["id"])["ai_id"] for d in deps]  # noqa: E731
        assert ai() == [v2["id"], v1["id"], v1["id"], v1["id"], v1["id"]]  # wave 0: one edge
        assert (await cycle(opt))["operations"] == 0  # not yet observed: the wave waits
        stack.observe(deps[0])
        await cycle(opt)
        assert ai() == [v2["id"], v2["id"], v2["id"], v1["id"], v1["id"]]  # wave 1: two more
        stack.observe(deps[1])
        stack.observe(deps[2], "failed", reason="ImagePullBackOff")
        await cycle(opt)  # 1 of 2 failed (50 % > 30 %): halted, the failed edge goes back
        assert ai() == [v2["id"], v2["id"], v1["id"], v1["id"], v1["id"]]
        rollouts = (await opt.get("/rollouts")).json()
        assert rollouts[0]["status"] == "halted" and rollouts[0]["failed"] == [edges[2]["id"]]
        halted = await decisions(opt, policy="version", action="rollout_halted")
        assert halted[0]["inputs"]["failed_share"] == 0.5
        [back] = await decisions(opt, policy="version", action="rollback", edge="E3")
        assert back["inputs"]["from_version"] == "02" and back["inputs"]["to_version"] == "01"
        assert (await cycle(opt))["operations"] == 0  # halted stays halted


async def test_dead_ai_is_redeployed_then_edge_marked_degraded(stack: Stack):
    sunny = stack.package("monitoring", "01", "01")
    e = stack.edge("Dying", "0x01")
    d = stack.deploy(e, sunny)
    stack.observe(d, "failed", reason="CrashLoopBackOff")
    async with optimizer(
        stack, recovery={"max_redeploys": 1, "retry_after_s": 0}, overload={"enabled": False}
    ) as opt:
        await cycle(opt)
        again = stack.deployment(d["id"])
        assert again["generation"] == d["generation"] + 1 and again["ai_id"] == sunny["id"]
        [redeploy] = await decisions(opt, policy="recovery")
        assert redeploy["action"] == "redeploy" and "CrashLoopBackOff" in redeploy["reason"]
        assert redeploy["inputs"]["observed"] == "failed"
        assert (await cycle(opt))["operations"] == 0  # waits for the new generation's report
        stack.observe(d, "failed", reason="CrashLoopBackOff")
        await cycle(opt)
        assert stack.edge_row(e)["status"] == "degraded"
        stack.observe(d, "running")
        await cycle(opt)
        assert stack.edge_row(e)["status"] == "active"
        actions = [x["action"] for x in await decisions(opt, policy="recovery")]
        assert actions == ["mark_active", "mark_degraded", "redeploy"]


async def test_overloaded_edge_moves_to_nearest_edge_with_room_else_server(stack: Stack):
    sunny = stack.package("monitoring", "01", "01")
    hot = stack.edge("Hot", "0x01", lat=37.5000, lon=127.0000)
    busy = stack.edge("NearButBusy", "0x02", lat=37.5005, lon=127.0000)
    room = stack.edge("FartherWithRoom", "0x03", lat=37.5100, lon=127.0000)
    stack.edge("Elsewhere", "0x04", lat=37.5001, lon=127.0000, cluster_id=stack.cluster("c2"))
    d = stack.deploy(hot, sunny)
    stack.usage("0x01", 97, 50, samples=5)
    stack.usage("0x02", 75, 50)
    stack.usage("0x03", 20, 30)
    stack.usage("0x04", 5, 5)
    async with optimizer(
        stack, overload={"window_s": 0, "recover_window_s": 0}, recovery={"enabled": False}
    ) as opt:
        await cycle(opt)
        helper = stack.running_on(room)
        assert stack.running_on(busy) == []  # nearer, but above helper_cpu_max
        assert len(helper) == 1 and helper[0]["params"] == {
            "analysis_for": "0x01",
            "source_edge_id": hot["id"],
        }
        assert helper[0]["ai_id"] == sunny["id"] and helper[0]["allow_multiple"]
        assert stack.deployment(d["id"])["params"] == {
            "analysis_route": "edge",
            "analysis_edge": "0x03",
        }
        [handoff] = await decisions(opt, policy="overload")
        assert (
            handoff["action"] == "handoff_to_edge"
            and handoff["inputs"]["helper"] == "FartherWithRoom"
        )
        assert handoff["inputs"]["cpu_avg"] > 85
        route = (await opt.get("/routing/0x01")).json()
        assert route["analysis"] == "edge" and route["helper_nid"] == "0x03"
        assert (await cycle(opt))["operations"] == 0

        stack.usage("0x01", 5, 5, samples=30)  # recovers (smoothed)
        await cycle(opt)
        assert stack.running_on(room) == [] and stack.deployment(d["id"])["params"] == {}
        assert (await opt.get("/routing/0x01")).json()["analysis"] == "local"

        stack.usage("0x03", 95, 95, samples=30)  # no edge has room now
        stack.usage("0x01", 99, 50, samples=30)
        await cycle(opt)
        assert stack.deployment(d["id"])["params"] == {"analysis_route": "server"}
        assert (await decisions(opt, policy="overload"))[0]["action"] == "handoff_to_server"
        assert (await opt.get("/routing/0x01")).json()["analysis"] == "server"


async def test_low_confidence_edge_is_routed_up(stack: Stack):
    sunny = stack.package("monitoring", "01", "01")
    e = stack.edge("Unsure", "0x01")
    unsure = stack.deploy(e, sunny)
    stack.edge("Sure", "0x02")
    async with optimizer(
        stack, low_confidence={"share_level": 0.3, "clear_level": 0.2, "window_s": 0}
    ) as opt:
        stack.detections("0x01", detected=4, below=6, frames=10, sent_up=6, seconds=3)
        stack.detections("0x02", detected=10, below=0, seconds=3)
        summary = await cycle(opt)
        # The route reaches the edge as a live param (hot on the edge: no redeploy there).
        assert summary["operations"] == 1
        assert stack.deployment(unsure["id"])["params"] == {"route_low_confidence": True}
        route = (
            await opt.get(
                "/routing/0x01", headers={"Authorization": f"Bearer {stack.tokens['0x01']}"}
            )
        ).json()
        assert route["route_low_confidence"] is True and route["confidence_threshold"] == 0.5
        assert route["analysis_url"].endswith("/analysis") and route["frames_sent_up_share"] == 0.6
        assert (
            await opt.get(
                "/routing/0x02", headers={"Authorization": f"Bearer {stack.tokens['0x01']}"}
            )
        ).status_code == 403
        assert (await opt.get("/routing/0x02")).json()["route_low_confidence"] is False
        report = (await opt.get("/routing")).json()["items"]
        assert [(r["nid"], r["frames_sent_up_share"]) for r in report] == [("0x01", 0.6)]
        [up] = await decisions(opt, policy="low_confidence")
        assert up["action"] == "route_up" and up["inputs"]["low_confidence_share"] >= 0.3
        stack.detections("0x01", detected=10, below=0, seconds=40)
        await cycle(opt)
        assert (await opt.get("/routing/0x01")).json()["route_low_confidence"] is False
        assert stack.deployment(unsure["id"])["params"] == {}


async def test_detection_event_raises_neighbours_and_ttl_lowers_them(stack: Stack):
    import asyncio

    sunny = stack.package("monitoring", "01", "01")
    src = stack.edge("Seen", "0x01", lat=37.5000, lon=127.0)
    near = stack.edge("Near", "0x02", lat=37.5040, lon=127.0)  # ~450 m
    far = stack.edge("Far", "0x03", lat=37.6000, lon=127.0)  # ~11 km
    deps = {e["nid"]: stack.deploy(e, sunny) for e in (src, near, far)}
    async with optimizer(
        stack,
        run_scheduler=True,
        resync_seconds=3600,
        debounce_ms=1,
        focus={
            "classes": ["person"],
            "radius_km": 1.0,
            "ttl_s": 1.5,
            "params": {"focus": True, "fps": 15},
        },
    ) as opt:
        r = await opt.post(
            "/events", json={"type": "detection", "nid": "0x01", "counts": {"person": 2}}
        )
        assert r.status_code == 202 and r.json()["scope"] == "edge"
        for _ in range(100):
            if stack.deployment(deps["0x02"]["id"])["params"].get("focus"):
                break
            await asyncio.sleep(0.05)
        params = stack.deployment(deps["0x02"]["id"])["params"]
        assert params["focus"] is True and params["fps"] == 15 and params["focus_source"] == "0x01"
        assert stack.deployment(deps["0x03"]["id"])["params"] == {}
        assert stack.deployment(deps["0x01"]["id"])["params"] == {}
        # The TTL ends: the scheduler's date job decides again, without any call from here.
        for _ in range(100):
            if stack.deployment(deps["0x02"]["id"])["params"] == {}:
                break
            await asyncio.sleep(0.05)
        assert stack.deployment(deps["0x02"]["id"])["params"] == {}
        # The decision is recorded right after setup accepted the change.
        for _ in range(100):
            actions = [d["action"] for d in await decisions(opt, policy="focus", edge="Near")]
            if len(actions) == 2:
                break
            await asyncio.sleep(0.05)
        assert actions == ["focus_off", "focus_on"]
        # A class not configured raises nothing.
        r = await opt.post(
            "/events", json={"type": "detection", "nid": "0x01", "counts": {"car": 1}}
        )
        assert r.json()["scope"] == "none"


async def test_detection_event_reaches_a_neighbour_deployed_after_the_last_resync(stack: Stack):
    """The event's cycle reads the neighbours fresh: a deployment made after the optimizer's last
    whole read (setup does not tell the optimizer about it) still gets its focus."""
    import asyncio

    sunny = stack.package("monitoring", "01", "01")
    src = stack.edge("Seen", "0x01", lat=37.5000, lon=127.0)
    near = stack.edge("Near", "0x02", lat=37.5040, lon=127.0)
    stack.deploy(src, sunny)
    async with optimizer(
        stack,
        run_scheduler=True,
        resync_seconds=3600,
        debounce_ms=1,
        lease_renew_s=0.3,
        focus={"classes": ["person"], "radius_km": 1.0, "ttl_s": 60, "params": {"focus": True}},
    ) as opt:
        await asyncio.sleep(1.5)  # the lease taken, its whole cycle done
        await cycle(opt)  # the optimizer's mirror: Near has nothing deployed yet
        late = stack.deploy(near, sunny)
        seen = {"type": "detection", "nid": "0x01", "counts": {"person": 1}}
        r = await opt.post("/events", json=seen)
        assert r.status_code == 202
        for _ in range(100):
            if stack.deployment(late["id"])["params"].get("focus"):
                break
            await asyncio.sleep(0.05)
        assert stack.deployment(late["id"])["params"]["focus_source"] == "0x01"
