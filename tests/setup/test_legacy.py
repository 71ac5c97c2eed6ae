"""The field's /request_* routes: form fields or JSON in, {"code": "0000"} envelope out."""

from __future__ import annotations

from tests.helpers.env import OPERATOR, SERVICE
from tests.setup.test_packages_deployments import make_edge


async def test_field_flow_upload_deploy_undeploy_remove(setup_client):
    e1 = await make_edge(setup_client, "0x01")
    # Form fields, as the field's scripts send them.
    r = await setup_client.post(
        "/request_upload_edgeAi",
        data={"filename": "monitoring", "version": "01", "ai_class": "01"},
        headers=OPERATOR,
    )
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    aid = r.json()["aid"]
    r = await setup_client.get("/get_uploadedAiInfo", params={"id": aid}, headers=OPERATOR)
    assert (
        r.json()["code"] == "0000"
        and r.json()["filename"] == "monitoring"
        and r.json()["version"] == "01"
    )

    r = await setup_client.post("/request_deploy_aiToDevice", json={"aid": aid}, headers=OPERATOR)
    assert r.json()["code"] == "0000" and len(r.json()["deployments"]) == 1
    deps = (
        await setup_client.get("/deployments", params={"edge_id": e1["id"]}, headers=OPERATOR)
    ).json()["items"]
    assert deps[0]["ai_id"] == aid and deps[0]["desired"] == "running"

    # A newer variant deployed the field's way replaces the running one of the same filename.
    r = await setup_client.post(
        "/request_upload_edgeAi",
        json={"filename": "monitoring", "version": "01", "ai_class": "02"},
        headers=OPERATOR,
    )
    rainy = r.json()["aid"]
    r = await setup_client.post(
        "/request_deploy_aiToDevice", json={"aid": rainy, "edge": "0x01"}, headers=OPERATOR
    )
    assert r.json()["code"] == "0000"
    dep = (await setup_client.get(f"/deployments/{deps[0]['id']}", headers=OPERATOR)).json()
    assert dep["ai_id"] == rainy and dep["generation"] == 2

    r = await setup_client.post(
        "/request_undeploy_aiFromDevice", data={"aid": str(rainy)}, headers=OPERATOR
    )
    assert r.json()["code"] == "0000" and r.json()["deployments"] == [dep["id"]]
    r = await setup_client.post("/request_remove_edgeAi", json={"aid": rainy}, headers=OPERATOR)
    assert r.json()["code"] == "0000"
    r = await setup_client.get(f"/ai-packages/{rainy}", headers=SERVICE)
    assert r.json()["status"] == "removed"


