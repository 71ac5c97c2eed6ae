"""An edge reads back what it sent (its jobs, its videos) and nothing of another node's; the
operator and the services read everything."""

from __future__ import annotations

from tests.analysis.conftest import BUS, gateway, variant
from tests.analysis.test_gateway import edge
from tests.analysis.test_videos import make_video, sse_events
from tests.analysis.test_worker import poll
from tests.helpers.env import OPERATOR, SERVICE


async def test_an_edge_polls_its_own_jobs_and_not_another_nodes(db, prefix, tmp_path):
    # No worker runs here: a video's frame job still waiting when the gateway stops waits out
    # ANALYSIS_SYNC_TIMEOUT_S (60 s by default), so this gateway's is short.
    async with gateway(db, prefix, video_dir=str(tmp_path / "videos"), sync_timeout_s=3) as client:
        # No worker yet: the jobs stay queued (202).
        r = await client.post("/analyze?async=true", content=BUS, headers=edge("0x01"))
        assert r.status_code == 202, r.text
        own = r.json()["poll"]
        r = await client.get(own, headers=edge("0x01"))
        assert r.status_code == 202 and r.json()["status"] == "queued", r.text
        r = await client.get(own, headers=edge("0x02"))
        assert r.status_code == 403 and r.json()["error"]["field"] == "job_id", r.text
        for staff in (OPERATOR, SERVICE):
            assert (await client.get(own, headers=staff)).status_code == 202
        # A job the operator posted (even about node 0x01) is not an edge's to read.
        r = await client.post(
            "/analyze?async=true&nid=0x01", content=variant(BUS, "op"), headers=OPERATOR
        )
        assert (await client.get(r.json()["poll"], headers=edge("0x01"))).status_code == 403
        # An unknown job is a 404 for an edge too (not a 403 that would say nothing).
        r = await client.get("/jobs/0123456789abcdef0123456789abcdef", headers=edge("0x01"))
        assert r.status_code == 404, r.text

        # A video: its owner reads its progress; another edge gets 403 on every video route.
        video = make_video(tmp_path / "in.mp4", frames=2)
        r = await client.post("/videos", content=video, headers=edge("0x01"))
        assert r.status_code == 202, r.text
        accepted = r.json()
        r = await client.get(accepted["status_url"], headers=edge("0x01"))
        assert r.status_code == 200 and r.json()["status"] == "analysing", r.text
        r = await client.get(accepted["annotated"], headers=edge("0x01"))
        assert r.status_code == 409, r.text  # not done yet, but the owner may ask
        for path in (accepted["status_url"], accepted["events"], accepted["annotated"]):
            r = await client.get(path, headers=edge("0x02"))
            assert r.status_code == 403 and r.json()["error"]["field"] == "video_id", (path, r.text)
        assert (await client.get(accepted["status_url"], headers=OPERATOR)).status_code == 200


async def test_an_edge_reads_its_finished_job_and_video(db, prefix, worker, tmp_path):
    async with gateway(db, prefix, video_dir=str(tmp_path / "videos")) as client:
        r = await client.post("/analyze", content=BUS, headers=edge("0x01"))
        assert r.status_code == 200, r.text
        path = f"/jobs/{r.json()['job_id']}"
        r = await client.get(path, headers=edge("0x01"))
        assert r.status_code == 200 and r.json()["status"] == "done", r.text
        assert (await client.get(path, headers=edge("0x02"))).status_code == 403
        assert (await poll(client, path))["status"] == "done"  # the operator

        video = make_video(tmp_path / "in.mp4", frames=2)
        accepted = (await client.post("/videos", content=video, headers=edge("0x01"))).json()
        events = sse_events((await client.get(accepted["events"], headers=edge("0x01"))).text)
        assert events[-1] == ("end", {"end": True, "status": "done", "frames": 2})
        r = await client.get(accepted["annotated"], headers=edge("0x01"))
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        assert (await client.get(accepted["annotated"], headers=edge("0x02"))).status_code == 403
