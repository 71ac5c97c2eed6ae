"""AI packages, deployments, the bulk route, observed state, the condition mapping and the
snapshot."""

from __future__ import annotations

from tests.helpers.env import OPERATOR, SERVICE
from tests.setup.test_registry import FIELD_EDGE


async def make_edge(client, nid, name=None, cluster_id=None):
    body = {**FIELD_EDGE, "name": name or f"edge-{nid}", "nid": nid}
    if cluster_id:
        body["cluster_id"] = cluster_id
    r = await client.post("/edges", json=body, headers=OPERATOR)
    assert r.status_code == 201, r.text
    return r.json()


async def make_ai(
    client, filename="monitoring", version="01", ai_class="01", condition=None, status="ready"
):
    r = await client.post(
        "/ai-packages",
        json={
            "filename": filename,
            "version": version,
            "ai_class": ai_class,
            "condition": condition,
        },
        headers=OPERATOR,
    )
    assert r.status_code == 201, r.text
    ai = r.json()
    if status != "uploaded":
        r = await client.patch(f"/ai-packages/{ai['id']}", json={"status": status}, headers=SERVICE)
        assert r.status_code == 200, r.text
        ai = r.json()
    return ai


async def test_versions_compare_as_versions_and_are_unique(setup_client):
    for v in ("10", "02", "01", "1.5"):
        await make_ai(setup_client, version=v)
    r = await setup_client.get("/ai-packages", params={"filename": "monitoring"}, headers=OPERATOR)
    assert [a["version"] for a in r.json()["items"]] == ["10", "02", "1.5", "01"]
    # "1" is the same version as "01".
    r = await setup_client.post(
        "/ai-packages",
        json={"filename": "monitoring", "version": "1", "ai_class": "01"},
        headers=OPERATOR,
    )
    assert r.status_code == 409 and r.json()["error"]["field"] == "version"
    for bad, field in (
        ({"version": "v1.beta"}, "version"),
        ({"ai_class": "1"}, "ai_class"),
        ({"filename": "Bad Name"}, "filename"),
    ):
        body = {"filename": "x", "version": "01", "ai_class": "01", **bad}
        r = await setup_client.post("/ai-packages", json=body, headers=OPERATOR)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text


