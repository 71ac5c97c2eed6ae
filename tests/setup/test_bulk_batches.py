"""POST /deployments/bulk written set-based (issue 24): operations see the ones before them in
the same batch as the one-by-one routes would, the first refusal names its operation and
writes nothing, and a batch of thousands of changes applies in one answer."""

from __future__ import annotations

from tests.helpers.env import OPERATOR, SERVICE
from tests.setup.test_packages_deployments import make_ai, make_edge


async def _bulk(client, ops: list[dict]):
    return await client.post("/deployments/bulk", json={"operations": ops}, headers=SERVICE)


async def _deployments(client, edge_id: int) -> list[dict]:
    r = await client.get("/deployments", params={"edge_id": edge_id}, headers=OPERATOR)
    return sorted(r.json()["items"], key=lambda d: d["id"])


async def test_operations_see_the_earlier_ones_of_their_batch(setup_client):
    e1 = await make_edge(setup_client, "0x01")
    sunny = await make_ai(setup_client, ai_class="01")
    rainy = await make_ai(setup_client, ai_class="02")
    weather = await make_ai(setup_client, filename="weatherai", ai_class="00")
    building = await make_ai(setup_client, filename="other", status="building")
    failed = await make_ai(setup_client, filename="broken", status="failed")

    # A second AI of the same filename on one edge, within one batch: refused, naming it.
    r = await _bulk(
        setup_client,
        [
            {"op": "create", "edge_id": e1["id"], "ai_id": sunny["id"]},
            {"op": "create", "edge_id": e1["id"], "ai_id": rainy["id"]},
        ],
    )
    assert r.status_code == 409, r.text
    assert r.json()["error"]["field"] == "operations[1].ai_id"
    assert "operations[1] (create)" in r.json()["error"]["message"]
    assert await _deployments(setup_client, e1["id"]) == []

    r = await _bulk(
        setup_client,
        [
            {"op": "create", "edge_id": e1["id"], "ai_id": sunny["id"], "decision_id": "a"},
            {"op": "create", "edge_id": e1["id"], "ai_id": weather["id"], "params": {"fps": 2}},
            {"op": "create", "edge_id": e1["id"], "ai_id": building["id"]},
            {"op": "create", "edge_id": e1["id"], "ai_id": sunny["id"], "allow_multiple": True},
        ],
    )
    assert r.status_code == 200, r.text
    ids = [res["id"] for res in r.json()["results"]]
    assert ids == sorted(ids) and [res["generation"] for res in r.json()["results"]] == [1] * 4
    first, second = ids[0], ids[1]

    # Remove then create the same filename: the removal frees it. An update may then switch
    # the new one's AI; the removed one can no longer be updated.
    r = await _bulk(
        setup_client,
        [
            {"op": "remove", "id": first, "decision_id": "r"},
            {"op": "create", "edge_id": e1["id"], "ai_id": rainy["id"]},
            {"op": "update", "id": second, "params": {"fps": 2}},  # unchanged: no new generation
            {"op": "update", "id": second, "params": {"fps": 5}, "expected_generation": 1},
            {"op": "remove", "id": first},  # removed already: nothing changes
        ],
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [res["generation"] for res in results] == [2, 1, 1, 2, 2]
    created = results[1]["id"]
    stored = {d["id"]: d for d in await _deployments(setup_client, e1["id"])}
    assert stored[first]["desired"] == "removed" and stored[first]["decision_id"] == "r"
    assert stored[created]["ai_id"] == rainy["id"] and stored[created]["desired"] == "running"
    assert stored[second]["params"] == {"fps": 5} and stored[second]["observed"] == "pending"

    for ops, status, field in (
        ([{"op": "update", "id": first, "params": {"x": 1}}], 409, "operations[0].id"),
        ([{"op": "update", "id": 999999, "params": {}}], 404, "operations[0].id"),
        ([{"op": "create", "edge_id": 999999, "ai_id": sunny["id"]}], 404, "operations[0].edge_id"),
        (
            [{"op": "create", "edge_id": e1["id"], "ai_id": failed["id"]}],
            422,
            "operations[0].ai_id",
        ),
        (
            [
                {"op": "edge_status", "edge_id": e1["id"], "status": "degraded"},
                {"op": "update", "id": second, "params": {"x": 1}, "expected_generation": 1},
            ],
            409,
            "operations[1].expected_generation",
        ),
    ):
        r = await _bulk(setup_client, ops)
        assert r.status_code == status and r.json()["error"]["field"] == field, r.text
    edge = (await setup_client.get(f"/edges/{e1['id']}", headers=OPERATOR)).json()
    assert edge["status"] == "active"  # the refused batch wrote nothing

    r = await _bulk(
        setup_client, [{"op": "edge_status", "edge_id": e1["id"], "status": "degraded"}]
    )
    assert r.status_code == 200 and r.json()["results"] == [
        {"index": 0, "op": "edge_status", "id": e1["id"], "generation": None}
    ]


async def test_thousands_of_changes_in_one_batch(setup_client):
    sunny = await make_ai(setup_client, ai_class="01")
    rainy = await make_ai(setup_client, ai_class="02")
    edges = [await make_edge(setup_client, f"0x{i:x}") for i in range(1, 21)]
    per_edge = 150  # 3,000 creates (allow_multiple: many per edge)
    ops = [
        {
            "op": "create",
            "edge_id": e["id"],
            "ai_id": sunny["id"],
            "allow_multiple": True,
            "params": {"n": n},
        }
        for e in edges
        for n in range(per_edge)
    ]
    r = await _bulk(setup_client, ops)
    assert r.status_code == 200, r.text
    ids = [res["id"] for res in r.json()["results"]]
    assert len(set(ids)) == len(ops)
    updates = [
        {"op": "update", "id": i, "ai_id": rainy["id"], "expected_generation": 1} for i in ids
    ]
    r = await _bulk(setup_client, updates)
    assert r.status_code == 200, r.text
    assert {res["generation"] for res in r.json()["results"]} == {2}
    r = await setup_client.get(
        "/deployments", params={"ai_id": rainy["id"], "limit": 1}, headers=OPERATOR
    )
    assert r.json()["total"] == len(ops)
    sample = (await setup_client.get(f"/deployments/{ids[-1]}", headers=OPERATOR)).json()
    assert sample["params"] == {"n": per_edge - 1} and sample["observed"] == "pending"
