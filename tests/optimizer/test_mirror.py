"""The optimizer's in-memory fleet mirror: incremental answers (``?since=``) folded into it give
the same state as a whole read, and whole-fleet cycles read incrementally between whole reads."""

from __future__ import annotations

import copy

from services.optimizer.model.state import FleetState
from shared.contracts.fleet import FLEET_SNAPSHOT
from tests.helpers.env import OPERATOR
from tests.optimizer.conftest import Stack, cycle, optimizer
from tests.optimizer.fleet import NOW, Fleet

RAINY = "2"


def view(state: FleetState) -> dict:
    """Everything the policies read, orders included."""
    return {
        "edges": [(k, e) for k, e in state.edges.items()],
        "edges_by_nid": sorted((k, e.id) for k, e in state.edges_by_nid.items()),
        "packages": list(state.packages.items()),
        "deployments": list(state.deployments.items()),
        "by_edge": sorted((k, [d.id for d in v]) for k, v in state.by_edge.items() if v),
        "nodes": sorted(state.nodes.items()),
        "ai_classes": state.ai_classes,
        "variants": state.variants,
        "classes_of": state.classes_of,
        "newest": state.newest,
        "grid": sorted(state.grid.within(37.5, 127.0, 50)),
    }


def test_changes_folded_into_the_mirror_equal_a_whole_read():
    f = Fleet()
    sunny, rainy, weather = (
        f.package("monitoring", "01", "01"),
        f.package("monitoring", "01", "02"),
        f.package("weatherai", "01", "00"),
    )
    edges = [f.edge(f"E{i}", lat=37.5 + i / 100) for i in range(6)]
    deps = {e["id"]: [f.deploy(e, sunny), f.deploy(e, weather)] for e in edges}
    mirror = FleetState.from_wire(copy.deepcopy(f.snapshot()), copy.deepcopy(f.node_list()))

    # What changes between two reads: a deployment switched, one removed (seen gone), one removed
    # (not yet seen gone), one created; an edge moved, one deleted, one added; a package removed,
    # one added; two nodes' state.
    changed_deps, changed_edges, changed_pkgs, changed_nodes = [], [], [], []
    d = deps[edges[0]["id"]][0]
    d.update(ai_id=rainy["id"], generation=2)
    changed_deps.append(d)
    d = deps[edges[1]["id"]][1]
    d.update(desired="removed", observed="removed")
    changed_deps.append(d)
    d = deps[edges[2]["id"]][1]
    d.update(desired="removed")
    changed_deps.append(d)
    changed_deps.append(f.deploy(edges[3], rainy, params={"analysis_for": edges[4]["nid"]}))
    edges[3].update(latitude=38.0)
    changed_edges.append(edges[3])
    changed_edges.append(
        f.edge("E-new", lat=37.51)
    )  # before the deletion: the builder numbers by count
    changed_deps.append(f.deploy(changed_edges[-1], sunny))
    gone = edges.pop(5)
    f.edges.remove(gone)
    f.deployments[:] = [x for x in f.deployments if x["edge_id"] != gone["id"]]
    old = f.packages[2]
    old["status"] = "removed"
    changed_pkgs.append(old)
    changed_pkgs.append(f.package("monitoring", "02", "02"))
    for nid in (edges[0]["nid"], changed_edges[-1]["nid"]):
        f.nodes[nid].update(condition="RAINY", streak=7, cpu_avg=91.0)
        changed_nodes.append(f.node_state(nid))

    delta = FLEET_SNAPSHOT.validate_python(
        {
            "edges": changed_edges,
            "ai_packages": changed_pkgs,
            "deployments": changed_deps,
            "edge_ids": [e["id"] for e in f.edges],
            "conditions": f.snapshot()["conditions"],
            "generated_at": NOW.isoformat(),
        }
    )
    counts = mirror.apply_changes(copy.deepcopy(delta), copy.deepcopy(changed_nodes))
    assert counts["edges_dropped"] == 1 and counts["deployments"] == len(changed_deps)

    # A whole read: what setup lists (removed packages and deployments seen gone are left out).
    whole = f.snapshot()
    whole = {
        **whole,
        "ai_packages": [p for p in whole["ai_packages"] if p["status"] != "removed"],
        "deployments": [
            x
            for x in whole["deployments"]
            if x["desired"] == "running" or x["observed"] != "removed"
        ],
    }
    fresh = FleetState.from_wire(copy.deepcopy(whole), copy.deepcopy(f.node_list()))
    assert view(mirror) == view(fresh)
    assert gone["id"] not in mirror.edges and gone["nid"] not in mirror.edges_by_nid


async def test_resyncs_read_incrementally_between_whole_reads(stack: Stack):
    sunny = stack.package("monitoring", "01", "01")
    rainy = stack.package("monitoring", "01", "02")
    e1 = stack.edge("E1", "0x01")
    d1 = stack.deploy(e1, sunny)
    async with optimizer(stack, environment={"hysteresis_samples": 1}, full_refresh_every=3) as opt:
        first = await cycle(opt)
        assert (
            first["refresh"]["kind"] == "full" and first["edges"] == 1 and first["operations"] == 0
        )

        # Changes in both sources reach the mirror through ?since=: a new edge, its deployment,
        # its condition.
        e2 = stack.edge("E2", "0x02")
        d2 = stack.deploy(e2, sunny)
        stack.conditions("0x02", RAINY, 1)
        second = await cycle(opt)
        assert second["refresh"]["kind"] == "incremental" and second["edges"] == 2
        assert (
            second["refresh"]["edges"] >= 1 and second["refresh"]["nodes"] >= 1
        )  # (and the overlap's rows)
        assert stack.deployment(d2["id"])["ai_id"] == rainy["id"]
        assert stack.deployment(d1["id"])["ai_id"] == sunny["id"]

        # A deleted edge leaves the mirror at the next incremental read.
        assert stack.setup.delete(f"/deployments/{d2['id']}").status_code == 200
        r = stack.setup.delete(f"/edges/{e2['id']}", headers=OPERATOR)  # an operator change
        assert r.status_code == 204, r.text
        third = await cycle(opt)
        assert third["refresh"]["kind"] == "incremental" and third["edges"] == 1

        fourth = await cycle(opt)  # every 3rd read is whole
        assert (
            fourth["refresh"]["kind"] == "full"
            and fourth["edges"] == 1
            and fourth["operations"] == 0
        )