async def test_deployment_lifecycle_one_filename_per_edge(setup_client):
    edge = await make_edge(setup_client, "0x01")
    sunny = await make_ai(setup_client, ai_class="01", condition="SUNNY")
    rainy = await make_ai(setup_client, ai_class="02", condition="RAINY")
    r = await setup_client.post(
        "/deployments", json={"edge_id": edge["id"], "ai_id": sunny["id"]}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    dep = r.json()
    assert (
        dep["desired"] == "running"
        and dep["observed"] == "pending"
        and dep["requested_by"] == "operator"
    )
    # A second AI of the same filename on the edge is refused unless asked for.
    r = await setup_client.post(
        "/deployments", json={"edge_id": edge["id"], "ai_id": rainy["id"]}, headers=OPERATOR
    )
    assert r.status_code == 409 and r.json()["error"]["field"] == "ai_id"
    r = await setup_client.post(
        "/deployments",
        json={"edge_id": edge["id"], "ai_id": rainy["id"], "allow_multiple": True},
        headers=OPERATOR,
    )
    assert r.status_code == 201
    # Swap the variant: generation bumps.
    r = await setup_client.patch(
        f"/deployments/{dep['id']}", json={"ai_id": rainy["id"]}, headers=OPERATOR
    )
    assert r.json()["generation"] == 2 and r.json()["ai_id"] == rainy["id"]
    # The master reports; only services may.
    report = {"reports": [{"id": dep["id"], "observed": "running", "generation": 2, "restarts": 1}]}
    assert (
        await setup_client.post("/deployments/observed", json=report, headers=OPERATOR)
    ).status_code == 403
    assert (
        await setup_client.post("/deployments/observed", json=report, headers=SERVICE)
    ).status_code == 200
    got = (await setup_client.get(f"/deployments/{dep['id']}", headers=OPERATOR)).json()
    assert got["observed"] == "running" and got["observed_generation"] == 2 and got["restarts"] == 1
    # Removing the AI while deployed is refused; undeploy first.
    assert (
        await setup_client.delete(f"/ai-packages/{rainy['id']}", headers=OPERATOR)
    ).status_code == 409
    r = await setup_client.delete(f"/deployments/{dep['id']}", headers=OPERATOR)
    assert r.json()["desired"] == "removed"
    r = await setup_client.get("/deployments", params={"desired": "running"}, headers=OPERATOR)
    assert r.json()["total"] == 1


async def test_deploy_refuses_unknown_ids_and_failed_ai(setup_client):
    edge = await make_edge(setup_client, "0x01")
    failed = await make_ai(setup_client, status="failed")
    r = await setup_client.post(
        "/deployments", json={"edge_id": 999, "ai_id": failed["id"]}, headers=OPERATOR
    )
    assert r.status_code == 404 and r.json()["error"]["field"] == "edge_id"
    r = await setup_client.post(
        "/deployments", json={"edge_id": edge["id"], "ai_id": 999}, headers=OPERATOR
    )
    assert r.status_code == 404 and r.json()["error"]["field"] == "ai_id"
    r = await setup_client.post(
        "/deployments", json={"edge_id": edge["id"], "ai_id": failed["id"]}, headers=OPERATOR
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "ai_id"


async def test_bulk_is_all_or_nothing(setup_client):
    e1 = await make_edge(setup_client, "0x01")
    e2 = await make_edge(setup_client, "0x02")
    ai = await make_ai(setup_client)
    good = {"op": "create", "edge_id": e1["id"], "ai_id": ai["id"], "decision_id": "d-1"}
    bad = {"op": "create", "edge_id": e2["id"], "ai_id": 4242}
    r = await setup_client.post(
        "/deployments/bulk", json={"operations": [good, bad]}, headers=SERVICE
    )
    assert r.status_code == 404, r.text
    assert r.json()["error"]["field"] == "operations[1].ai_id"
    assert (await setup_client.get("/deployments", headers=OPERATOR)).json()["total"] == 0

    ops = [
        good,
        {"op": "create", "edge_id": e2["id"], "ai_id": ai["id"]},
        {"op": "edge_status", "edge_id": e2["id"], "status": "degraded"},
    ]
    r = await setup_client.post("/deployments/bulk", json={"operations": ops}, headers=SERVICE)
    assert r.status_code == 200, r.text
    first = r.json()["results"][0]
    r = await setup_client.post(
        "/deployments/bulk",
        json={
            "operations": [
                {
                    "op": "update",
                    "id": first["id"],
                    "params": {"focus": True},
                    "expected_generation": 7,
                }
            ]
        },
        headers=SERVICE,
    )
    assert (
        r.status_code == 409 and r.json()["error"]["field"] == "operations[0].expected_generation"
    )
    r = await setup_client.post(
        "/deployments/bulk",
        json={"operations": [{"op": "update", "id": first["id"], "redeploy": True}]},
        headers=SERVICE,
    )
    assert r.json()["results"][0]["generation"] == 2

    snap = (await setup_client.get("/fleet/snapshot", headers=SERVICE)).json()
    assert {e["nid"]: e["status"] for e in snap["edges"]} == {"0x01": "active", "0x02": "degraded"}
    assert len(snap["deployments"]) == 2 and snap["deployments"][0]["decision_id"] is None
    assert snap["ai_packages"][0]["version_key"] and snap["conditions"]["codes"]["2"] == "RAINY"


async def test_condition_mapping_default_and_edit(setup_client):
    default = (await setup_client.get("/conditions", headers=OPERATOR)).json()
    assert default["codes"]["0"] == "SUNNY" and default["ai_classes"]["RAINY"] == "02"
    try:
        new = {"codes": {"0": "SUNNY", "7": "RAINY"}, "ai_classes": {"SUNNY": "01", "RAINY": "02"}}
        assert (
            await setup_client.put("/conditions", json=new, headers=OPERATOR)
        ).status_code == 200
        assert (await setup_client.get("/conditions", headers=OPERATOR)).json() == new
        r = await setup_client.put(
            "/conditions", json={"codes": {"0": "sunny"}, "ai_classes": {}}, headers=OPERATOR
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "codes"
        assert (await setup_client.get("/conditions", headers=OPERATOR)).json() == new
    finally:
        await setup_client.put("/conditions", json=default, headers=OPERATOR)


async def test_snapshot_filters_by_edges_and_returns_changes_since(setup_client):
    e1 = await make_edge(setup_client, "0x01")
    e2 = await make_edge(setup_client, "0x02")
    ai = await make_ai(setup_client)
    d1 = (
        await setup_client.post(
            "/deployments", json={"edge_id": e1["id"], "ai_id": ai["id"]}, headers=OPERATOR
        )
    ).json()
    await setup_client.post(
        "/deployments", json={"edge_id": e2["id"], "ai_id": ai["id"]}, headers=OPERATOR
    )

    only = (
        await setup_client.get(
            "/fleet/snapshot", params={"edge_ids": str(e2["id"])}, headers=SERVICE
        )
    ).json()
    assert [e["nid"] for e in only["edges"]] == ["0x02"]
    assert [d["edge_id"] for d in only["deployments"]] == [e2["id"]]
    r = await setup_client.get("/fleet/snapshot", params={"edge_ids": "1,x"}, headers=SERVICE)
    assert r.status_code == 422 and r.json()["error"]["field"] == "edge_ids"

    full = (await setup_client.get("/fleet/snapshot", headers=SERVICE)).json()
    mark = full["generated_at"]
    nothing = (
        await setup_client.get("/fleet/snapshot", params={"since": mark}, headers=SERVICE)
    ).json()
    assert nothing["edges"] == [] and nothing["deployments"] == [] and nothing["ai_packages"] == []
    assert nothing["edge_ids"] == [e1["id"], e2["id"]]

    await setup_client.delete(f"/deployments/{d1['id']}", headers=OPERATOR)
    await setup_client.delete(f"/edges/{e2['id']}", headers=OPERATOR)
    changed = (
        await setup_client.get("/fleet/snapshot", params={"since": mark}, headers=SERVICE)
    ).json()
    assert [(d["id"], d["desired"]) for d in changed["deployments"]] == [(d1["id"], "removed")]
    assert changed["edge_ids"] == [e1["id"]]  # e2 is gone: a mirror drops it
    r = await setup_client.get(
        "/fleet/snapshot", params={"since": "2026-01-01T00:00:00"}, headers=SERVICE
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "since"
