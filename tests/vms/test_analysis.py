"""The analysis server's inbox: frames the YOLO workers send up are stored and queued."""

from __future__ import annotations

import json
from pathlib import Path

import ultralytics

from tests.helpers.env import OPERATOR
from tests.vms.conftest import edge_headers, fetch, vms

BUS = (Path(ultralytics.__file__).parent / "assets" / "bus.jpg").read_bytes()


def _parts(image: bytes, metadata: dict | str):
    meta = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return {
        "image": ("frame.jpg", image, "image/jpeg"),
        "metadata": (None, meta, "application/json"),
    }


async def test_frames_are_queued_and_read_back(db):
    async with vms(db, unknown_nodes="flag") as client:
        meta = {
            "nid": "0x01",
            "ts": "2026-11-22T03:00:00.123Z",
            "reason": "low_confidence",
            "model": "yolov8n",
            "detections": [],
        }
        r = await client.post("/analysis", files=_parts(BUS, meta), headers=edge_headers("0x01"))
        assert r.status_code == 201, r.text
        queued = r.json()
        assert queued["status"] == "queued" and queued["nid"] == "0x01"
        listed = (await client.get("/analysis", params={"nid": "0x01"}, headers=OPERATOR)).json()
        assert listed["total"] == 1 and listed["items"][0]["reason"] == "low_confidence"
        assert listed["items"][0]["authenticated"] is True and "image" not in listed["items"][0]
        image = await client.get(f"/analysis/{queued['id']}/image", headers=OPERATOR)
        assert image.content == BUS and image.headers["content-type"] == "image/jpeg"


async def test_bad_frames_are_refused_and_nothing_stored(db):
    async with vms(db, unknown_nodes="flag") as client:
        good = {"nid": "0x01"}
        cases = [
            (_parts(b"not an image", good), edge_headers("0x01"), 422, "image"),
            (_parts(BUS, "{broken"), edge_headers("0x01"), 422, "metadata"),
            (_parts(BUS, {"nid": "0x02"}), edge_headers("0x01"), 403, "metadata.nid"),
            (_parts(BUS, {"ts": "yesterday"}), edge_headers("0x01"), 422, "metadata.ts"),
            (_parts(BUS, good), {}, 401, None),
        ]
        for files, headers, code, field in cases:
            r = await client.post("/analysis", files=files, headers=headers)
            assert r.status_code == code, (field, r.text)
            if field:
                assert r.json()["error"]["field"] == field
        r = await client.post("/analysis", json=good, headers=edge_headers("0x01"))
        assert r.status_code == 422 and r.json()["error"]["field"] == "body"
        assert (await fetch(db, "SELECT count(*) AS n FROM vms.analysis_requests"))[0]["n"] == 0


async def test_unknown_nodes_are_refused_when_the_vms_rejects_them(db):
    async with vms(db, unknown_nodes="reject") as client:
        r = await client.post("/analysis", files=_parts(BUS, {"nid": "0x09"}), headers=OPERATOR)
        assert r.status_code == 404 and r.json()["error"]["field"] == "metadata.nid"
