"""An edge token reads only its own node's data (issue 16 item 7): its own frames and series,
never another node's frame, the list of every node's frames or every node's state."""

from __future__ import annotations

import json
from pathlib import Path

import ultralytics

from tests.helpers.env import OPERATOR
from tests.vms.conftest import edge_headers, vms

JPEG = (Path(ultralytics.__file__).parent / "assets" / "bus.jpg").read_bytes()


def frame(nid: str) -> dict:
    meta = {"nid": nid, "ts": "2026-11-22T03:00:00Z", "reason": "low_confidence", "detections": []}
    return {
        "image": ("f.jpg", JPEG, "image/jpeg"),
        "metadata": (None, json.dumps(meta), "application/json"),
    }


async def test_an_edge_reads_its_own_frames_and_series_only(db):
    async with vms(db, unknown_nodes="flag") as client:
        mine, theirs = edge_headers("0x01"), edge_headers("0x02")
        r = await client.post("/analysis", files=frame("0x01"), headers=mine)
        assert r.status_code == 201, r.text
        frame_id = r.json()["id"]

        assert (await client.get(f"/analysis/{frame_id}/image", headers=mine)).content == JPEG
        r = await client.get(f"/analysis/{frame_id}/image", headers=theirs)
        assert r.status_code == 403 and JPEG not in r.content
        assert (
            await client.get(f"/analysis/{frame_id}/image", headers=OPERATOR)
        ).status_code == 200

        for path in ("/analysis", "/nodes/state", "/detections"):  # every node's data at once
            assert (await client.get(path, headers=mine)).status_code == 403, path
            assert (await client.get(path, headers=OPERATOR)).status_code == 200, path
        params = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-22T06:00:00Z"}
        assert (
            await client.get("/nodes/0x02/series", params=params, headers=mine)
        ).status_code == 403
        assert (
            await client.get("/nodes/0x01/series", params=params, headers=mine)
        ).status_code not in (401, 403)
