"""The VMS with the real setup service (a separate process): known nodes, names, the condition
map."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time as time_module

import httpx
import pytest

from tests.helpers.env import OPERATOR, free_port, service_env
from tests.helpers.processes import start_service
from tests.vms.conftest import fetch, field_date_time, vms


def edge_payload(name: str, nid: str, cluster_id: int) -> dict:
    return {
        "name": name,
        "type": 1,
        "gps": {"latitude": "37.57", "longitude": "126.98"},
        "address": "1599 Sangam-dong, Mapo-gu, Seoul",
        "ip": "127.0.0.1",
        "isSupportAnnalysis": "YES",
        "url": "rtsp://user:pass@127.0.0.1/axis-media/media.amp",
        "description": "edge CCTV for the VMS tests",
        "nid": nid,
        "cluster_id": cluster_id,
    }


@pytest.fixture
def setup_url(db, tmp_path):
    port = free_port()
    proc = start_service(
        "setup", env=service_env(db, SETUP_NOTIFY_MASTER="false"), port=port, tmp_path=tmp_path
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def register(setup_url: str, name: str, nid: str) -> str:
    with httpx.Client(base_url=setup_url, headers=OPERATOR, timeout=10) as c:
        clusters = c.get("/clusters").json()["items"]
        cluster = (
            clusters[0] if clusters else c.post("/clusters", json={"name": "vms-tests"}).json()
        )
        r = c.post("/edges", json=edge_payload(name, nid, cluster["id"]))
        assert r.status_code == 201, r.text
        return r.json()["token"]


async def test_known_nodes_names_and_tokens_from_setup(db, setup_url):
    token = register(setup_url, "EdgeCCTV01", "0x01")
    async with vms(db, setup_url=setup_url, nodes_miss_refresh_s=0, allow_anonymous=True) as client:
        # Unknown node: refused by default (VMS_UNKNOWN_NODES=reject), nothing stored.
        r = await client.post(
            "/usage", json={"nid": "0x99", "cpu": 1, "memory": 1, "func": "SUNNY"}, headers=OPERATOR
        )
        assert r.status_code == 422 and "nid" in r.json()["message"] and r.json()["code"] == "1001"
        # The edge's own token from setup.
        r = await client.post(
            "/usage",
            json={"username": "x", "cpu": 5, "memory": 6, "func": "SUNNY"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        # A field device without a token and without nid: its edge name maps to its node.
        r = await client.post(
            "/usage",
            json={
                "code": "0000",
                "message": "success",
                "username": "EdgeCCTV01",
                "cpu": "7",
                "memory": "8",
                "func": "SUNNY",
            },
        )
        assert r.status_code == 200, r.text
        # A device login name setup does not know: stored under the name as reported, flagged
        # unknown (an operator maps it), not refused.
        r = await client.post(
            "/usage", json={"username": "NoSuchEdge", "cpu": "9", "memory": "8", "func": "SUNNY"}
        )
        assert r.status_code == 200, r.text

        # An edge registered after the VMS started is found on the miss.
        late = register(setup_url, "EdgeCCTV02", "0x02")
        date, time = field_date_time()
        r = await client.post(
            "/save_edgeData",
            json={"nid": "0x02", "date": date, "time": time, "result": "2"},
            headers={"Authorization": f"Bearer {late}"},
        )
        assert r.status_code == 200, r.text

        state = (await client.get("/nodes/state", headers=OPERATOR)).json()["items"]
        assert {n["nid"]: n["known"] for n in state} == {
            "0x01": True,
            "0x02": True,
            "NoSuchEdge": False,
        }

    rows = await fetch(db, "SELECT nid, authenticated, known FROM vms.usage ORDER BY cpu")
    assert [tuple(r) for r in rows] == [
        ("0x01", True, True),
        ("0x01", False, True),
        ("NoSuchEdge", False, False),
    ]


async def test_condition_map_comes_from_setup(db, setup_url):
    register(setup_url, "EdgeCCTV03", "0x03")
    with httpx.Client(base_url=setup_url, headers=OPERATOR, timeout=10) as c:
        original = c.get("/conditions").json()
        custom = {"codes": {**original["codes"], "9": "HAIL"}, "ai_classes": original["ai_classes"]}
        assert c.put("/conditions", json=custom).status_code == 200
    try:
        async with vms(db, setup_url=setup_url) as client:
            date, time = field_date_time()
            r = await client.post(
                "/save_edgeData",
                json={"nid": "0x03", "date": date, "time": time, "result": 9},
                headers=OPERATOR,
            )
            assert r.status_code == 200
            node = (
                await client.get("/nodes/state", params={"nids": "0x03"}, headers=OPERATOR)
            ).json()["items"][0]
            assert node["condition"] == "HAIL" and node["condition_code"] == "9"
    finally:
        with httpx.Client(base_url=setup_url, headers=OPERATOR, timeout=10) as c:
            c.put("/conditions", json=original)


async def test_setup_unreachable_keeps_serving_with_the_default_map(db):
    async with vms(db, unknown_nodes="flag") as client:  # setup_url points nowhere
        date, time = field_date_time()
        for code, condition in (
            ("0", "SUNNY"),
            ("1", "CLOUDY"),
            ("2", "RAINY"),
            ("3", "SNOWY"),
            ("4", "FOGGY"),
            ("5", "NIGHT"),
        ):
            nid = f"0x1{code}"
            r = await client.post(
                "/save_edgeData",
                json={"nid": nid, "date": date, "time": time, "result": code},
                headers=OPERATOR,
            )
            assert r.status_code == 200
            node = (
                await client.get("/nodes/state", params={"nids": nid}, headers=OPERATOR)
            ).json()["items"][0]
            assert node["condition"] == condition and node["known"] is False


async def test_a_tokenless_device_lands_under_its_edge_and_a_device_credential_is_revocable(
    db, setup_url, capsys
):
    """Issue 25 item 8: an edge's device_login maps a tokenless field device's records to the
    edge's nid (where tokenless devices are allowed at all); a device without an agent gets a
    long-lived credential from `edgectl edges credential`, and loses it on revocation."""
    from shared.edge_tokens import decode_edge_token
    from tests.helpers.env import KEYS
    from tests.helpers.processes import edgectl

    register(setup_url, "EdgeCCTV05", "0x05")
    with httpx.Client(base_url=setup_url, headers=OPERATOR, timeout=10) as c:
        r = c.patch("/edges/0x05", json={"device_login": "edge-master-01-1129"})
        assert r.status_code == 200 and r.json()["device_login"] == "edge-master-01-1129", r.text
        r = c.post("/edges/0x05/credential", json={"days": 4000})
        assert r.status_code == 422 and r.json()["error"]["field"] == "days"
    env = service_env(db, EDGE_SETUP_URL=setup_url)
    run = subprocess.run(
        edgectl("edges", "credential", "0x05", "--days", "300", "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    credential = json.loads(run.stdout)["token"]
    claims = decode_edge_token(credential, KEYS)
    assert claims is not None and claims.nid == "0x05"
    assert claims.expires_at - time_module.time() > 299 * 86400
    usage = {"code": "0000", "message": "success", "cpu": 3, "memory": 4, "func": "SUNNY"}

    async with vms(db, setup_url=setup_url) as client:  # tokenless devices refused by default
        r = await client.post("/usage", json={**usage, "username": "edge-master-01-1129"})
        assert r.status_code == 401, r.text
    async with vms(db, setup_url=setup_url, allow_anonymous=True) as client:
        r = await client.post("/usage", json={**usage, "username": "edge-master-01-1129"})
        assert r.status_code == 200, r.text
        bearer = {"Authorization": f"Bearer {credential}"}
        r = await client.post("/usage", json={**usage, "cpu": 5}, headers=bearer)
        assert r.status_code == 200, r.text
        with httpx.Client(base_url=setup_url, headers=OPERATOR, timeout=10) as c:
            assert c.delete("/edges/0x05/tokens").status_code == 204
        for _ in range(50):  # the revocation is pushed to the VMS on commit
            r = await client.post("/usage", json={**usage, "cpu": 6}, headers=bearer)
            if r.status_code == 401:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 401, r.text
        state = await client.get("/nodes/state", params={"nids": "0x05"}, headers=OPERATOR)
        assert state.json()["items"][0]["nid"] == "0x05"
    rows = await fetch(
        db, "SELECT nid, authenticated, known, cpu FROM vms.usage WHERE cpu < 6 ORDER BY cpu"
    )
    assert [tuple(r) for r in rows] == [("0x05", False, True, 3.0), ("0x05", True, True, 5.0)]
    logged = capsys.readouterr().err
    assert "field devices without a token are refused (VMS_ALLOW_ANONYMOUS=false)" in logged
    assert "field devices WITHOUT a token are accepted" in logged
