"""The optimizer reads setup's snapshot and the VMS's node states in the Arrow form (issue 24):
against the running services, the Arrow answers hold what the JSON ones hold, whole and
``since=``, the mirror built from either is the same, the policies decide the same over both,
and an optimizer reading Arrow acts on the fleet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

from services.optimizer.engine.cycle import decide
from services.optimizer.model.config import PoliciesConfig
from services.optimizer.model.context import CycleInput
from services.optimizer.model.state import FleetState
from services.optimizer.sources.clients import SetupClient, VmsClient
from shared.contracts import columnar
from tests.helpers.env import OPERATOR, settings_for
from tests.optimizer.conftest import Stack, cycle, optimizer


def _fleet(stack: Stack) -> dict:
    sunny = stack.package("monitoring", "01", "01")
    rainy = stack.package("monitoring", "01", "02")
    stack.package("monitoring", "02", "01", ready=False)
    weather = stack.package("weatherai", "01", "00")
    e1, e2 = stack.edge("E1", "0x01"), stack.edge("E2", "0x02", analysis=False, lat=37.6)
    e3 = stack.edge("E3", "0x03")  # registered, never reports
    d1 = stack.deploy(e1, sunny, params={"fps": 5})
    stack.deploy(e1, weather)
    d2 = stack.deploy(e2, rainy)
    stack.deploy(e3, sunny)
    stack.observe(d1, "running")
    stack.observe(d2, "failed", restarts=2, reason="oom")
    stack.conditions("0x01", "2", 5)  # E1 turned RAINY: its monitoring AI must follow
    stack.usage("0x01", cpu=30.0, memory=40.0, samples=2)
    stack.detections("0x01", detected=4, below=1, frames=10, sent_up=6)
    stack.usage("0x02", cpu=95.0, memory=80.0, samples=3)
    return {"d1": d1, "sunny": sunny, "rainy": rainy, "e1": e1}


async def _read(stack: Stack, form: str, since: tuple[datetime, datetime] | None = None):
    settings = settings_for(
        "optimizer",
        stack.db,
        setup_url=stack.setup_url,
        vms_url=stack.vms_url,
        source_format=form,
    )
    setup, vms = SetupClient(settings), VmsClient(settings)
    try:
        if since is None:
            return await setup.snapshot(), await vms.state()
        return await setup.snapshot(since=since[0]), await vms.state(since=since[1])
    finally:
        await setup.aclose()
        await vms.aclose()


def _same(a: FleetState, b: FleetState) -> None:
    assert list(a.edges.items()) == list(b.edges.items())
    assert list(a.packages.items()) == list(b.packages.items())
    assert list(a.deployments.items()) == list(b.deployments.items())
    assert a.by_edge == b.by_edge and a.variants == b.variants and a.newest == b.newest
    assert a.nodes == b.nodes and a.ai_classes == b.ai_classes
    assert a.silent_clusters == b.silent_clusters


def _same_columns(a: FleetState, b: FleetState) -> None:
    """The mirrors' columns hold the same values (codes compared as the words they stand for)."""
    ca, cb = a.columns, b.columns
    for table_a, table_b in ((ca.edges, cb.edges), (ca.deployments, cb.deployments)):
        assert table_a.rows == table_b.rows and table_a.size == table_b.size
        for name in table_a.cols:
            if name in ("condition", "filename", "revision"):
                continue
            assert np.array_equal(table_a[name], table_b[name], equal_nan=True), name
    for name, vocab_a, vocab_b in (
        ("condition", ca.conditions, cb.conditions),
        ("filename", ca.filenames, cb.filenames),
    ):
        table_a, table_b = (
            (ca.edges, cb.edges)
            if name == "condition"
            else (
                ca.deployments,
                cb.deployments,
            )
        )
        words_a, words_b = {v: k for k, v in vocab_a.items()}, {v: k for k, v in vocab_b.items()}
        assert [words_a.get(c) for c in table_a[name].tolist()] == [
            words_b.get(c) for c in table_b[name].tolist()
        ]
    assert ca.with_params == cb.with_params


