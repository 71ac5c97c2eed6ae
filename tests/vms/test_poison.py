"""One bad record harms nobody else: a client looping records the database cannot store while
several good edges post, each good record acknowledged, each bad one refused (422 naming the
field, never a 503 its sender would retry forever); and the edge's client drops such a record,
counts it, and delivers what follows it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx

from edge_ai.common.config import EdgeConfig
from edge_ai.common.vms_client import VmsClient
from tests.helpers.env import OPERATOR
from tests.vms.conftest import edge_headers, fetch, vms


async def execute(database_url: str, sql: str) -> None:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


GOOD_EDGES = 6


def usage(nid: str, marker: str, **extra) -> dict:
    return {"nid": nid, "cpu": 12.5, "memory": 40, "func": "SUNNY", "message": marker, **extra}


def detections(nid: str, **extra) -> dict:
    ts = datetime.now(UTC).isoformat()
    body = {
        "nid": nid,
        "ts": ts,
        "model": "yolov8n",
        "model_version": "01",
        "fps": 5,
        "frames": 5,
        "conf_threshold": 0.5,
    }
    return {**body, **extra}


# What the adversarial run sent: a NUL in a string, 32-bit columns at 2^31, a NUL in a JSON key.
POISON = [
    ("/usage", usage("0x66", "p", func="SUN\u0000NY"), "func"),
    ("/usage", usage("0x66", "p\u0000"), "message"),
    ("/detections", detections("0x66", frames=2**31), "frames"),
    ("/detections", detections("0x66", below_threshold=2**31), "below_threshold"),
    ("/detections", detections("0x66", frames_sent_up=2**40), "frames_sent_up"),
    ("/detections", detections("0x66", counts={"car\u0000": 1}), "counts"),
    (
        "/save_edgeData",
        {"nid": "0x66", "date": "20261122", "time": "030000", "result": "2\u0000"},
        "result",
    ),
]


async def _poison_and_good(
    client: httpx.AsyncClient, run: str, seconds: float
) -> tuple[dict, dict, list[str]]:
    good_statuses: dict[int, int] = {}
    poison_statuses: dict[int, int] = {}
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def poisoner() -> None:
        i = 0
        while not stop.is_set():
            route, body, field = POISON[i % len(POISON)]
            r = await client.post(route, json=body, headers=OPERATOR)
            poison_statuses[r.status_code] = poison_statuses.get(r.status_code, 0) + 1
            assert r.status_code == 422, (route, r.status_code, r.text)
            assert field in r.text, (route, r.text)
            i += 1
            await asyncio.sleep(0)

    async def good(edge: int) -> None:
        nid = f"0x{edge + 1:02x}"
        i = 0
        while not stop.is_set():
            marker = f"{run}-{edge}-{i}"
            r = await client.post("/usage", json=usage(nid, marker), headers=edge_headers(nid))
            good_statuses[r.status_code] = good_statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                acknowledged.append(marker)
            i += 1

    tasks = [
        asyncio.create_task(poisoner()),
        *(asyncio.create_task(good(e)) for e in range(GOOD_EDGES)),
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return good_statuses, poison_statuses, acknowledged


async def test_a_client_looping_poison_records_harms_no_other_edge(db):
    run = uuid.uuid4().hex[:8]
    async with vms(db, unknown_nodes="flag", group_commit_window_ms=5.0) as client:
        good, poison, acknowledged = await _poison_and_good(client, run, seconds=3.0)
    stored = {
        r["message"]
        for r in await fetch(db, "SELECT message FROM vms.usage WHERE message LIKE $1", f"{run}-%")
    }
    print(
        f"good edges: {good} ({len(acknowledged)} "
        f"acknowledged, {len(stored)} stored); poison: {poison}"
    )
    assert sum(poison.values()) >= len(POISON) and set(poison) == {422}
    assert set(good) == {200}, good
    assert set(acknowledged) <= stored and len(acknowledged) > 0
    assert not await fetch(
        db,
        "SELECT 1 FROM vms.usage WHERE nid = '0x66' UNION "
        "ALL SELECT 1 FROM vms.detections WHERE nid = '0x66'",
    )


async def test_a_record_the_database_refuses_is_isolated_from_its_group_commit(db):
    """A value validation let through and the database refuses (simulated with a trigger): the
    group is split, that request alone gets 422, every other one in the group is committed."""
    run = uuid.uuid4().hex[:8]
    trigger = f"refuse_{run}"
    await execute(
        db,
        f"CREATE FUNCTION vms.{trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.message LIKE 'poison%' THEN RAISE EXCEPTION "
        "'value out of range' USING ERRCODE = '22003'; END IF; "
        f"RETURN NEW; END $$; CREATE TRIGGER {trigger} BEFORE INSERT "
        f"ON vms.usage FOR EACH ROW EXECUTE FUNCTION vms.{trigger}()",
    )
    try:
        async with vms(db, unknown_nodes="flag", group_commit_window_ms=20.0) as client:
            good_statuses: dict[int, int] = {}
            poison_statuses: dict[int, int] = {}

            async def post(i: int) -> None:
                poisoned = i % 7 == 0
                body = usage(f"0x{i % 5 + 1:02x}", f"{'poison' if poisoned else run}-{i}")
                r = await client.post("/usage", json=body, headers=OPERATOR)
                statuses = poison_statuses if poisoned else good_statuses
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if poisoned:
                    assert "refused" in r.text and r.json()["code"] == "1001", r.text

            await asyncio.gather(*(post(i) for i in range(140)))
    finally:
        await execute(
            db,
            f"DROP TRIGGER IF EXISTS {trigger} ON vms.usage; "
            f"DROP FUNCTION IF EXISTS vms.{trigger}()",
        )
    stored = await fetch(
        db, "SELECT count(*) AS n FROM vms.usage WHERE message LIKE $1", f"{run}-%"
    )
    print(f"good: {good_statuses}, poison: {poison_statuses}, stored {stored[0]['n']}")
    assert good_statuses == {200: 120} and poison_statuses == {422: 20}
    assert stored[0]["n"] == 120


async def test_the_edge_client_drops_a_refused_record_counts_it_and_sends_what_follows(
    db, tmp_path
):
    nid = "0x07"
    async with vms(db, unknown_nodes="flag") as vms_client:
        transport = httpx.ASGITransport(app=vms_client.app)  # type: ignore[attr-defined]
        http = httpx.AsyncClient(transport=transport, headers=edge_headers(nid), timeout=10)
        config = EdgeConfig(
            vms_url="http://vms",
            node_id=nid,
            buffer_dir=tmp_path,
            backoff_min=0.05,
            backoff_max=0.2,
        )
        client = VmsClient(config, program="t", http=http)
        client.start()
        try:
            client.submit("usage", usage(nid, "before"))
            client.submit("usage", usage(nid, "bad", func="SUN\u0000NY"))
            client.submit("detections", detections(nid, frames=2**31))
            client.submit("usage", usage(nid, "after"))
            for _ in range(200):
                stats = client.sender.stats()
                if stats["delivered"] + stats["rejected"] == 4:
                    break
                await asyncio.sleep(0.05)
        finally:
            await client.close()
            await http.aclose()
    print(f"edge client stats: {stats}")
    assert stats["delivered"] == 2 and stats["rejected"] == 2 and stats["buffered"] == 0
    stored = [
        r["message"]
        for r in await fetch(db, "SELECT message FROM vms.usage WHERE nid = $1 ORDER BY ts", nid)
    ]
    assert stored == ["before", "after"]


async def test_a_nul_in_a_multipart_field_post_is_refused_naming_the_field(vms_flag):
    """Multipart forms pass the shared request layer unread: the payload's own validation
    refuses."""
    fields = {"nid": "0x01", "cpu": "1", "memory": "1", "func": "SUN\x00NY"}
    r = await vms_flag.post(
        "/usage", files={k: (None, v) for k, v in fields.items()}, headers=OPERATOR
    )
    assert r.status_code == 422 and r.json()["code"] == "1001", r.text
    assert r.json()["message"].startswith("func:"), r.text


async def test_a_batch_with_a_poison_record_stores_the_others(vms_flag):
    good = usage("0x01", "batch-good")
    records = [
        {"kind": "usage", "data": good},
        {"kind": "usage", "data": usage("0x01", "batch-bad", func="SUN\u0000NY")},
        {"kind": "detections", "data": detections("0x01", frames=2**31)},
        {"kind": "usage", "data": {**good, "message": "batch-good-2"}},
    ]
    r = await vms_flag.post("/batch", json={"records": records}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] == 2 and body["rejected"] == 2, body
    fields = [x.get("field") for x in body["results"]]
    assert fields == [None, "records[1].data.func", "records[2].data.frames", None], body
