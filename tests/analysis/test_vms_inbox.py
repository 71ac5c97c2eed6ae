"""The VMS's analysis inbox consumed: frames edges sent to the VMS's POST /analysis are analysed
and their results recorded back there, visible per node."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx

from shared.contracts.analysis import InboxResult
from tests.analysis.conftest import BUS, ZIDANE, gateway
from tests.helpers.env import OPERATOR, SERVICE, free_port, service_env
from tests.helpers.processes import start_service
from tests.vms.conftest import edge_headers, nowhere, vms

SERVICE_JSON = {**SERVICE, "Content-Type": "application/json"}
EDGE_BOXES = [{"class": "person", "class_id": 0, "confidence": 0.31, "box": [100, 100, 300, 600]}]


def frame(image: bytes, nid: str, **meta) -> dict:
    return {
        "image": ("frame.jpg", image, "image/jpeg"),
        "metadata": (
            None,
            json.dumps({"nid": nid, "reason": "low_confidence", **meta}),
            "application/json",
        ),
    }


async def test_claims_lease_frames_and_results_are_written_once(db):
    async with vms(db, unknown_nodes="flag") as client:
        for image in (BUS, ZIDANE):
            assert (
                await client.post(
                    "/analysis", files=frame(image, "0x01"), headers=edge_headers("0x01")
                )
            ).status_code == 201
        assert (
            await client.post("/analysis/claim", json={"limit": 5}, headers=OPERATOR)
        ).status_code == 403
        r = await client.post("/analysis/claim", json={"limit": 1, "lease_s": 0.2}, headers=SERVICE)
        assert r.status_code == 200, r.text
        claimed = r.json()["frames"]
        assert [f["nid"] for f in claimed] == ["0x01"] and claimed[0]["metadata"][
            "reason"
        ] == "low_confidence"
        first = claimed[0]["id"]
        rest = (
            await client.post("/analysis/claim", json={"limit": 5, "lease_s": 60}, headers=SERVICE)
        ).json()["frames"]
        assert [f["id"] for f in rest] == [first + 1]  # the first is leased
        await asyncio.sleep(0.3)  # its lease runs out: claimable again
        again = (
            await client.post("/analysis/claim", json={"limit": 5, "lease_s": 60}, headers=SERVICE)
        ).json()["frames"]
        assert [f["id"] for f in again] == [first]
        body = InboxResult(
            status="done", model="yolov8n", detections=[], analysed_at=datetime.now(UTC)
        )
        r = await client.put(
            f"/analysis/{first}/result", content=body.model_dump_json(), headers=SERVICE_JSON
        )
        assert r.json() == {"id": first, "status": "done", "written": True}
        later = body.model_copy(update={"model": "other"})
        r = await client.put(
            f"/analysis/{first}/result", content=later.model_dump_json(), headers=SERVICE_JSON
        )
        assert r.json() == {"id": first, "status": "done", "written": False}
        item = (await client.get("/analysis", params={"status": "done"}, headers=OPERATOR)).json()[
            "items"
        ][0]
        assert item["id"] == first and item["result"]["model"] == "yolov8n"
        r = await client.put(
            "/analysis/999999/result", content=body.model_dump_json(), headers=SERVICE_JSON
        )
        assert r.status_code == 404
        r = await client.put(f"/analysis/{first}/result", json={"status": "maybe"}, headers=SERVICE)
        assert r.status_code == 422


async def test_frames_sent_to_the_vms_are_analysed_and_recorded_back(db, prefix, worker, tmp_path):
    port = free_port()
    # The VMS takes only the services' own credentials (as in production): the gateway claims
    # and answers with the analysis service's (EDGE_ANALYSIS_TOKEN, derived here).
    env = service_env(
        db,
        VMS_UNKNOWN_NODES="flag",
        EDGE_SETUP_URL=nowhere(),
        EDGE_MIGRATE_ON_START="false",
        EDGE_ACCEPT_SERVICE_TOKEN="false",
    )
    vms_proc = start_service("vms", env=env, port=port, tmp_path=tmp_path)
    vms_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=vms_url, timeout=10) as edge:
            for image, meta in ((BUS, {"detections": EDGE_BOXES}), (ZIDANE, {}), (BUS[:5000], {})):
                r = await edge.post(
                    "/analysis", files=frame(image, "0x07", **meta), headers=edge_headers("0x07")
                )
                assert r.status_code == 201, r.text
            async with gateway(
                db, prefix, vms_url=vms_url, consume_vms_inbox=True, inbox_interval_s=0.2
            ) as client:
                deadline = time.monotonic() + 60
                while True:
                    listed = (
                        await edge.get("/analysis", params={"nid": "0x07"}, headers=OPERATOR)
                    ).json()
                    if all(i["status"] in ("done", "failed") for i in listed["items"]):
                        break
                    assert time.monotonic() < deadline, listed
                    await asyncio.sleep(0.1)
                metrics = (await client.get("/metrics")).text
    finally:
        vms_proc.stop()
    by_id = {i["id"]: i for i in listed["items"]}
    bus, zidane, truncated = (by_id[k] for k in sorted(by_id))
    assert bus["status"] == "done" and zidane["status"] == "done"
    assert bus["result"]["model"] == "yolov8n" and bus["result"]["detections"] == []
    assert [(d["class"], d["source"]) for d in bus["result"]["fused"]] == [("person", "edge")]
    assert "fused" not in zidane["result"]
    assert truncated["status"] == "failed" and truncated["result"]["error"]["field"] == "image"
    assert 'analysis_vms_frames_total{step="answered"} 3.0' in metrics
    assert 'analysis_vms_frames_total{step="queued"} 2.0' in metrics
