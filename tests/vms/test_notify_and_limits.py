"""Push events to the optimizer, 503 under overload, metrics, partitions and retention."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from datetime import UTC, datetime, timedelta

import uvicorn
from fastapi import FastAPI, Request

from services.vms.retention.jobs import maintain_partitions
from services.vms.storage.partitions import partition_name
from shared.contracts.events import Event, EventType
from tests.helpers.env import OPERATOR, free_port, service_credential
from tests.vms.conftest import fetch, field_date_time, vms
from tests.vms.test_ingest_ours import summary


@contextlib.asynccontextmanager
async def event_receiver():
    """An HTTP endpoint standing in for the optimizer's POST /events: it records what arrives."""
    received: list[dict] = []
    app = FastAPI()

    @app.post("/events", status_code=202)
    async def events(request: Request):
        assert request.headers["authorization"] == f"Bearer {service_credential('vms')}"  # its own
        received.append(await request.json())
        return {"accepted": True}

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.should_exit = True
        await task


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_condition_changes_detections_and_low_confidence_are_pushed(db):
    settings = dict(
        unknown_nodes="flag",
        notify_optimizer=True,
        event_classes="bus, fire",
        low_confidence_share=0.3,
        low_confidence_alpha=0.5,
    )
    async with (
        event_receiver() as (url, received),
        vms(db, optimizer_url=url, **settings) as client,
    ):
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=20)
        for i, result in enumerate(["0", "0", "2"]):
            date, time = field_date_time(base + timedelta(seconds=i))
            r = await client.post(
                "/save_edgeData",
                json={"nid": "0x01", "date": date, "time": time, "result": result},
                headers=OPERATOR,
            )
            assert r.status_code == 200
        calm = summary(base, below_threshold=0)
        assert (await client.post("/detections", json=calm, headers=OPERATOR)).status_code == 200
        unsure = summary(
            base + timedelta(seconds=1),
            below_threshold=30,
            counts={"person": 1},
            detections=[{"class": "person", "confidence": 0.6, "box": [0, 0, 1, 1]}],
        )
        assert (await client.post("/detections", json=unsure, headers=OPERATOR)).status_code == 200
        await _wait_for(lambda: len(received) >= 4)
    # Every event as the optimizer's contract reads it, with its producer's fields under data.
    events = [Event.model_validate(e) for e in received]
    for body, event in zip(received, events, strict=True):
        assert body["data"] == {k: v for k, v in body.items() if k not in ("type", "nid", "data")}
        assert event.nid == "0x01"
    changes = [e for e in events if e.type == EventType.CONDITION_CHANGED]
    assert [(e.condition, e.previous) for e in changes] == [("SUNNY", None), ("RAINY", "SUNNY")]
    assert [e.at for e in changes] == [base, base + timedelta(seconds=2)]
    assert changes[1].data == {"condition": "RAINY", "previous": "SUNNY", "at": received[1]["at"]}
    detections = [e for e in events if e.type == EventType.DETECTION]
    assert [(e.counts, e.at) for e in detections] == [({"bus": 1}, base)]
    low = [e for e in events if e.type == EventType.LOW_CONFIDENCE]
    assert len(low) == 1 and low[0].share is not None and low[0].share >= 0.3
    assert low[0].threshold == 0.3 and low[0].at == base + timedelta(seconds=1)
    assert len(events) == 4


async def test_an_absent_optimizer_never_blocks_ingest(db):
    # optimizer_url: nothing listens there
    async with vms(db, unknown_nodes="flag", notify_optimizer=True) as client:
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
        for i, result in enumerate(("0", "2", "0", "2")):
            date, time = field_date_time(base + timedelta(seconds=i))
            r = await client.post(
                "/save_edgeData",
                json={"nid": "0x01", "date": date, "time": time, "result": result},
                headers=OPERATOR,
            )
            assert r.status_code == 200
        # Each of the four condition changes was tried and counted as not delivered.
        failed = (
            'vms_outbox_deliveries_total{kind="condition_changed",outcome="failed",'
            'target="optimizer"} 4.0'
        )

        async def counted() -> bool:
            return failed in (await client.get("/metrics")).text

        deadline = asyncio.get_running_loop().time() + 5
        while not await counted():
            assert asyncio.get_running_loop().time() < deadline, (await client.get("/metrics")).text
            await asyncio.sleep(0.05)


