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
        assert decision["inputs"]["from_ai_class"] == "01" and decision["inputs"]["to_ai_class"] == "02"
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
