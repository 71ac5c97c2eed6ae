"""The VMS's live-view routes: an edge posts its own frames (JPEG) and problems; readers wait for
the next frame; nothing is kept but the latest."""

from __future__ import annotations

import asyncio

from tests.helpers.env import OPERATOR
from tests.vms.conftest import edge_headers, vms

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100


async def test_an_edge_posts_its_own_frames_and_a_viewer_gets_the_next_one(db):
    async with vms(db) as client:
        own = edge_headers("0x41")
        assert (await client.get("/live/0x41", headers=OPERATOR)).json()["frames"] == 0

        waiting = asyncio.create_task(
            client.get("/live/0x41/next", params={"after": 0, "wait_s": 5}, headers=OPERATOR)
        )
        await asyncio.sleep(0.2)
        r = await client.post("/live/0x41/frame", content=JPEG, headers={**own, "X-Live-Seq": "7"})
        assert r.status_code == 202, r.text
        got = await waiting
        assert got.status_code == 200 and got.content == JPEG
        assert got.headers["x-live-seq"] == "1" and got.headers["x-live-edge-seq"] == "7"

        # Nothing newer: 204 after the wait; a camera problem rides along.
        r = await client.post(
            "/live/0x41/problem", json={"detail": "camera: no frame"}, headers=own
        )
        assert r.status_code == 202
        none = await client.get(
            "/live/0x41/next", params={"after": 1, "wait_s": 0.2}, headers=OPERATOR
        )
        assert none.status_code == 204 and none.headers["x-live-problem"] == "camera: no frame"
        state = (await client.get("/live/0x41", headers=OPERATOR)).json()
        assert state["frames"] == 1 and state["bytes"] == len(JPEG)
        assert state["problem"] == "camera: no frame"

        # Another edge's nid, a body that is not JPEG, no token, an edge reading: refused.
        other = edge_headers("0x42")
        assert (
            await client.post("/live/0x41/frame", content=JPEG, headers=other)
        ).status_code == 403
        assert (
            await client.post("/live/0x41/frame", content=b"GIF89a", headers=own)
        ).status_code == 422
        assert (await client.post("/live/0x41/frame", content=JPEG)).status_code == 401
        assert (await client.get("/live/0x41", headers=own)).status_code == 403
