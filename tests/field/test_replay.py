"""The field's interface spec (../shared/spec/seed-interfaces.md) replayed: every payload there,
exactly as written, against setup and the master as real processes and a VMS.

Also: a device registered while the VMS runs posts its first second with its fresh token and is
accepted (item 1), and the field's routes answer 413 and 405 in the field's envelope (item 5).
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from edge_ai.common.config import load_config
from tests.field.conftest import field_folder
from tests.helpers.env import OPERATOR
from tests.vms.conftest import fetch

SUCCESS = "0000"

# The spec's payloads as written, except that its placeholder LAN addresses become addresses of the
# documentation range (192.0.2.0/24, RFC 5737): they are stored and read back, never contacted;
# every request of this file goes to loopback.

MASTER = {"name": "Master01", "ip": "192.0.2.14", "port": "5000", "description": "master server 1"}
EDGE = {
    "name": "EdgeCCTV01",
    "type": 1,
    "gps": {"latitude": "37.57", "longitude": "126.98"},
    "address": "1599 Sangam-dong, Mapo-gu, Seoul",
    "ip": "192.0.2.9",
    "isSupportAnnalysis": "YES",
    "url": "rtsp://user:pass@192.0.2.12/axis-media/media.amp",
    "description": "edge CCTV installed in Sangam-dong",
}
PACKAGES = [  # filename, version, ai_class, as the spec's table lists them
    {"filename": "weatherai", "version": "01", "ai_class": "00"},
    {"filename": "monitoring", "version": "01", "ai_class": "01"},
    {"filename": "monitoring", "version": "01", "ai_class": "02"},
]
USAGE = {
    "code": "0000",
    "message": "success",
    "username": "edge-master-01-1129",
    "cpu": 12.5,
    "memory": 43.1,
    "func": "SUNNY",
}
USAGE_FIRST_PROGRAM = {
    "code": "0000",
    "message": "정상 처리되었습니다",
    "username": "edge-master-01-1129",
    "cpu": 12.5,
    "memory": 43.1,
}
ENVIRONMENT = {"nid": "0x01", "date": "20240808", "time": "142503", "result": "4"}
EDGECONFIG = textwrap.dedent(
    """\
    <Configuration>
        <vms>
            <IP>192.0.2.14</IP>
            <Port>6432</Port>
            <Path>usage</Path>
        </vms>
    </Configuration>
    """
)


def ok(r, what: str) -> dict:
    assert r.status_code == 200 and r.json()["code"] == SUCCESS, (what, r.status_code, r.text)
    return r.json()


def environment_for_today() -> dict:
    """The spec's record with its date standing for today (yesterday before 14:25:03 Korean time,
    when today's 142503 would still lie ahead)."""
    now = datetime.now(ZoneInfo("Asia/Seoul"))
    day = now if now.strftime("%H%M%S") >= ENVIRONMENT["time"] else now - timedelta(days=1)
    return {**ENVIRONMENT, "date": day.strftime("%Y%m%d")}


