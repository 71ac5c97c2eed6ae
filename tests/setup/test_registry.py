"""Clusters, masters and edges over HTTP against the real Postgres."""

from __future__ import annotations

import asyncio
import json
import logging

from shared.contracts.master import (
    ClusterHealth,
    MasterHealth,
    MasterHeartbeat,
    MasterRecord,
    MasterRegistration,
)
from tests.helpers.env import OPERATOR, SERVICE, service_credential

FIELD_EDGE = {
    "name": "EdgeCCTV01",
    "type": 1,
    "gps": {"latitude": "37.57", "longitude": "126.98"},
    "address": "1599 Sangam-dong, Mapo-gu, Seoul",
    "ip": "127.0.0.9",
    "isSupportAnnalysis": "YES",
    "url": "rtsp://user:pass@127.0.0.12/axis-media/media.amp",
    "description": "edge CCTV installed in Sangam-dong",
}


async def make_cluster(client, name="c1", runtime="agent"):
    r = await client.post("/clusters", json={"name": name, "runtime": runtime}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    return r.json()


async def test_cluster_crud_and_pagination(setup_client):
    for i in range(5):
        await make_cluster(setup_client, f"cluster-{i}")
    r = await setup_client.get("/clusters", params={"limit": 2, "offset": 1}, headers=OPERATOR)
    body = r.json()
    assert body["total"] == 5 and [c["name"] for c in body["items"]] == ["cluster-1", "cluster-2"]
    r = await setup_client.get("/clusters", params={"name": "ter-4"}, headers=OPERATOR)
    assert [c["name"] for c in r.json()["items"]] == ["cluster-4"]
    cid = body["items"][0]["id"]
    r = await setup_client.patch(
        f"/clusters/{cid}", json={"runtime": "kubernetes"}, headers=OPERATOR
    )
    assert r.json()["runtime"] == "kubernetes"
    assert (await setup_client.delete(f"/clusters/{cid}", headers=OPERATOR)).status_code == 204
    assert (await setup_client.get(f"/clusters/{cid}", headers=OPERATOR)).status_code == 404


async def test_duplicate_cluster_name_is_409_naming_the_field(setup_client):
    await make_cluster(setup_client, "dup")
    r = await setup_client.post("/clusters", json={"name": "dup"}, headers=OPERATOR)
    assert r.status_code == 409
    assert r.json()["error"]["field"] == "name"


async def test_changes_need_a_token_and_reads_too_by_default(setup_client):
    assert (await setup_client.post("/clusters", json={"name": "x"})).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (
        await setup_client.post("/clusters", json={"name": "x"}, headers=bad)
    ).status_code == 401
    assert (await setup_client.get("/clusters")).status_code == 401
    assert (await setup_client.get("/clusters", headers=OPERATOR)).status_code == 200


async def test_master_accepts_the_field_payload(setup_client):
    r = await setup_client.post(
        "/masters",
        json={
            "name": "Master01",
            "ip": "127.0.0.14",
            "port": "5000",
            "description": "master server 1",
        },
        headers=OPERATOR,
    )
    assert r.status_code == 201, r.text
    assert r.json()["url"] == "http://127.0.0.14:5000"
    r = await setup_client.post(
        "/masters", json={"name": "M2", "ip": "127.0.0.1", "port": "70000"}, headers=OPERATOR
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "port"
    r = await setup_client.post("/masters", json={"name": "M3"}, headers=OPERATOR)
    assert r.status_code == 422


async def test_a_master_address_no_url_can_hold_is_a_422_naming_it(setup_client):
    # Found by the fuzzer: an ``ip`` with a bracket made a URL that could not be read back, so the
    # master was stored and its answer was a 500. Now refused before anything is written.
    for route in ("/masters", "/masters/register"):
        for body, field in [
            ({"name": "bad-ip", "ip": "\u008fP[a\u0085"}, "ip"),
            ({"name": "bad-ip", "ip": "127.0.0.9/admin"}, "ip"),
            ({"name": "bad-ip", "ip": "127.0.0.1:80"}, "ip"),
            ({"name": "bad-url", "url": "http://[::1"}, "url"),
            ({"name": "bad-url", "url": "http://127.0.0.1:99999"}, "url"),
        ]:
            r = await setup_client.post(route, json=body, headers=OPERATOR)
            assert r.status_code == 422, (route, body, r.text)
            assert r.json()["error"]["field"] == field, (route, body, r.text)
    r = await setup_client.patch("/masters/1", json={"url": "http://[::1"}, headers=OPERATOR)
    assert r.status_code in (404, 422), r.text
    listed = await setup_client.get("/masters", params={"name": "bad-"}, headers=OPERATOR)
    assert listed.status_code == 200 and listed.json()["total"] == 0


async def test_a_masters_registration_and_heartbeat_carry_its_typed_health(setup_client):
    """The master's own calls, built with the contract models it sends them with: setup keeps
    the health as sent (``pass`` included) and refuses a report the model does not know."""
    await make_cluster(setup_client, "site-a")
    master = {"Authorization": f"Bearer {service_credential('master')}"}
    health = MasterHealth(
        state="degraded",
        pass_number=3,
        pass_state="ok",
        clusters={"site-a": ClusterHealth(edges=2, unreachable=1)},
        site_problems={"7": "archive not copied yet"},
    )
    body = MasterRegistration(
        name="master-a", url="http://127.0.0.1:9", clusters=["site-a"], health=MasterHealth()
    )
    r = await setup_client.post(
        "/masters/register", json=body.model_dump(mode="json"), headers=master
    )
    assert r.status_code == 200, r.text
    record = MasterRecord.model_validate(r.json())
    assert record.clusters == ["site-a"] and record.state == "live"

    beat = MasterHeartbeat(health=health).model_dump(mode="json")
    assert beat["health"]["pass"] == 3  # the wire name of pass_number
    r = await setup_client.post(f"/masters/{record.id}/heartbeat", json=beat, headers=master)
    assert r.status_code == 200, r.text
    assert MasterRecord.model_validate(r.json()).id == record.id
    r = await setup_client.get(f"/masters/{record.id}", headers=OPERATOR)
    assert r.json()["health"] == beat["health"]
    assert MasterHealth.model_validate(r.json()["health"]) == health

    for wrong, field in (({"state": "fine"}, "state"), ({"uptime_s": 5}, "uptime_s")):
        r = await setup_client.post(
            f"/masters/{record.id}/heartbeat", json={"health": wrong}, headers=master
        )
        assert r.status_code == 422 and field in r.json()["error"]["field"], r.text


async def test_edge_registration_field_payload_masks_credentials_and_issues_token(
    setup_client, caplog
):
    cluster = await make_cluster(setup_client)
    caplog.set_level(logging.DEBUG)
    r = await setup_client.post(
        "/edges", json={**FIELD_EDGE, "nid": "0x01", "cluster_id": cluster["id"]}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    edge = r.json()
    assert edge["token"].startswith("edg_")
    assert edge["gps"] == {"latitude": 37.57, "longitude": 126.98}
    assert edge["isSupportAnnalysis"] == "YES"
    assert edge["url"] == "rtsp://***:***@127.0.0.12/axis-media/media.amp"
    assert "pass" not in json.dumps(edge)

    got = (await setup_client.get(f"/edges/{edge['id']}", headers=OPERATOR)).json()
    assert "token" not in got and "pass" not in json.dumps(got)
    listed = (await setup_client.get("/edges", headers=OPERATOR)).text
    assert "user:pass" not in listed and edge["token"] not in listed
    # Only services read the credentials (the master uses them).
    assert (
        await setup_client.get(f"/edges/{edge['id']}/camera", headers=OPERATOR)
    ).status_code == 403
    cam = await setup_client.get(f"/edges/{edge['id']}/camera", headers=SERVICE)
    assert cam.json()["url"] == FIELD_EDGE["url"]
    assert "user:pass" not in caplog.text and edge["token"] not in caplog.text

    ids = (await setup_client.get("/edges/node-ids", headers=SERVICE)).json()
    assert ids["items"] == ["0x01"] and ids["names"] == {"EdgeCCTV01": "0x01"}


async def test_edge_without_cluster_goes_to_default_cluster(setup_client):
    r = await setup_client.post("/edges", json={**FIELD_EDGE, "nid": "0x02"}, headers=OPERATOR)
    assert r.status_code == 201
    clusters = (await setup_client.get("/clusters", headers=OPERATOR)).json()["items"]
    assert [c["name"] for c in clusters] == ["default"]


async def test_edge_bad_inputs_name_the_field_and_write_nothing(setup_client):
    cluster = await make_cluster(setup_client)
    base = {**FIELD_EDGE, "nid": "0x01", "cluster_id": cluster["id"]}
    cases = [
        ({"gps": {"latitude": "north", "longitude": "126.98"}}, "gps.latitude"),
        ({"gps": {"latitude": "97.1", "longitude": "126.98"}}, "gps.latitude"),
        ({"isSupportAnnalysis": "MAYBE"}, "isSupportAnnalysis"),
        ({"url": "ftp://x/y"}, "url"),
        ({"type": "one"}, "type"),
        ({"nid": "bad nid!"}, "nid"),
        ({"cluster_id": 999}, "cluster_id"),
        ({"unexpected": 1}, "unexpected"),
    ]
    for change, field in cases:
        r = await setup_client.post("/edges", json={**base, **change}, headers=OPERATOR)
        assert 400 <= r.status_code < 500, (change, r.text)
        assert r.json()["error"]["field"] == field, (change, r.json())
    assert (await setup_client.get("/edges", headers=OPERATOR)).json()["total"] == 0
    # A duplicate nid is a conflict.
    assert (await setup_client.post("/edges", json=base, headers=OPERATOR)).status_code == 201
    r = await setup_client.post("/edges", json={**base, "name": "other"}, headers=OPERATOR)
    assert r.status_code == 409 and r.json()["error"]["field"] == "nid"


async def test_edge_update_and_token_rotation(setup_client):
    created = (
        await setup_client.post("/edges", json={**FIELD_EDGE, "nid": "0x01"}, headers=OPERATOR)
    ).json()
    r = await setup_client.patch(
        f"/edges/{created['id']}",
        json={
            "capacity": {"cpu": 6, "memory_mb": 8192, "gpu": 1},
            "node_name": "jetson-01",
            "url": "rtsp://127.0.0.5/live",
        },
        headers=OPERATOR,
    )
    assert r.status_code == 200, r.text
    assert r.json()["capacity"] == {"cpu": 6.0, "memory_mb": 8192, "gpu": 1}
    assert r.json()["url"] == "rtsp://127.0.0.5/live"
    rotated = (await setup_client.post(f"/edges/{created['id']}/token", headers=OPERATOR)).json()
    assert rotated["token"] != created["token"]
    # Rotation revokes: the old token is refused (the revocation is pushed to every process within
    # moments), the new one works.
    old, new = ({"Authorization": f"Bearer {t}"} for t in (created["token"], rotated["token"]))
    deadline = asyncio.get_running_loop().time() + 5
    while (await setup_client.post("/edges/me/token", headers=old)).status_code != 401:
        assert asyncio.get_running_loop().time() < deadline, "the old token is still accepted"
        await asyncio.sleep(0.05)
    assert (await setup_client.post("/edges/me/token", headers=new)).status_code == 200


async def test_oversized_body_is_413(setup_client):
    r = await setup_client.post(
        "/clusters",
        content=b'{"name": "' + b"x" * 2_000_000 + b'"}',
        headers={**OPERATOR, "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["field"] == "body"
