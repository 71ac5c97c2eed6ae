"""Operator controls over HTTP (dry-run, pin, pause, policy tuning), the event path from the VMS
to a decision with the optimizer as a real process, and leadership between two replicas."""

from __future__ import annotations

import asyncio
import time

import httpx

from services.optimizer.app import create_app
from tests.conftest import running_app
from tests.helpers.env import OPERATOR, service_env, settings_for
from tests.helpers.processes import start_service
from tests.optimizer.conftest import Stack, cycle, decisions, optimizer

RAINY = "2"


def _weather_fleet(stack: Stack, n: int = 1):
    sunny = stack.package("monitoring", "01", "01")
    rainy = stack.package("monitoring", "01", "02")
    edges = [stack.edge(f"E{i}", f"0x{i:02x}") for i in range(1, n + 1)]
    deps = [stack.deploy(e, sunny) for e in edges]
    for e in edges:
        stack.conditions(e["nid"], RAINY, 3)
    return sunny, rainy, edges, deps


async def test_dry_run_records_without_acting_and_pin_and_pause(stack: Stack):
    sunny, rainy, _edges, deps = _weather_fleet(stack, 2)
    async with optimizer(stack) as opt:
        r = await opt.put("/control", json={"dry_run": True})
        assert r.status_code == 200 and r.json()["dry_run"] is True
        summary = await cycle(opt)
        assert summary["dry_run"] and summary["operations"] == 2
        assert [stack.deployment(d["id"])["ai_id"] for d in deps] == [sunny["id"]] * 2
        recorded = await decisions(opt, policy="environment")
        assert len(recorded) == 2 and all(
            d["outcome"] == "dry_run" and d["dry_run"] for d in recorded
        )
        await cycle(opt)
        assert (
            len(await decisions(opt, policy="environment")) == 2
        )  # the same decision is recorded once

        r = await opt.put("/pins/E1", json={"reason": "camera under maintenance"})
        assert r.status_code == 200 and r.json()["edge_name"] == "E1"
        assert (await opt.put("/pins/NoSuchEdge")).status_code == 404
        await opt.put("/control", json={"dry_run": False, "paused": True})
        assert (await cycle(opt))["skipped"] == "paused"
        assert [stack.deployment(d["id"])["ai_id"] for d in deps] == [sunny["id"]] * 2

        await opt.put("/control", json={"paused": False})
        await cycle(opt)
        assert [stack.deployment(d["id"])["ai_id"] for d in deps] == [
            sunny["id"],
            rainy["id"],
        ]  # E1 pinned
        assert (await opt.delete("/pins/E1")).status_code == 204
        await cycle(opt)
        assert [stack.deployment(d["id"])["ai_id"] for d in deps] == [rainy["id"]] * 2

        # Without a token nothing changes.
        assert (
            await opt.put("/control", json={"paused": True}, headers={"Authorization": ""})
        ).status_code == 401


