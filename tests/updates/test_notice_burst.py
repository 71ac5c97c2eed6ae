"""A fleet-wide update: the master's notice publisher sends one retained notice per edge at once,
through the shipped broker configuration; every edge's notice arrives, and the master's log is
not flooded with a warning per publish (aiomqtt warns while more than 10 publishes are in flight).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiomqtt
import pytest
from prometheus_client import CollectorRegistry

from services.master.pull.notices import NoticePublisher
from shared.contracts.updates import UpdateNotice
from shared.mqtt import parse_broker_url
from tests.updates.broker import Broker, agent_password

EDGES = 300
READERS = ("0x1", "0x96", "0x12c")  # the first, a middle and the last edge log in as agents


async def test_a_burst_of_notices_arrives_whole_and_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Broker(tmp_path, nids=READERS).start()
    registry = CollectorRegistry()
    publisher = NoticePublisher(
        parse_broker_url(broker.master_url), registry=registry, spread_s=lambda: 0.3
    )

    def published() -> float:
        sample = registry.get_sample_value("master_update_notices_total", {"outcome": "published"})
        return sample or 0.0

    nids = [f"0x{i:x}" for i in range(1, EDGES + 1)]
    try:
        caplog.set_level(logging.INFO)
        publisher.start()
        for _ in range(100):
            if publisher.connected:
                break
            await asyncio.sleep(0.05)
        assert publisher.connected
        for nid in nids:
            publisher.notify(nid, tag="t-" + nid, generation=2)
        for _ in range(200):
            if published() >= EDGES:
                break
            await asyncio.sleep(0.05)
        sent = published()
        # Retained: an agent that connects afterwards (as one reconnecting) gets its notice.
        got: dict[str, UpdateNotice] = {}
        for nid in READERS:
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, username=nid, password=agent_password(nid)
            ) as agent:
                await agent.subscribe(f"edge/{nid}/desired", qos=1)
                async with asyncio.timeout(20):
                    async for message in agent.messages:
                        got[nid] = UpdateNotice.model_validate_json(bytes(message.payload or b""))
                        break
    finally:
        await publisher.stop()
        broker.stop()
    assert sent == EDGES
    assert sorted(got) == sorted(READERS)
    assert all(n.tag == "t-" + n.nid and n.generation == 2 for n in got.values())
    assert {n.spread_s for n in got.values()} == {0.3}
    flood = [r for r in caplog.records if "pending publish calls" in r.getMessage()]
    assert flood == [], f"{len(flood)} warnings such as {flood[0].getMessage()!r}"
