"""The spread rule (issue 24): a notice asks its agent to fetch within ``spread_s`` = the site's
pull edges / MASTER_PULL_FETCHES_PER_S (at most MASTER_PULL_SPREAD_MAX_S). Every notice of one
update carries the spread for the whole fleet, also when the pass brings the edges onto the
master's board for the first time (the first notices of that pass once carried a spread for the
edges committed before them: near 0 s, a burst). Real setup and master processes and the shipped
broker; the retained notices are read as each edge's agent reads its own."""

from __future__ import annotations

import asyncio

import aiomqtt
import httpx
import pytest

from shared.contracts.updates import UpdateNotice, notice_topic
from tests.helpers.env import OPERATOR, SERVICE, free_port, master_env, service_env
from tests.helpers.processes import start_service
from tests.updates.broker import MASTER_PASSWORD, Broker, agent_password
from tests.updates.test_pull_agent import upload

NIDS = ("0x01", "0x02", "0x03", "0x04")
RATE = 2.0  # fetches a second the master plans for: 4 edges -> 2 s


@pytest.fixture
def site(db, tmp_path):
    broker = Broker(tmp_path, nids=NIDS).start()
    setup_port, master_port = free_port(), free_port()
    common = dict(
        EDGE_SETUP_URL=f"http://127.0.0.1:{setup_port}",
        EDGE_MASTER_URL=f"http://127.0.0.1:{master_port}",
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
    )
    setup = start_service(
        "setup",
        env=service_env(db, SETUP_NOTIFY_MASTER="false", **common),  # one pass: the test's
        port=setup_port,
        tmp_path=tmp_path,
    )
    master = start_service(
        "master",
        port=master_port,
        tmp_path=tmp_path,
        env=master_env(
            db,
            tmp_path,
            **common,
            MASTER_MQTT_URL=f"mqtt://127.0.0.1:{broker.port}",
            MASTER_MQTT_USERNAME="master",
            MASTER_MQTT_PASSWORD=MASTER_PASSWORD,
            MASTER_PULL_FETCHES_PER_S=str(RATE),
        ),
    )
    try:
        yield common["EDGE_SETUP_URL"], common["EDGE_MASTER_URL"], broker
    finally:
        master.stop()
        setup.stop()
        broker.stop()


async def notice_of(broker: Broker, nid: str) -> UpdateNotice:
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username=nid, password=agent_password(nid)
    ) as agent:
        await agent.subscribe(notice_topic(nid), qos=1)
        async with asyncio.timeout(20):
            async for message in agent.messages:
                return UpdateNotice.model_validate_json(bytes(message.payload or b""))
    raise AssertionError(f"no notice for {nid}")


async def test_every_notice_of_an_update_is_spread_for_the_whole_fleet(site):
    setup_url, master_url, broker = site
    setup = httpx.Client(base_url=setup_url, headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=master_url, timeout=60)
    ai = await asyncio.to_thread(upload, master, "01", b"w" * 20_000)
    cluster = setup.post("/clusters", json={"name": "nat", "runtime": "agent-pull"}).json()
    edges = [
        setup.post("/edges", json={"name": f"e{nid}", "nid": nid, "cluster_id": cluster["id"]})
        for nid in NIDS
    ]
    ops = [{"op": "create", "edge_id": e.json()["id"], "ai_id": ai["id"]} for e in edges]
    r = setup.post("/deployments/bulk", json={"operations": ops}, headers=SERVICE)
    assert r.status_code == 200, r.text
    r = master.post("/reconcile", headers=OPERATOR)
    assert r.status_code < 300, r.text

    notices = [await notice_of(broker, nid) for nid in NIDS]
    assert [n.nid for n in notices] == list(NIDS)
    assert [n.spread_s for n in notices] == [len(NIDS) / RATE] * len(NIDS)
