"""A worker killed with SIGKILL mid-batch: every job is still answered, and answered once;
a job delivered too often is dead-lettered."""

from __future__ import annotations

import asyncio
import time

import redis

from tests.analysis.conftest import BUS, REDIS_URL, ZIDANE, gateway, start_worker, variant
from tests.analysis.test_worker import poll
from tests.helpers.env import OPERATOR


def pending_of(prefix: str, consumer_suffix: str) -> int:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        for c in client.xinfo_consumers(f"{prefix}:jobs", "workers"):
            if c["name"].endswith(consumer_suffix):
                return int(c["pending"])
        return 0
    finally:
        client.close()


async def test_a_worker_killed_mid_batch_loses_no_job_and_answers_each_once(db, prefix, tmp_path):
    async with gateway(db, prefix, sync_timeout_s=120) as client:
        images = [variant(BUS if i % 2 else ZIDANE, f"k{i}") for i in range(12)]
        accepted = [
            (await client.post("/analyze?async=true", content=im, headers=OPERATOR)).json()[
                "job_id"
            ]
            for im in images
        ]
        # Three synchronous callers wait through the crash as well.
        waiting = [
            asyncio.create_task(
                client.post("/analyze", content=variant(BUS, f"s{i}"), headers=OPERATOR)
            )
            for i in range(3)
        ]
        first = start_worker(
            db,
            prefix,
            tmp_path,
            name="first",
            model="yolov8s.yaml",
            imgsz=640,
            batch_size=4,
            batch_wait_ms=0,
            lease_s=2,
        )
        deadline = time.monotonic() + 60
        while pending_of(prefix, f"-{first.pid}") == 0:  # it holds a batch it has not answered
            assert time.monotonic() < deadline, first.log_text()
            await asyncio.sleep(0.01)
        first.kill()
        held = pending_of(prefix, f"-{first.pid}")
        assert held > 0
        second = start_worker(db, prefix, tmp_path, name="second", batch_size=8, lease_s=2)
        try:
            results = [await poll(client, f"/jobs/{job_id}", timeout=120) for job_id in accepted]
            answers = await asyncio.gather(*waiting)
        finally:
            second.stop()
    assert [r["status"] for r in results] == ["done"] * 12
    assert [a.status_code for a in answers] == [200] * 3
    taken_over = [r for r in results + [a.json() for a in answers] if r["attempts"] == 2]
    assert len(taken_over) >= 1  # the killed worker's batch, delivered a second time
    store = redis.Redis.from_url(REDIS_URL)
    try:
        # Answered once: each job's "done" list got exactly one element (the first write wins).
        job_ids = accepted + [a.json()["job_id"] for a in answers]
        for job_id in accepted:  # nobody popped these: async jobs
            assert store.llen(f"{prefix}:done:{job_id}") == 1
        assert len({store.get(f"{prefix}:result:{j}") for j in job_ids}) == 15
        assert store.xlen(f"{prefix}:jobs") == 0
        assert store.xpending(f"{prefix}:jobs", "workers")["pending"] == 0
    finally:
        store.close()


async def test_a_job_delivered_too_often_is_dead_lettered(db, prefix, tmp_path):
    async with gateway(db, prefix) as client:
        job_id = (await client.post("/analyze?async=true", content=BUS, headers=OPERATOR)).json()[
            "job_id"
        ]
        # A consumer that takes the job and never answers (as if it crashed on it every time).
        ghost = redis.Redis.from_url(REDIS_URL)
        try:
            ghost.xgroup_create(f"{prefix}:jobs", "workers", id="0")
            assert ghost.xreadgroup("workers", "ghost", {f"{prefix}:jobs": ">"}, count=1)
        finally:
            ghost.close()
        proc = start_worker(db, prefix, tmp_path, lease_s=0.5, ANALYSIS_MAX_ATTEMPTS="1")
        try:
            result = await poll(client, f"/jobs/{job_id}")
        finally:
            proc.stop()
        assert result["status"] == "failed" and result["attempts"] == 2
        assert result["error"]["type"] == "dead_letter" and "given up" in result["error"]["message"]
        # A synchronous caller of a dead-lettered job would get a 502 in the error model.


async def test_a_late_answer_from_a_worker_taken_over_is_dropped(db, prefix, tmp_path):
    """At-least-once delivery: a worker that was slow, not dead, answers after another took the
    job over; its answer must change nothing (first write wins) yet acknowledge the entry."""
    from services.analysis.queue import COMPLETE_SCRIPT, Keys, first_stream

    async with gateway(db, prefix) as client:
        job_id = (await client.post("/analyze?async=true", content=BUS, headers=OPERATOR)).json()[
            "job_id"
        ]
        slow = redis.Redis.from_url(REDIS_URL)
        try:
            slow.xgroup_create(f"{prefix}:jobs", "workers", id="0")
            [(entry_id, _fields)] = first_stream(
                slow.xreadgroup("workers", "slow", {f"{prefix}:jobs": ">"}, count=1)
            )
            # A lease long enough that the worker (on a loaded machine) finishes within it: one
            # take-over of the slow consumer's delivery, not a chain of its own.
            proc = start_worker(db, prefix, tmp_path, lease_s=3)
            try:
                first = await poll(client, f"/jobs/{job_id}")
            finally:
                proc.stop()
            keys = Keys(prefix)
            late = {**first, "model": "late-answer"}
            written = slow.register_script(COMPLETE_SCRIPT)(
                keys=[
                    keys.result(job_id),
                    keys.done(job_id),
                    keys.job(job_id),
                    keys.stream,
                    "",
                    keys.cache_index,
                    keys.vms_outbox,
                ],
                args=[str(late), 60, entry_id, "workers", 60, 10, 0, ""],
            )
            assert written == 0
            assert (await client.get(f"/jobs/{job_id}", headers=OPERATOR)).json() == first
            assert slow.llen(keys.done(job_id)) == 1
            assert slow.xpending(keys.stream, "workers")["pending"] == 0
        finally:
            slow.close()
    why = (first.get("error"), first.get("attempts"))
    assert first["status"] == "done" and first["attempts"] == 2, why


async def test_workers_and_the_gateway_ride_out_a_redis_restart(db, prefix, tmp_path):
    from tests.analysis.conftest import start_private_redis
    from tests.helpers.env import free_port

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_private_redis(port, tmp_path)
    worker = start_worker(db, prefix, tmp_path, redis_url=url)
    try:
        async with gateway(db, prefix, redis_url=url) as client:
            assert (await client.post("/analyze", content=BUS, headers=OPERATOR)).status_code == 200
            server.kill()  # Redis gone, and back empty (no persistence): no stream, no group
            r = await client.post("/analyze", content=ZIDANE, headers=OPERATOR)
            assert r.status_code == 503 and r.headers["retry-after"]
            cached = await client.post("/analyze", content=BUS, headers=OPERATOR)
            assert cached.status_code == 200 and cached.json()["cached"] is True  # the local LRU
            assert "unreachable" in (await client.get("/readyz")).json()["detail"]["redis"]
            await asyncio.sleep(1.5)
            assert worker.alive(), worker.log_text()
            server = start_private_redis(port, tmp_path)
            r = await client.post("/analyze", content=ZIDANE, headers=OPERATOR)
            assert r.status_code == 200 and r.json()["status"] == "done", r.text
            assert (await client.get("/readyz")).json()["detail"]["redis"] == "ok"
        assert "recreating" in worker.log_text()
    finally:
        worker.stop()
        server.kill()
