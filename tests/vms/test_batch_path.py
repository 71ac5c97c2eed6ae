"""What keeps /batch lean without changing an answer: a body without NUL is validated without the
per-field NUL rule, and a request large enough to be a commit of its own does not wait for
others."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.vms.ingest.committer import GroupCommitter
from services.vms.ingest.metrics import IngestMetrics
from services.vms.ingest.schemas import NUL_FREE_VALIDATORS, PAYLOADS, free_of_nul
from tests.helpers.env import OPERATOR, settings_for
from tests.vms.conftest import fetch, vms

SAMPLES: dict[str, list[dict[str, Any]]] = {
    "usage": [
        {"cpu": "12.5", "memory": 43, "code": 0, "message": "  ok  ", "func": "SUNNY"},
        {"cpu": 1e9, "memory": -1, "username": "u" * 101},
        {"cpu": 1, "memory": 1, "func": "x" * 33, "nid": ""},
        {"cpu": "nan", "memory": 1, "ts": "2026-12-07T10:00:00"},
        {"memory": 1, "nid": "0x01", "extra": "ignored"},
    ],
    "environment": [
        {"nid": "0x01", "date": "20261207", "time": 92503, "result": " 2 "},
        {"nid": "0x01", "date": "2026120", "time": "246000", "result": ""},
    ],
    "detections": [
        {
            "ts": "2026-12-07T00:00:00Z",
            "model": "yolov8n",
            "model_version": "01",
            "fps": 5,
            "frames": 5,
            "conf_threshold": 0.5,
            "counts": {"person": 2},
            "detections": [{"class": "person", "confidence": 0.9, "box": [1, 2, 3, 4]}],
        },
        {
            "ts": "2026-12-07T00:00:00Z",
            "model": "",
            "model_version": "01",
            "fps": -1,
            "frames": 2**31,
            "conf_threshold": 2,
            "counts": {"car": -1},
            "detections": [{"class": "", "confidence": 2, "box": [1, 2, 3]}],
        },
    ],
}


def _outcome(validator, data):
    try:
        return validator.validate_python(data)
    except ValidationError as exc:
        return exc.errors(include_url=False)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_without_the_nul_rule_every_other_answer_is_the_payloads_own(kind):
    for data in SAMPLES[kind]:
        own = _outcome(PAYLOADS[kind].__pydantic_validator__, data)
        assert _outcome(NUL_FREE_VALIDATORS[kind], data) == own, data


def test_the_nul_free_validators_leave_out_the_nul_rule_only():
    data = {"cpu": 1, "memory": 1, "func": "SUN\x00NY"}
    with pytest.raises(ValidationError, match="NUL"):
        PAYLOADS["usage"].__pydantic_validator__.validate_python(data)
    assert NUL_FREE_VALIDATORS["usage"].validate_python(data).func == "SUN\x00NY"


def test_a_body_is_free_of_nul_only_without_an_escaped_or_raw_nul():
    assert free_of_nul(b'{"records": [{"kind": "usage", "data": {"func": "SUNNY"}}]}')
    assert not free_of_nul(b'{"func": "SUN\\u0000NY"}')
    assert not free_of_nul(b'{"func": "SUN\x00NY"}')
    # An escaped backslash before "u0000" is no NUL, but the body takes the checked way: safe.
    assert not free_of_nul(b'{"func": "SUN\\\\u0000NY"}')


async def test_a_batch_big_enough_for_a_commit_of_its_own_does_not_wait_the_window(db):
    """The window lets small requests join one commit; a request of COPY size is committed at
    once (before, it waited the window too)."""
    run = uuid.uuid4().hex[:8]
    records = [
        {"kind": "usage", "data": {"nid": "0x01", "cpu": 1, "memory": 2, "message": run}}
    ] * 300
    async with vms(db, unknown_nodes="flag", group_commit_window_ms=3000) as client:
        started = time.perf_counter()
        r = await client.post("/batch", json={"records": records}, headers=OPERATOR)
        elapsed = time.perf_counter() - started
    assert r.status_code == 200 and r.json()["stored"] == 300, r.text
    assert elapsed < 2.0, elapsed
    stored = await fetch(db, "SELECT count(*) AS n FROM vms.usage WHERE message = $1", run)
    assert stored[0]["n"] == 300


async def test_the_queued_gauge_reads_the_pending_records_when_scraped():
    """vms_ingest_queued_records is read at scrape time (no gauge update per request)."""
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    settings = settings_for("vms", "postgresql+asyncpg://127.0.0.1:1/none")
    committer = GroupCommitter(None, settings, metrics)  # never writes
    assert registry.get_sample_value("vms_ingest_queued_records") == 0
    waiting = asyncio.create_task(committer.submit([object()] * 3))  # type: ignore[list-item]
    await asyncio.sleep(0)
    assert registry.get_sample_value("vms_ingest_queued_records") == 3
    waiting.cancel()
