"""GET /nodes/state built by Postgres: the full answer's shape, and ?since= returning only the
nodes whose state changed (for the optimizer's incremental mirror)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.helpers.env import OPERATOR
from tests.vms.conftest import edge_headers, fetch, field_date_time, vms

FIELDS = {
    "nid",
    "known",
    "authenticated",
    "condition",
    "condition_code",
    "previous_condition",
    "streak",
    "condition_since",
    "environment_at",
    "usage",
    "detections",
    "last_seen",
    "stale",
}


async def post_condition(client, nid: str, code: str, ts: datetime) -> None:
    date, time = field_date_time(ts)
    r = await client.post(
        "/save_edgeData",
        json={"nid": nid, "date": date, "time": time, "result": code},
        headers=edge_headers(nid),
    )
    assert r.status_code == 200, r.text


async def state(client, **params) -> dict:
    r = await client.get("/nodes/state", params=params, headers=OPERATOR)
    assert r.status_code == 200, r.text
    return r.json()


async def test_full_answer_shape_and_silent_nodes(db):
    async with vms(db, unknown_nodes="flag") as client:
        client.app.state.queries.directory.nids = frozenset(
            {"0x0a", "0x0b", "0x0c"}
        )  # 0x0c never reports
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        await post_condition(client, "0x0a", "0", base)
        r = await client.post(
            "/usage",
            json={"code": "0000", "message": "success", "cpu": 20, "memory": 30, "func": "SUNNY"},
            headers=edge_headers("0x0b"),
        )
        assert r.status_code == 200

        body = await state(client)
        assert set(body) == {"items", "generated_at", "stale_after_s", "conditions"}
        assert body["conditions"]["0"] == "SUNNY" and body["stale_after_s"] == 10.0
        assert datetime.fromisoformat(body["generated_at"]).tzinfo is not None
        items = {i["nid"]: i for i in body["items"]}
        assert [i["nid"] for i in body["items"]] == ["0x0a", "0x0b", "0x0c"]
        assert all(set(i) == FIELDS for i in items.values())
        a = items["0x0a"]
        assert a["condition"] == "SUNNY" and a["condition_code"] == "0" and a["streak"] == 1
        assert a["condition_since"] == base.isoformat()  # exactly Python's isoformat (no .000000)
        assert a["usage"] is None and a["detections"] is None and a["stale"] is False
        b = items["0x0b"]
        assert (
            b["usage"]["cpu"] == 20.0
            and b["usage"]["func"] == "SUNNY"
            and set(b["usage"]) == {"at", "cpu", "memory", "func", "cpu_avg", "memory_avg"}
        )
        assert b["condition"] is None and b["streak"] == 0
        assert items["0x0c"] == {
            "nid": "0x0c",
            "known": True,
            "authenticated": False,
            "condition": None,
            "condition_code": None,
            "previous_condition": None,
            "streak": 0,
            "condition_since": None,
            "environment_at": None,
            "usage": None,
            "detections": None,
            "last_seen": None,
            "stale": True,
        }
        assert [i["nid"] for i in (await state(client, include_silent="false"))["items"]] == [
            "0x0a",
            "0x0b",
        ]
        assert [i["nid"] for i in (await state(client, nids="0x0c,0x0b"))["items"]] == [
            "0x0b",
            "0x0c",
        ]


async def test_since_returns_only_nodes_changed_after_it(db):
    async with vms(db, unknown_nodes="flag", stale_after_s=3600) as client:
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
        for nid in ("0x01", "0x02", "0x03"):
            await post_condition(client, nid, "0", base)
        first = await state(client, include_silent="false")
        assert len(first["items"]) == 3
        mark = first["generated_at"]

        nothing = await state(client, since=mark)
        assert nothing["items"] == [] and nothing["generated_at"] >= mark

        await asyncio.sleep(0.01)
        await post_condition(client, "0x02", "2", base + timedelta(seconds=1))
        changed = await state(client, since=mark)
        assert [(i["nid"], i["condition"], i["previous_condition"]) for i in changed["items"]] == [
            ("0x02", "RAINY", "SUNNY")
        ]
        # The answer is the same item as the full answer gives for that node.
        full = {i["nid"]: i for i in (await state(client))["items"]}
        assert changed["items"][0] == full["0x02"]

        # Filters combine; an earlier since includes everything written after it.
        assert (await state(client, since=mark, nids="0x01"))["items"] == []
        early = (datetime.fromisoformat(mark) - timedelta(hours=1)).isoformat()
        assert [i["nid"] for i in (await state(client, since=early))["items"]] == [
            "0x01",
            "0x02",
            "0x03",
        ]

        # The next mark starts after the change: nothing again.
        assert (await state(client, since=changed["generated_at"]))["items"] == []


async def test_since_includes_nodes_that_turned_stale(db):
    async with vms(db, unknown_nodes="flag", stale_after_s=3600) as client:
        await post_condition(client, "0x05", "0", datetime.now(UTC) - timedelta(seconds=5))
        await post_condition(client, "0x06", "0", datetime.now(UTC) - timedelta(seconds=5))
        mark = (await state(client))["generated_at"]
        # 0x05 went silent long ago (its last report is older than stale_after_s): it turned stale
        # after the mark.
        await fetch(
            db,
            "UPDATE vms.node_state SET last_seen = now() - "
            "interval '3600 seconds' + interval '50 milliseconds' "
            "WHERE nid = '0x05'",
        )
        await fetch(
            db,
            "UPDATE vms.node_state SET updated_at = now() - interval '1 hour' WHERE nid = '0x05'",
        )
        await asyncio.sleep(0.2)
        items = (await state(client, since=mark))["items"]
        assert [(i["nid"], i["stale"]) for i in items] == [("0x05", True)]


async def test_since_needs_a_zone_and_a_time(db):
    async with vms(db, unknown_nodes="flag") as client:
        r = await client.get(
            "/nodes/state", params={"since": "2026-01-01T00:00:00"}, headers=OPERATOR
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "since"
        r = await client.get("/nodes/state", params={"since": "yesterday"}, headers=OPERATOR)
        assert r.status_code == 422 and r.json()["error"]["field"] == "since"
