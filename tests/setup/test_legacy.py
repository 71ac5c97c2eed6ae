"""The field's /request_* routes: form fields or JSON in, {"code": "0000"} envelope out."""
from __future__ import annotations

from tests.helpers.env import OPERATOR, SERVICE
from tests.setup.test_packages_deployments import make_edge


async def test_field_flow_upload_deploy_undeploy_remove(setup_client):
    e1 = await make_edge(setup_client, "0x01")
    # Form fields, as the field's scripts send them.
    r = await setup_client.post(
        "/request_upload_edgeAi", data={"filename": "monitoring", "version": "01", "ai_class": "01"}, headers=OPERATOR
    )
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    aid = r.json()["aid"]
    r = await setup_client.get("/get_uploadedAiInfo", params={"id": aid}, headers=OPERATOR)
    assert r.json()["code"] == "0000" and r.json()["filename"] == "monitoring" and r.json()["version"] == "01"

    r = await setup_client.post("/request_deploy_aiToDevice", json={"aid": aid}, headers=OPERATOR)
    assert r.json()["code"] == "0000" and len(r.json()["deployments"]) == 1
    deps = (await setup_client.get("/deployments", params={"edge_id": e1["id"]}, headers=OPERATOR)).json()["items"]
    assert deps[0]["ai_id"] == aid and deps[0]["desired"] == "running"

    # A newer variant deployed the field's way replaces the running one of the same filename.
    r = await setup_client.post("/request_upload_edgeAi", json={"filename": "monitoring", "version": "01", "ai_class": "02"}, headers=OPERATOR)
    rainy = r.json()["aid"]
    r = await setup_client.post("/request_deploy_aiToDevice", json={"aid": rainy, "edge": "0x01"}, headers=OPERATOR)
    assert r.json()["code"] == "0000"
    dep = (await setup_client.get(f"/deployments/{deps[0]['id']}", headers=OPERATOR)).json()
    assert dep["ai_id"] == rainy and dep["generation"] == 2

    r = await setup_client.post("/request_undeploy_aiFromDevice", data={"aid": str(rainy)}, headers=OPERATOR)
    assert r.json()["code"] == "0000" and r.json()["deployments"] == [dep["id"]]
    r = await setup_client.post("/request_remove_edgeAi", json={"aid": rainy}, headers=OPERATOR)
    assert r.json()["code"] == "0000"
    r = await setup_client.get(f"/ai-packages/{rainy}", headers=SERVICE)
    assert r.json()["status"] == "removed"


async def test_legacy_failures_use_the_envelope_with_a_non_zero_code(setup_client):
    r = await setup_client.post("/request_upload_edgeAi", json={"filename": "x", "version": "abc", "ai_class": "01"}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()["code"] == "1001" and "version" in r.json()["message"]
    r = await setup_client.post("/request_deploy_aiToDevice", json={"aid": 999}, headers=OPERATOR)
    assert r.status_code == 404 and r.json()["code"] == "1004" and "aid" in r.json()["message"]
    r = await setup_client.post("/request_deploy_aiToDevice", json={"aid": "one"}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()["code"] == "1001"
    r = await setup_client.post("/request_remove_edgeAi", json={"aid": 1})
    assert r.status_code == 401 and r.json()["code"] == "1401"
    r = await setup_client.post("/request_upload_edgeAi", content=b"{not json", headers={**OPERATOR, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "1001"
    r = await setup_client.get("/get_uploadedAiInfo", params={"id": 12345}, headers=OPERATOR)
    assert r.json()["code"] == "1004"
