"""The gateway with a real worker process (random-weights yolov8n, ultralytics' bundled images)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from tests.analysis.conftest import BUS, ZIDANE, consumers, gateway, start_worker, variant
from tests.helpers.env import OPERATOR, free_port

EDGE_BOXES = [
    {"class": "person", "class_id": 0, "confidence": 0.42, "box": [50, 400, 250, 900]},
    {"class": "bus", "class_id": 5, "confidence": 0.35, "box": [20, 200, 800, 750]},
]


async def poll(client: httpx.AsyncClient, path: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await client.get(path, headers=OPERATOR)
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 202, r.text
        await asyncio.sleep(0.05)
    raise TimeoutError(path)


async def test_sync_async_cache_and_fusion(db, prefix, worker):
    async with gateway(db, prefix) as client:
        # Synchronous, raw body: the server's answer for the whole image.
        r = await client.post("/analyze", content=BUS, headers=OPERATOR)
        assert r.status_code == 200, r.text
        first = r.json()
        assert (
            first["status"] == "done" and first["model"] == "yolov8n" and first["cached"] is False
        )
        assert (first["width"], first["height"]) == (810, 1080) and first["attempts"] == 1
        assert set(first["timings"]) == {
            "queue_ms",
            "decode_ms",
            "preprocess_ms",
            "inference_ms",
            "nms_ms",
        }
        assert first["timings"]["inference_ms"] > 0
        # The same image again: from the cache, at once, with no job.
        started = time.perf_counter()
        r = await client.post("/analyze", content=BUS, headers=OPERATOR)
        assert (
            r.status_code == 200
            and r.json()["cached"] is True
            and time.perf_counter() - started < 0.5
        )
        assert (
            r.json()["detections"] == first["detections"] and r.json()["job_id"] == first["job_id"]
        )
        # Async, multipart with the edge's boxes: a job id, then the result with the fused boxes.
        meta = {
            "nid": "0x01",
            "mode": "precise",
            "camera_time": "2026-11-28T07:00:00Z",
            "detections": EDGE_BOXES,
        }
        r = await client.post(
            "/analyze?async=true",
            headers=OPERATOR,
            files={"image": ("z.jpg", ZIDANE, "image/jpeg"), "metadata": (None, json.dumps(meta))},
        )
        assert r.status_code == 202, r.text
        done = await poll(client, r.json()["poll"])
        assert (
            done["status"] == "done"
            and done["nid"] == "0x01"
            and (done["width"], done["height"]) == (1280, 720)
        )
        assert done["mode"] == "precise" and done["camera_time"] == "2026-11-28T07:00:00Z"
        # Random weights find nothing, so every edge box is kept as the edge's.
        assert done["detections"] == []
        assert [(d["class"], d["source"]) for d in done["fused"]] == [
            ("person", "edge"),
            ("bus", "edge"),
        ]
        # A cached image with other edge boxes: fusion is redone for this request.
        r = await client.post(
            "/analyze",
            headers=OPERATOR,
            files={
                "image": ("z.jpg", ZIDANE),
                "metadata": (None, json.dumps({"detections": EDGE_BOXES[:1]})),
            },
        )
        assert r.json()["cached"] is True and len(r.json()["fused"]) == 1
        metrics = (await client.get("/metrics")).text
        assert 'analysis_cache_total{result="hit"} 2.0' in metrics
        assert 'analysis_cache_total{result="miss"} 2.0' in metrics
        # Strict decoding: a truncated JPEG with its end marker appended is refused, not padded.
        r = await client.post(
            "/analyze", content=BUS[: len(BUS) // 2] + b"\xff\xd9", headers=OPERATOR
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "image", r.text
        assert "premature end" in r.json()["error"]["message"]


async def test_jobs_waiting_together_are_run_in_one_batch(db, prefix, tmp_path):
    metrics_port = free_port()
    async with gateway(db, prefix) as client:
        ids = []
        for i in range(6):  # queued before any worker runs
            r = await client.post(
                "/analyze?async=true", content=variant(BUS, f"b{i}"), headers=OPERATOR
            )
            ids.append(r.json()["job_id"])
        proc = start_worker(
            db, prefix, tmp_path, batch_size=8, batch_wait_ms=50, metrics_port=metrics_port
        )
        try:
            results = [await poll(client, f"/jobs/{job_id}") for job_id in ids]
            assert all(r["status"] == "done" for r in results)
            assert max(r["batch_size"] for r in results) == 6
            worker_metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            assert "analysis_batch_size_count" in worker_metrics
            assert 'analysis_images_total{outcome="done"} 6.0' in worker_metrics
            assert 'analysis_stage_seconds_count{stage="inference"}' in worker_metrics
        finally:
            assert proc.stop() == 0
        # Stopped with nothing in hand: it left the group.
        assert not [c for c in consumers(prefix) if c["name"].endswith(f"-{proc.pid}")]


async def test_concurrent_sync_callers_each_get_their_own_answer(db, prefix, worker):
    async with gateway(db, prefix) as client:
        images = [variant(BUS if i % 2 else ZIDANE, f"c{i}") for i in range(8)]
        answers = await asyncio.gather(
            *(client.post("/analyze", content=im, headers=OPERATOR) for im in images)
        )
        assert [a.status_code for a in answers] == [200] * 8
        import hashlib

        assert [a.json()["image_sha256"] for a in answers] == [
            hashlib.sha256(im).hexdigest() for im in images
        ]
        assert len({a.json()["job_id"] for a in answers}) == 8


async def test_the_cache_keeps_at_most_its_bound_the_oldest_evicted(db, prefix, tmp_path):
    import redis

    from tests.analysis.conftest import REDIS_URL

    proc = start_worker(db, prefix, tmp_path, ANALYSIS_CACHE_MAX_ENTRIES="2")
    try:
        async with gateway(db, prefix, local_cache_entries=0) as client:
            images = [variant(BUS, f"lru{i}") for i in range(3)]
            for image in images:
                r = await client.post("/analyze", content=image, headers=OPERATOR)
                assert r.json()["cached"] is False
            check = redis.Redis.from_url(REDIS_URL)
            try:
                assert len(list(check.scan_iter(match=f"{prefix}:cache:*"))) == 2
                assert check.zcard(f"{prefix}:cache-index") == 2
            finally:
                check.close()
            r = await client.post("/analyze", content=images[2], headers=OPERATOR)
            assert r.json()["cached"] is True
            r = await client.post("/analyze", content=images[0], headers=OPERATOR)
            assert r.json()["cached"] is False  # evicted: analysed again
    finally:
        proc.stop()


async def test_the_queue_counts_an_idle_worker(db, prefix, worker):
    async with gateway(db, prefix) as client:
        stats = (await client.get("/queue", headers=OPERATOR)).json()
    assert stats["depth"] == 0 and stats["in_work"] == 0
    assert stats["consumers"] == 1, stats  # the worker is there even with nothing to do