async def test_arrow_answers_read_and_decide_as_the_json_ones(stack: Stack):
    f = _fleet(stack)

    # The services answer Arrow when asked, JSON otherwise.
    arrow = {"Accept": columnar.ARROW_STREAM, **OPERATOR}
    r = stack.setup.get("/fleet/snapshot", headers=arrow)
    assert r.status_code == 200 and r.headers["content-type"] == columnar.ARROW_STREAM
    tables, meta = columnar.decode(r.content)
    assert set(tables) == {"edges", "ai_packages", "deployments"}
    assert tables["deployments"].schema.field("observed_at").type == pa.timestamp("us", tz="UTC")
    assert meta["conditions"]["codes"]["2"] == "RAINY" and meta["generated_at"]
    with httpx.Client(base_url=stack.vms_url, timeout=30) as vms:
        r = vms.get("/nodes/state", headers=arrow)
        assert r.status_code == 200 and r.headers["content-type"] == columnar.ARROW_STREAM
        assert (
            vms.get("/nodes/state", headers=OPERATOR)
            .headers["content-type"]
            .startswith("application/json")
        )
        # Only the columns asked for (the optimizer asks for those it reads); an unknown one is
        # refused.
        r = vms.get("/nodes/state", headers=arrow, params={"columns": "stale,nid"})
        assert columnar.decode(r.content)[0]["nodes"].column_names == ["nid", "stale"]
        r_bad = vms.get("/nodes/state", headers=arrow, params={"columns": "nid,nope"})
        assert r_bad.status_code == 422 and "nope" in r_bad.text
        r = vms.get("/nodes/state", headers=arrow)
    few, _ = columnar.decode(
        stack.setup.get(
            "/fleet/snapshot", headers=arrow, params={"columns": "nid,id,restarts"}
        ).content
    )
    assert {name: t.column_names for name, t in few.items()} == {
        "edges": ["id", "nid"],
        "ai_packages": ["id"],
        "deployments": ["id", "restarts"],
    }
    assert few["deployments"].num_rows == tables["deployments"].num_rows
    r_bad = stack.setup.get("/fleet/snapshot", headers=arrow, params={"columns": "capacity"})
    assert r_bad.status_code == 422
    nodes, _ = columnar.decode(r.content)
    rows = {row["nid"]: row for row in nodes["nodes"].to_pylist()}
    assert rows["0x03"]["stale"] is True and rows["0x03"]["usage_at"] is None  # silent
    assert rows["0x01"]["frames"] == 10 and rows["0x01"]["condition"] == "RAINY"

    # The mirror from either form is the same, and so is what the policies decide over it.
    (a_fleet, a_nodes), (j_fleet, j_nodes) = await _read(stack, "arrow"), await _read(stack, "json")
    a_state, j_state = (
        FleetState.from_read(a_fleet, a_nodes),
        FleetState.from_read(j_fleet, j_nodes),
    )
    _same(a_state, j_state)
    # The Arrow read fills the columns from its arrays, the JSON one from the objects.
    assert a_fleet.deployment_arrays is not None and a_nodes.arrays is not None
    assert j_fleet.deployment_arrays is None
    _same_columns(a_state, j_state)
    assert a_state.nodes["0x01"].frames_sent_up_share == 0.6
    assert a_state.deployments[f["d1"]["id"]].params == {"fps": 5}
    now = datetime.now(UTC)
    a_result = decide(CycleInput(state=a_state, config=_policies(), now=now))
    j_result = decide(CycleInput(state=j_state, config=_policies(), now=now))
    assert a_result.operations, "the RAINY edge's monitoring AI is to be switched"
    assert _ops(a_result.wire_operations()) == _ops(j_result.wire_operations())

    # A since= read in either form brings the same changes into the mirror.
    marks = (a_fleet.generated_at, a_nodes.generated_at)
    assert marks[0] is not None and marks[1] is not None
    since = (marks[0] - timedelta(seconds=5), marks[1] - timedelta(seconds=5))
    stack.setup.delete(f"/deployments/{f['d1']['id']}", headers=OPERATOR)
    stack.usage("0x02", cpu=10.0, memory=10.0)
    a_delta, j_delta = await _read(stack, "arrow", since), await _read(stack, "json", since)
    assert a_delta[0].edge_ids == j_delta[0].edge_ids and a_delta[0].edge_ids
    assert a_state.apply_read(*a_delta) == j_state.apply_read(*j_delta)
    _same(a_state, j_state)
    assert f["d1"]["id"] not in a_state.deployments or (
        a_state.deployments[f["d1"]["id"]].desired == "removed"
    )


async def test_an_optimizer_reading_arrow_acts_on_the_fleet(stack: Stack):
    f = _fleet(stack)
    async with optimizer(stack, environment={"hysteresis_samples": 3}) as client:
        summary = await cycle(client)
    assert summary["refresh"]["kind"] == "full" and summary["operations"] >= 1
    assert stack.deployment(f["d1"]["id"])["ai_id"] == f["rainy"]["id"]


def _policies() -> PoliciesConfig:
    return PoliciesConfig().merged({"environment": {"hysteresis_samples": 3}})


def _ops(wire: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operations less their decision ids (new ones in every cycle)."""
    return [{k: v for k, v in op.items() if k != "decision_id"} for op in wire]