async def test_setup_and_devices_replay_the_spec(field, tmp_path):
    r = await field.setup.post("/masters", json=MASTER)
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["ip"], r.json()["port"]) == (
        "Master01",
        "192.0.2.14",
        "5000",
    )

    r = await field.setup.post("/edges", json=EDGE)
    assert r.status_code == 201, r.text
    edge = r.json()
    assert edge["nid"] == "0x01" and edge["isSupportAnnalysis"] == "YES"
    assert "pass" not in edge["url"] and "user" not in edge["url"]  # camera credentials are secrets

    # The package folders as the field keeps them, then the three uploads (form fields, then JSON).
    field_folder(field.package_dir, "weatherai")
    field_folder(field.package_dir, "monitoring")
    aids = []
    for i, fields in enumerate(PACKAGES):
        if i == 0:
            r = await field.setup.post("/request_upload_edgeAi", data=fields)
        else:
            r = await field.setup.post("/request_upload_edgeAi", json=fields)
        aids.append(ok(r, f"request_upload_edgeAi {fields}")["aid"])
    for aid, fields in zip(aids, PACKAGES, strict=True):
        info = ok(
            await field.setup.get("/get_uploadedAiInfo", params={"id": aid}), "get_uploadedAiInfo"
        )
        assert (info["filename"], info["version"]) == (fields["filename"], fields["version"])

    weather, sunny, rainy = aids
    ok(
        await field.setup.post("/request_deploy_aiToDevice", json={"aid": weather}),
        "deploy weatherai",
    )
    ok(
        await field.setup.post("/request_deploy_aiToDevice", data={"aid": str(sunny)}),
        "deploy SUNNY",
    )
    ok(
        await field.setup.post("/request_undeploy_aiFromDevice", json={"aid": sunny}),
        "undeploy SUNNY",
    )
    ok(await field.setup.post("/request_remove_edgeAi", json={"aid": rainy}), "remove RAINY")
    deployments = (await field.setup.get("/deployments", params={"desired": "running"})).json()[
        "items"
    ]
    assert [d["ai_id"] for d in deployments] == [weather]

    # The devices: /usage in both forms, /save_edgeData, all without a token as the field sends
    # them.
    async with field.vms(allow_anonymous=True) as vms:
        ok(await vms.post("/usage", json=USAGE), "usage")
        ok(await vms.post("/usage", json=USAGE_FIRST_PROGRAM), "usage without func")
        ok(await vms.post("/save_edgeData", json=environment_for_today()), "save_edgeData")
        node = (await vms.get("/nodes/state", params={"nids": "0x01"}, headers=OPERATOR)).json()[
            "items"
        ][0]
        assert node["condition_code"] == "4" and node["known"] is True
    rows = await fetch(
        field.database_url, "SELECT nid, func, message FROM vms.usage ORDER BY func NULLS LAST"
    )
    assert [tuple(r) for r in rows] == [
        ("edge-master-01-1129", "SUNNY", "success"),
        ("edge-master-01-1129", None, "정상 처리되었습니다"),
    ]
    env_rows = await fetch(field.database_url, "SELECT ts FROM vms.environment")
    expected = datetime.strptime(
        environment_for_today()["date"] + "142503", "%Y%m%d%H%M%S"
    ).replace(tzinfo=ZoneInfo("Asia/Seoul"))
    assert [r["ts"] for r in env_rows] == [expected]

    # edgeconfig.xml as shipped with an AI.
    path = tmp_path / "edgeconfig.xml"
    path.write_text(EDGECONFIG)
    config = load_config(path, env={})
    assert (config.vms_url, config.vms_path) == ("http://192.0.2.14:6432", "usage")


async def test_the_masters_field_routes_replay_the_spec(field):
    r = await field.setup.post("/edges", json=EDGE)
    assert r.status_code == 201, r.text
    field_folder(field.package_dir, "weatherai")
    field_folder(field.package_dir, "monitoring")
    aids = []
    for i, fields in enumerate(PACKAGES):
        r = await (
            field.master.post("/upload_edgeAI", data=fields)
            if i % 2
            else field.master.post("/upload_edgeAI", json=fields)
        )
        aids.append(ok(r, f"upload_edgeAI {fields}")["aid"])
    weather, sunny, rainy = aids
    ok(await field.master.post("/deploy_aiToDevice", json={"aid": weather}), "deploy_aiToDevice")
    ok(
        await field.master.post("/deploy_aiToDevice", data={"aid": str(sunny)}),
        "deploy_aiToDevice form",
    )
    ok(
        await field.master.post("/undeploy_aiFromDevice", json={"aid": sunny}),
        "undeploy_aiFromDevice",
    )
    ok(await field.master.post("/remove_edgeAI", json={"id": rainy}), "remove_edgeAI")
    assert (await field.setup.get(f"/ai-packages/{rainy}")).json()["status"] == "removed"
    running = (await field.setup.get("/deployments", params={"desired": "running"})).json()["items"]
    assert [d["ai_id"] for d in running] == [weather]


async def test_a_device_registered_while_the_vms_runs_is_accepted_at_once_in_the_envelope(field):
    async with field.vms(max_body_bytes=64 * 1024) as vms:
        # The VMS is up and has read setup's (empty) node list; now the device is registered.
        r = await field.setup.post("/edges", json={**EDGE, "name": "EdgeCCTV02"})
        assert r.status_code == 201, r.text
        nid, token = r.json()["nid"], r.json()["token"]
        device = {"Authorization": f"Bearer {token}"}
        # Its very first second, at once, with the token setup just gave it.
        ok(await vms.post("/usage", json=USAGE, headers=device), "first usage")
        ok(
            await vms.post(
                "/save_edgeData", json={**environment_for_today(), "nid": nid}, headers=device
            ),
            "first save_edgeData",
        )
        # Every answer of a field route is the field's envelope, errors included.
        big = await vms.post("/usage", json={**USAGE, "message": "x" * 100_000}, headers=device)
        assert big.status_code == 413 and big.json()["code"] == "1013", big.text
        wrong = await vms.get("/usage", headers=device)
        assert wrong.status_code == 405 and wrong.json()["code"] == "1005", wrong.text
    rows = await fetch(field.database_url, "SELECT nid FROM vms.usage")
    assert [r["nid"] for r in rows] == [nid]