async def test_overload_answers_503_with_retry_after_and_stores_only_the_acknowledged(db):
    async with vms(
        db, unknown_nodes="flag", queue_max_records=1, group_commit_window_ms=300
    ) as client:

        async def post(i: int):
            body = {"nid": "0x01", "cpu": 1, "memory": 1, "func": "SUNNY", "message": f"m{i}"}
            return await client.post("/usage", json=body, headers=OPERATOR)

        answers = await asyncio.gather(*(post(i) for i in range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert 200 in statuses and 503 in statuses, statuses
    for a in answers:
        if a.status_code == 503:
            assert a.headers["retry-after"] == "1" and a.json()["code"] == "1503"
    stored = {r["message"] for r in await fetch(db, "SELECT message FROM vms.usage")}
    acked = {f"m{i}" for i, a in enumerate(answers) if a.status_code == 200}
    assert stored == acked


async def test_ingest_metrics(vms_flag, db):
    await vms_flag.post(
        "/usage", json={"nid": "0x01", "cpu": 1, "memory": 1, "func": "SUNNY"}, headers=OPERATOR
    )
    await vms_flag.post(
        "/usage", json={"nid": "0x01", "cpu": "x", "memory": 1, "func": "SUNNY"}, headers=OPERATOR
    )
    text = (await vms_flag.get("/metrics")).text
    assert 'vms_records_stored_total{kind="usage"} 1.0' in text
    assert 'vms_records_rejected_total{reason="invalid"} 1.0' in text
    assert (
        "vms_commit_batch_records_bucket" in text and "vms_commit_duration_seconds_bucket" in text
    )
    assert (
        'http_requests_total{method="POST",route="/usage",service="vms",status="200"} 1.0' in text
    )
    # The per-node gauges the dashboards read (read from the last commit at scrape time).
    assert 'vms_node_cpu_percent{nid="0x01"} 1.0' in text
    assert 'vms_node_memory_percent{nid="0x01"} 1.0' in text
    stamp = re.search(r'vms_node_last_report_timestamp_seconds\{nid="0x01"\} (\S+)', text)
    assert stamp is not None and abs(float(stamp[1]) - time.time()) < 60, text
    assert "vms_ingest_queued_records 0.0" in text


async def test_partitions_on_demand_ahead_and_retention(db):
    today = datetime.now(UTC).date()
    async with vms(db, unknown_nodes="flag") as client:
        old = datetime.now(UTC) - timedelta(days=3)
        date, time = field_date_time(old)
        r = await client.post(
            "/batch",
            json={
                "records": [
                    {
                        "kind": "environment",
                        "data": {"nid": "0x01", "date": date, "time": time, "result": "0"},
                    },
                    {
                        "kind": "usage",
                        "data": {
                            "nid": "0x01",
                            "cpu": 1,
                            "memory": 1,
                            "func": "SUNNY",
                            "ts": old.isoformat(),
                        },
                    },
                    {
                        "kind": "usage",
                        "data": {"nid": "0x01", "cpu": 2, "memory": 2, "func": "SUNNY"},
                    },
                ]
            },
            headers=OPERATOR,
        )
        assert r.json()["stored"] == 3
        names = {
            r["relname"]
            for r in await fetch(
                db,
                "SELECT relname FROM pg_class WHERE relname LIKE "
                "'usage_p%' OR relname LIKE 'environment_p%'",
            )
        }
        assert (
            partition_name("usage", old.date()) in names
            and partition_name("environment", old.date()) in names
        )
        assert partition_name("usage", today + timedelta(days=2)) in names  # created ahead at start

        settings = client.app.state.settings.model_copy(update={"retention_days": 1})
        dropped = await maintain_partitions(client.app.state.ingest_pool, settings)
        assert partition_name("usage", old.date()) in dropped
        # After retention the VMS still stores records for a day it had seen (the cache is
        # refreshed).
        r = await client.post(
            "/usage", json={"nid": "0x01", "cpu": 3, "memory": 3, "func": "SUNNY"}, headers=OPERATOR
        )
        assert r.status_code == 200
    rows = await fetch(db, "SELECT cpu FROM vms.usage ORDER BY cpu")
    assert [r["cpu"] for r in rows] == [2.0, 3.0]