async def test_legacy_failures_use_the_envelope_with_a_non_zero_code(setup_client):
    r = await setup_client.post(
        "/request_upload_edgeAi",
        json={"filename": "x", "version": "abc", "ai_class": "01"},
        headers=OPERATOR,
    )
    assert r.status_code == 422 and r.json()["code"] == "1001" and "version" in r.json()["message"]
    r = await setup_client.post("/request_deploy_aiToDevice", json={"aid": 999}, headers=OPERATOR)
    assert r.status_code == 404 and r.json()["code"] == "1004" and "aid" in r.json()["message"]
    r = await setup_client.post("/request_deploy_aiToDevice", json={"aid": "one"}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()["code"] == "1001"
    r = await setup_client.post("/request_remove_edgeAi", json={"aid": 1})
    assert r.status_code == 401 and r.json()["code"] == "1401"
    r = await setup_client.post(
        "/request_upload_edgeAi",
        content=b"{not json",
        headers={**OPERATOR, "content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["code"] == "1001"
    r = await setup_client.get("/get_uploadedAiInfo", params={"id": 12345}, headers=OPERATOR)
    assert r.json()["code"] == "1004"


# -- issue 15: the field's payloads, unchanged ------------------------------------------------

FIELD_EDGE_AS_SENT = {
    "name": "EdgeCCTV01",
    "type": 1,
    "gps": {"latitude": "37.57", "longitude": "126.98"},
    "address": "1599 Sangam-dong, Mapo-gu, Seoul",
    "ip": "127.0.0.9",
    "isSupportAnnalysis": "YES",
    "url": "rtsp://user:pass@127.0.0.12/axis-media/media.amp",
    "description": "edge CCTV installed in Sangam-dong",
}


async def test_field_edge_payload_without_nid_gets_one_assigned(setup_client):
    """Item 2: the field's edge payload has no nid; setup assigns the next free 0xNN and answers
    it."""
    r = await setup_client.post("/edges", json=FIELD_EDGE_AS_SENT, headers=OPERATOR)
    assert r.status_code == 201, r.text
    assert r.json()["nid"] == "0x01" and r.json()["token"]
    await make_edge(setup_client, "0x07")
    r = await setup_client.post(
        "/edges", json={**FIELD_EDGE_AS_SENT, "name": "EdgeCCTV02"}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    assert r.json()["nid"] == "0x08"
    r = await setup_client.get("/edges", params={"nid": "0x08"}, headers=OPERATOR)
    assert r.json()["items"][0]["name"] == "EdgeCCTV02"


async def test_version_and_ai_class_as_json_numbers_mean_their_field_strings(setup_client):
    """Item 8: 1 sent for ai_class means "01", as the field writes it."""
    r = await setup_client.post(
        "/request_upload_edgeAi",
        json={"filename": "monitoring", "version": 1, "ai_class": 1},
        headers=OPERATOR,
    )
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    r = await setup_client.get(
        "/get_uploadedAiInfo", params={"id": r.json()["aid"]}, headers=OPERATOR
    )
    assert (r.json()["version"], r.json()["ai_class"]) == ("01", "01")
    r = await setup_client.post(
        "/request_upload_edgeAi",
        json={"filename": "weatherai", "version": "01", "ai_class": 0},
        headers=OPERATOR,
    )
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    r = await setup_client.get(
        "/get_uploadedAiInfo", params={"id": r.json()["aid"]}, headers=OPERATOR
    )
    assert r.json()["ai_class"] == "00"
    r = await setup_client.post(
        "/request_upload_edgeAi",
        json={"filename": "weatherai", "version": "01", "ai_class": True},
        headers=OPERATOR,
    )
    assert r.status_code == 422 and "ai_class" in r.json()["message"]


async def test_deploy_without_eid_only_when_one_edge_is_registered(setup_client):
    """Item 9: the field had one node; with several, a request without eid names no target."""
    r = await setup_client.post(
        "/request_upload_edgeAi",
        json={"filename": "monitoring", "version": "01", "ai_class": "01"},
        headers=OPERATOR,
    )
    aid = r.json()["aid"]
    only = await make_edge(setup_client, "0x01")
    r = await setup_client.post("/request_deploy_aiToDevice", json={"aid": aid}, headers=OPERATOR)
    assert r.status_code == 200 and len(r.json()["deployments"]) == 1, r.text
    await make_edge(setup_client, "0x02")
    await make_edge(setup_client, "0x03")
    r = await setup_client.post("/request_deploy_aiToDevice", json={"aid": aid}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()["code"] == "1001", r.text
    assert r.json()["message"].startswith("eid:") and "3 edges" in r.json()["message"]
    deps = (await setup_client.get("/deployments", headers=OPERATOR)).json()["items"]
    assert [d["edge_id"] for d in deps] == [only["id"]]
    r = await setup_client.post(
        "/request_deploy_aiToDevice", json={"aid": aid, "eid": only["id"] + 1}, headers=OPERATOR
    )
    assert r.status_code == 200 and len(r.json()["deployments"]) == 1


async def test_master_answers_carry_the_fields_ip_and_port(setup_client):
    """Item 13: the field's clients read ip and port back, as they sent them."""
    body = {
        "name": "Master01",
        "ip": "127.0.0.14",
        "port": "5000",
        "description": "master server 1",
    }
    r = await setup_client.post("/masters", json=body, headers=OPERATOR)
    assert r.status_code == 201, r.text
    assert (r.json()["ip"], r.json()["port"]) == ("127.0.0.14", "5000")
    listed = (await setup_client.get("/masters", headers=OPERATOR)).json()["items"][0]
    assert (listed["ip"], listed["port"], listed["url"]) == (
        "127.0.0.14",
        "5000",
        "http://127.0.0.14:5000",
    )
