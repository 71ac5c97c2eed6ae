"""The contracts of shared.contracts against the services that produce them: real answers of a
running setup and VMS (real Postgres) parse with the models, strictly, so that drift on either
side fails here; and the optimizer reads them into the values its policies use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from services.optimizer.model.state import FleetState, node_from_wire
from services.optimizer.sources.clients import SetupClient
from shared.contracts.decisions import BulkResult, CreateOp, EdgeStatusOp, RemoveOp, UpdateOp
from shared.contracts.events import Event, EventType
from shared.contracts.fleet import (
    FLEET_SNAPSHOT,
    DesiredState,
    EdgeStatus,
    ObservedState,
    PackageStatus,
)
from shared.contracts.nodes import NODE_STATES
from tests.helpers.env import OPERATOR, settings_for
from tests.optimizer.conftest import Stack
from tests.vms.conftest import field_date_time, vms
from tests.vms.test_ingest_ours import summary
from tests.vms.test_notify_and_limits import _wait_for, event_receiver


def test_fleet_snapshot_of_setup_parses_whole_by_edge_and_since(stack: Stack):
    sunny = stack.package("monitoring", "01", "01")
    stack.package("monitoring", "02", "01", ready=False)
    e1, e2 = stack.edge("E1", "0x01"), stack.edge("E2", "0x02", analysis=False)
    d1 = stack.deploy(e1, sunny, params={"fps": 5})
    stack.observe(d1, "failed", restarts=2, reason="oom")
    d2 = stack.deploy(e2, sunny)

    r = stack.setup.get("/fleet/snapshot")
    assert r.status_code == 200, r.text
    snap = FLEET_SNAPSHOT.validate_json(r.content, strict=True)
    assert "edge_ids" not in snap
    edges = {e["id"]: e for e in snap["edges"]}
    assert edges[e1["id"]]["nid"] == "0x01" and edges[e1["id"]]["status"] is EdgeStatus.ACTIVE
    assert edges[e2["id"]]["supports_analysis"] is False and edges[e1["id"]]["latitude"] == 37.57
    assert {p["status"] for p in snap["ai_packages"]} == {
        PackageStatus.READY,
        PackageStatus.UPLOADED,
    }
    deps = {d["id"]: d for d in snap["deployments"]}
    failed = deps[d1["id"]]
    assert failed["observed"] is ObservedState.FAILED and failed["observed_reason"] == "oom"
    assert failed["restarts"] == 2 and failed["params"] == {"fps": 5}
    assert (
        failed["desired"] is DesiredState.RUNNING
        and failed["observed_generation"] == failed["generation"]
    )

    # The optimizer reads the raw answer (orjson, no validation) into the same values.
    state = FleetState.from_wire(r.json(), [])
    assert state.deployments[d1["id"]].observed == ObservedState.FAILED
    assert state.edges[e2["id"]].supports_analysis is False and set(state.newest) == {"monitoring"}

    by_edge = FLEET_SNAPSHOT.validate_json(
        stack.setup.get("/fleet/snapshot", params={"edge_ids": str(e2["id"])}).content, strict=True
    )
    assert [e["id"] for e in by_edge["edges"]] == [e2["id"]]
    assert [d["id"] for d in by_edge["deployments"]] == [d2["id"]]

    since = datetime.fromisoformat(snap["generated_at"]) - timedelta(seconds=5)
    assert stack.setup.delete(f"/deployments/{d2['id']}").status_code == 200
    changed = FLEET_SNAPSHOT.validate_json(
        stack.setup.get("/fleet/snapshot", params={"since": since.isoformat()}).content, strict=True
    )
    assert sorted(changed["edge_ids"]) == sorted([e1["id"], e2["id"]])
    removed = next(d for d in changed["deployments"] if d["id"] == d2["id"])
    assert removed["desired"] is DesiredState.REMOVED


def test_node_states_of_the_vms_parse_and_read_as_the_policies_need(stack: Stack):
    stack.edge("E1", "0x01")
    stack.edge("E2", "0x02")
    stack.usage("0x01", cpu=90.0, memory=40.0, samples=3)
    stack.detections("0x01", detected=4, below=6, frames=10, sent_up=6)
    stack.conditions("0x01", "2", 2)

    with httpx.Client(base_url=stack.vms_url, headers=OPERATOR, timeout=30) as c:
        whole = c.get("/nodes/state")
        quiet = c.get("/nodes/state", params={"include_silent": "false", "nids": "0x01"})
    answer = NODE_STATES.validate_json(whole.content, strict=True)
    assert answer["conditions"]["2"] == "RAINY"
    items = {n["nid"]: n for n in answer["items"]}
    silent = items["0x02"]  # registered, never reported
    assert silent["usage"] is None and silent["detections"] is None and silent["stale"] is True

    [raw] = quiet.json()["items"]
    node = node_from_wire(raw)
    assert node.condition == "RAINY" and node.streak == 2 and not node.stale
    assert node.cpu_avg is not None and 80 < node.cpu_avg <= 90 and node.memory_avg == 40.0
    assert node.low_confidence_share is not None and node.low_confidence_share > 0
    assert node.frames_sent_up_share == 0.6 and node.last_seen is not None


async def test_bulk_operations_of_the_optimizer_are_what_setup_takes(stack: Stack):
    sunny, rainy = stack.package("monitoring", "01", "01"), stack.package("monitoring", "01", "02")
    e1, e2 = stack.edge("E1", "0x01"), stack.edge("E2", "0x02")
    d1, d2 = stack.deploy(e1, sunny), stack.deploy(e2, sunny)
    client = SetupClient(settings_for("optimizer", stack.db, setup_url=stack.setup_url))
    try:
        results = await client.bulk(
            [
                RemoveOp(op="remove", id=d2["id"], decision_id="r1"),
                UpdateOp(
                    op="update",
                    id=d1["id"],
                    ai_id=rainy["id"],
                    params={"analysis_route": "server"},
                    redeploy=True,
                    expected_generation=d1["generation"],
                    decision_id="u1",
                ),
                CreateOp(
                    op="create",
                    edge_id=e2["id"],
                    ai_id=rainy["id"],
                    params={"analysis_for": "0x01"},
                    allow_multiple=True,
                    decision_id="c1",
                ),
                EdgeStatusOp(op="edge_status", edge_id=e2["id"], status=EdgeStatus.DEGRADED),
            ]
        )
    finally:
        await client.aclose()
    assert [(r.index, r.op) for r in results] == [
        (0, "remove"),
        (1, "update"),
        (2, "create"),
        (3, "edge_status"),
    ]
    assert all(isinstance(r, BulkResult) for r in results)
    assert results[1].generation == d1["generation"] + 1
    updated = stack.deployment(d1["id"])
    assert updated["ai_id"] == rainy["id"] and updated["decision_id"] == "u1"
    assert (
        updated["params"] == {"analysis_route": "server"} and updated["requested_by"] == "optimizer"
    )
    created = stack.deployment(results[2].id)
    assert created["allow_multiple"] is True and created["decision_id"] == "c1"
    assert stack.deployment(d2["id"])["desired"] == "removed"
    assert stack.edge_row(e2)["status"] == "degraded"

    # A redeploy alone: a new generation, nothing else changed.
    client = SetupClient(settings_for("optimizer", stack.db, setup_url=stack.setup_url))
    try:
        [again] = await client.bulk(
            [
                UpdateOp(
                    op="update",
                    id=d1["id"],
                    redeploy=True,
                    expected_generation=updated["generation"],
                )
            ]
        )
    finally:
        await client.aclose()
    assert again.generation == updated["generation"] + 1
    assert stack.deployment(d1["id"])["ai_id"] == rainy["id"]


async def test_events_the_vms_pushes_parse_as_the_optimizer_takes_them(db: str):
    async with (
        event_receiver() as (url, received),
        vms(
            db,
            unknown_nodes="flag",
            notify_optimizer=True,
            optimizer_url=url,
            event_classes="person",
            low_confidence_share=0.3,
            low_confidence_alpha=0.5,
        ) as client,
    ):
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
        for i, result in enumerate(["0", "2"]):
            date, time = field_date_time(base + timedelta(seconds=i))
            body = {"nid": "0x01", "date": date, "time": time, "result": result}
            assert (
                await client.post("/save_edgeData", json=body, headers=OPERATOR)
            ).status_code == 200
        calm = summary(base, below_threshold=0, counts={"car": 1})
        assert (await client.post("/detections", json=calm, headers=OPERATOR)).status_code == 200
        unsure = summary(
            base + timedelta(seconds=1),
            below_threshold=30,
            counts={"person": 1},
            detections=[{"class": "person", "confidence": 0.6, "box": [0, 0, 1, 1]}],
        )
        assert (await client.post("/detections", json=unsure, headers=OPERATOR)).status_code == 200
        await _wait_for(
            lambda: (
                {e["type"] for e in received}
                >= {"condition_changed", "detection", "low_confidence"}
            )
        )
    events = [Event.model_validate(e) for e in received]
    by_type = {e.type: e for e in events}
    changed = by_type[EventType.CONDITION_CHANGED]
    assert (
        changed.nid == "0x01" and changed.condition in ("SUNNY", "RAINY") and changed.at is not None
    )
    assert by_type[EventType.DETECTION].counts == {"person": 1}
    low = by_type[EventType.LOW_CONFIDENCE]
    assert low.share is not None and low.threshold == 0.3 and low.share >= low.threshold