async def test_policies_are_tuned_and_disabled_through_the_api(stack: Stack):
    _sunny, rainy, _edges, deps = _weather_fleet(stack)
    async with optimizer(stack) as opt:
        r = await opt.patch("/policies/environment", json={"hysteresis_samples": 0})
        assert r.status_code == 422 and r.json()["error"]["field"] == "hysteresis_samples"
        assert (await opt.patch("/policies/nope", json={"enabled": False})).status_code == 404
        not_an_object = await opt.patch("/policies/environment", json=[{"enabled": False}])
        assert not_an_object.status_code == 422 and not_an_object.json()["error"]["field"] == "body"
        # The body is the policy's own change model: a misspelled setting, a value of the wrong
        # type or a null is refused naming the field, and nothing is written (not even the
        # valid part of the same body).
        for body, field in [
            ({"enabled": False, "hysteresis_sample": 5}, "hysteresis_sample"),
            ({"enabled": False, "hysteresis_samples": "many"}, "hysteresis_samples"),
            ({"hysteresis_samples": None}, "hysteresis_samples"),
            ({"enabled": False, "ttl_s": 60}, "ttl_s"),  # focus's setting, not environment's
        ]:
            r = await opt.patch("/policies/environment", json=body)
            assert r.status_code == 422, r.text
            assert r.json()["error"]["field"] == field, r.text
        r = await opt.patch("/policies/focus", json={"classes": "person"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "classes", r.text
        untouched = (await opt.get("/policies")).json()
        assert all(p["overrides"] == {} and p["enabled"] for p in untouched), untouched
        assert (await opt.get("/policies/changes")).json() == []
        # Each policy's body and answer have their own schema in the OpenAPI document.
        spec = (await opt.get("/openapi.json")).json()
        body = spec["paths"]["/policies/focus"]["patch"]["requestBody"]["content"]
        patch = spec["components"]["schemas"]["FocusPatch"]
        assert body["application/json"]["schema"]["$ref"] == "#/components/schemas/FocusPatch"
        assert patch["additionalProperties"] is False and "ttl_s" in patch["properties"]
        assert not patch.get("required")
        r = await opt.patch("/policies/environment", json={"hysteresis_samples": 5})
        assert (
            r.status_code == 200
            and r.json()["effective"]["hysteresis_samples"] == 5
            and r.json()["defaults"]["hysteresis_samples"] == 3
        )
        assert (await cycle(opt))["operations"] == 0  # streak 3 < 5
        await opt.patch("/policies/environment", json={"enabled": False})
        stack.conditions("0x01", RAINY, 3)
        assert (await cycle(opt))["operations"] == 0  # disabled
        r = await opt.delete("/policies/environment/overrides")
        assert r.json()["enabled"] is True
        await cycle(opt)
        assert stack.deployment(deps[0]["id"])["ai_id"] == rainy["id"]
        # Who changed what, newest first; refused changes are not recorded.
        await opt.patch("/policies/focus", json={"ttl_s": 60}, headers={"X-Changed-Via": "edgectl"})
        changes = (await opt.get("/policies/changes", params={"limit": 4})).json()
        assert [(c["policy"], c["changes"], c["reset"], c["changed_by"]) for c in changes] == [
            ("focus", {"ttl_s": 60}, False, "operator (edgectl)"),
            ("environment", {}, True, "operator (api)"),
            ("environment", {"enabled": False}, False, "operator (api)"),
            ("environment", {"hysteresis_samples": 5}, False, "operator (api)"),
        ]
        await opt.delete("/policies/focus/overrides")
        names = [p["name"] for p in (await opt.get("/policies")).json()]
        assert names == [
            "environment",
            "version",
            "recovery",
            "overload",
            "low_confidence",
            "focus",
        ]


def test_condition_posted_to_the_vms_changes_the_desired_deployment_without_any_call(
    stack: Stack, tmp_path
):
    """The whole chain as processes: VMS -> POST /events -> optimizer decides -> setup."""
    sunny = stack.package("monitoring", "01", "01")
    rainy = stack.package("monitoring", "01", "02")
    e = stack.edge("E1", "0x01")
    d = stack.deploy(e, sunny)
    env = service_env(
        stack.db,
        EDGE_MIGRATE_ON_START="false",
        EDGE_SETUP_URL=stack.setup_url,
        EDGE_VMS_URL=stack.vms_url,
        OPTIMIZER_RESYNC_SECONDS="3600",
        OPTIMIZER_ENVIRONMENT__HYSTERESIS_SAMPLES="1",
    )
    proc = start_service("optimizer", env=env, port=stack.optimizer_port, tmp_path=tmp_path)
    try:
        base = f"http://127.0.0.1:{stack.optimizer_port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            httpx.get(f"{base}/control", headers=OPERATOR).json().get("last_cycle")
        ):
            time.sleep(0.05)  # the first resync runs at start
        stack.conditions("0x01", RAINY, 1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and stack.deployment(d["id"])["ai_id"] != rainy["id"]:
            time.sleep(0.05)
        assert stack.deployment(d["id"])["ai_id"] == rainy["id"], proc.log_text()[-3000:]
        last = httpx.get(f"{base}/control", headers=OPERATOR).json()["last_cycle"]
        assert last["trigger"] == "event" and last["scope"] == [e["id"]]
    finally:
        proc.stop()


def test_a_condition_that_holds_is_acted_on_without_waiting_for_the_resync(stack: Stack, tmp_path):
    """Hysteresis 3: the change event comes with the first sample; the optimizer wakes itself once
    three samples can have come, instead of waiting for the 30 s (here: 1 h) resync."""
    sunny = stack.package("monitoring", "01", "01")
    rainy = stack.package("monitoring", "01", "02")
    d = stack.deploy(stack.edge("E1", "0x01"), sunny)
    env = service_env(
        stack.db,
        EDGE_MIGRATE_ON_START="false",
        EDGE_SETUP_URL=stack.setup_url,
        EDGE_VMS_URL=stack.vms_url,
        OPTIMIZER_RESYNC_SECONDS="3600",
        OPTIMIZER_ENVIRONMENT__HYSTERESIS_SAMPLES="3",
    )
    proc = start_service("optimizer", env=env, port=stack.optimizer_port, tmp_path=tmp_path)
    try:
        base = f"http://127.0.0.1:{stack.optimizer_port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            httpx.get(f"{base}/control", headers=OPERATOR).json().get("last_cycle")
        ):
            time.sleep(0.05)  # the first resync runs at start
        stack.conditions("0x01", RAINY, 1)  # the change: an event, streak 1
        time.sleep(0.5)
        assert stack.deployment(d["id"])["ai_id"] == sunny["id"]  # hysteresis holds
        stack.conditions("0x01", RAINY, 2)  # streak 3, no new event
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and stack.deployment(d["id"])["ai_id"] != rainy["id"]:
            time.sleep(0.1)
        assert stack.deployment(d["id"])["ai_id"] == rainy["id"], proc.log_text()[-3000:]
    finally:
        proc.stop()


async def test_only_one_replica_acts_and_another_takes_over(stack: Stack):
    _sunny, rainy, _edges, deps = _weather_fleet(stack)
    common = dict(
        setup_url=stack.setup_url, vms_url=stack.vms_url, run_scheduler=False, lease_ttl_s=1.0
    )
    a = create_app(settings_for("optimizer", stack.db, replica_id="replica-a", **common))
    b = create_app(settings_for("optimizer", stack.db, replica_id="replica-b", **common))
    async with running_app(b) as cb:
        cb.headers.update(OPERATOR)
        async with running_app(a) as ca:
            ca.headers.update(OPERATOR)
            await opt_cycle(ca, expect_skip=None)
            assert (await cb.post("/cycle")).json()["skipped"] == "another replica leads"
            leader = (await cb.get("/control")).json()["leader"]
            assert leader["holder"] == "replica-a" and not leader["this_replica"]
            a.state.runner.lease.held = False  # replica a "dies": it never releases the lease
        assert (await cb.post("/cycle")).json()[
            "skipped"
        ] == "another replica leads"  # not expired yet
        await asyncio.sleep(1.1)  # lease_ttl_s
        await opt_cycle(cb, expect_skip=None)
        assert (await cb.get("/control")).json()["leader"]["holder"] == "replica-b"
    assert stack.deployment(deps[0]["id"])["ai_id"] == rainy["id"]


async def opt_cycle(client, expect_skip):
    r = await client.post("/cycle")
    assert r.status_code == 200 and r.json().get("skipped") == expect_skip, r.text
    return r.json()
