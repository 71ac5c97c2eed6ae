"""The field's payloads, exactly as devices send them, over HTTP to a VMS on the real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.helpers.env import OPERATOR
from tests.vms.conftest import edge_headers, fetch, field_date_time, vms

SUCCESS = {"code": "0000", "message": "success"}


async def test_usage_as_numbers_and_as_strings_is_stored_and_read_back(vms_flag, db):
    as_numbers = {
        "code": "0000",
        "message": "success",
        "username": "edge-master-01-1129",
        "cpu": 12.5,
        "memory": 43.1,
        "func": "SUNNY",
    }
    as_strings = {
        "code": "0000",
        "message": "success",
        "username": "edge-master-01-1129",
        "cpu": "14.5",
        "memory": "44.0",
        "func": "SUNNY",
    }
    r = await vms_flag.post("/usage", json=as_numbers, headers=edge_headers("0x01"))
    assert r.status_code == 200 and r.json() == SUCCESS
    r = await vms_flag.post("/usage", json=as_strings, headers=edge_headers("0x01"))
    assert r.status_code == 200 and r.json() == SUCCESS

    rows = await fetch(
        db, "SELECT nid, cpu, memory, func, username, authenticated FROM vms.usage ORDER BY cpu"
    )
    assert [(r["nid"], r["cpu"], r["memory"], r["func"], r["authenticated"]) for r in rows] == [
        ("0x01", 12.5, 43.1, "SUNNY", True),
        ("0x01", 14.5, 44.0, "SUNNY", True),
    ]
    state = (await vms_flag.get("/nodes/state", headers=OPERATOR)).json()["items"]
    node = next(n for n in state if n["nid"] == "0x01")
    assert (
        node["usage"]["cpu"] == 14.5
        and node["usage"]["memory"] == 44.0
        and node["usage"]["func"] == "SUNNY"
    )
    assert 12.5 < node["usage"]["cpu_avg"] < 14.5
    assert node["stale"] is False and node["last_seen"] is not None

    series = (
        await vms_flag.get(
            "/nodes/0x01/series", params={"kind": "usage", "step": "1h"}, headers=OPERATOR
        )
    ).json()
    assert sum(p["samples"] for p in series["points"]) == 2
    assert max(p["cpu_max"] for p in series["points"]) == 14.5


async def test_usage_as_form_fields(vms_flag, db):
    form = {
        "code": "0000",
        "message": "success",
        "username": "u1",
        "cpu": "3",
        "memory": "4",
        "func": "RAINY",
        "nid": "0x07",
    }
    r = await vms_flag.post("/usage", data=form, headers=OPERATOR)
    assert r.status_code == 200 and r.json() == SUCCESS
    rows = await fetch(db, "SELECT nid, func FROM vms.usage")
    assert [(r["nid"], r["func"]) for r in rows] == [("0x07", "RAINY")]


async def test_environment_result_maps_to_condition_with_streak(vms_flag, db):
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    results = ["0", "0", 2, "2", "2"]  # a number and strings: both as the field sends them
    for i, result in enumerate(results):
        date, time = field_date_time(base + timedelta(seconds=i))
        body = {"nid": "0x02", "date": date, "time": time, "result": result}
        r = await vms_flag.post("/save_edgeData", json=body, headers=edge_headers("0x02"))
        assert r.status_code == 200 and r.json() == SUCCESS, r.text
    rows = await fetch(db, "SELECT result, condition FROM vms.environment ORDER BY ts")
    assert [(r["result"], r["condition"]) for r in rows] == [
        ("0", "SUNNY"),
        ("0", "SUNNY"),
        ("2", "RAINY"),
        ("2", "RAINY"),
        ("2", "RAINY"),
    ]
    node = (await vms_flag.get("/nodes/state", params={"nids": "0x02"}, headers=OPERATOR)).json()[
        "items"
    ][0]
    assert node["condition"] == "RAINY" and node["previous_condition"] == "SUNNY"
    assert node["streak"] == 3 and node["condition_code"] == "2"
    assert node["condition_since"] == (base + timedelta(seconds=2)).isoformat()

    series = (
        await vms_flag.get(
            "/nodes/0x02/series", params={"kind": "environment", "step": "1d"}, headers=OPERATOR
        )
    ).json()
    assert [p["last_condition"] for p in series["points"]][-1] == "RAINY"


async def test_bad_field_payloads_get_4xx_naming_the_field_and_store_nothing(vms_flag, db):
    date, time = field_date_time()
    cases = [
        (
            "/usage",
            {"username": "u", "cpu": "lots", "memory": 1, "func": "SUNNY", "nid": "0x01"},
            "cpu",
        ),
        (
            "/usage",
            {"username": "u", "cpu": 1, "memory": 101, "func": "SUNNY", "nid": "0x01"},
            "memory",
        ),
        (
            "/usage",
            {"username": "u", "cpu": 1, "memory": 1, "nid": "0x01", "func": "S" * 33},
            "func",
        ),
        (
            "/save_edgeData",
            {"nid": "0x01", "date": "20240230", "time": time, "result": "1"},
            "date",
        ),
        ("/save_edgeData", {"nid": "0x01", "date": date, "time": "246000", "result": "1"}, "time"),
        (
            "/save_edgeData",
            {"nid": "0x01", "date": "2024-08-08", "time": time, "result": "1"},
            "date",
        ),
        ("/save_edgeData", {"nid": "0x01", "date": date, "time": time}, "result"),
        # the date/time patterns hold beside the NUL rule (they were once replaced by it: 500)
        ("/save_edgeData", {"nid": "0x01", "date": date, "time": "x\u0018", "result": "1"}, "time"),
        (
            "/save_edgeData",
            {"nid": "0x01", "date": date, "time": "14250\u0663", "result": "1"},
            "time",
        ),
        (
            "/save_edgeData",
            {"nid": "0x01", "date": "2024080\u0668", "time": time, "result": "1"},
            "date",
        ),
    ]
    for path, body, field in cases:
        r = await vms_flag.post(path, json=body, headers=edge_headers("0x01"))
        assert 400 <= r.status_code < 500, (path, body, r.text)
        envelope = r.json()
        assert envelope["code"] != "0000" and field in envelope["message"], (field, envelope)
    r = await vms_flag.post(
        "/usage", content=b"{not json", headers={**OPERATOR, "content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["code"] == "1001"
    for table in ("usage", "environment", "node_state"):
        assert (await fetch(db, f"SELECT count(*) AS n FROM vms.{table}"))[0]["n"] == 0


async def test_oversized_body_is_refused(vms_flag, db):
    r = await vms_flag.post(
        "/usage",
        json={"message": "x" * 2_000_000, "cpu": 1, "memory": 1, "func": "S"},
        headers=OPERATOR,
    )
    assert r.status_code == 413
    assert (await fetch(db, "SELECT count(*) AS n FROM vms.usage"))[0]["n"] == 0


async def test_anonymous_posts_need_the_setting_and_are_marked(db):
    body = {
        "code": "0000",
        "message": "success",
        "username": "x",
        "cpu": 1,
        "memory": 2,
        "func": "SUNNY",
        "nid": "0x09",
    }
    async with vms(db, unknown_nodes="flag") as client:  # VMS_ALLOW_ANONYMOUS off (the default)
        r = await client.post("/usage", json=body)
        assert r.status_code == 401 and r.json()["code"] == "1401"
        assert (await fetch(db, "SELECT count(*) AS n FROM vms.usage"))[0]["n"] == 0
    async with vms(db, unknown_nodes="flag", allow_anonymous=True) as client:
        r = await client.post("/usage", json=body)
        assert r.status_code == 200
        # Anonymous posts stay a legacy-route privilege.
        r = await client.post("/batch", json={"records": [{"kind": "usage", "data": body}]})
        assert r.status_code == 401
    rows = await fetch(db, "SELECT nid, authenticated FROM vms.usage")
    assert [(r["nid"], r["authenticated"]) for r in rows] == [("0x09", False)]


async def test_edge_token_decides_the_node(vms_flag, db):
    date, time = field_date_time()
    r = await vms_flag.post(
        "/save_edgeData",
        json={"nid": "0x02", "date": date, "time": time, "result": "0"},
        headers=edge_headers("0x01"),
    )
    assert r.status_code == 403 and "nid" in r.json()["message"]
    r = await vms_flag.post(
        "/usage",
        json={"cpu": 1, "memory": 1, "func": "SUNNY"},
        headers={"Authorization": "Bearer edg_nope.x.y"},
    )
    assert r.status_code == 401
    # The field's usage payload has no nid: the token says which node it is.
    r = await vms_flag.post(
        "/usage",
        json={"username": "whatever", "cpu": 1, "memory": 1, "func": "SUNNY"},
        headers=edge_headers("0x05"),
    )
    assert r.status_code == 200
    rows = await fetch(db, "SELECT nid FROM vms.usage")
    assert [r["nid"] for r in rows] == ["0x05"]


# -- issue 15: the field's payloads exactly as its devices send them -----------------------------

KOREAN_SUCCESS = (
    "정상 처리되었습니다"  # "processed successfully", the first monitoring program's message
)


async def test_usage_without_func_and_with_a_device_login_name_is_stored(db):
    """Item 3: func is optional; a username setup cannot map is stored as reported, not refused."""
    first_program = {
        "code": "0000",
        "message": KOREAN_SUCCESS,
        "username": "edge-master-01-1129",
        "cpu": 12.5,
        "memory": 43.1,
    }
    async with vms(db, allow_anonymous=True) as client:  # VMS_UNKNOWN_NODES=reject, the default
        r = await client.post("/usage", json=first_program)
        assert r.status_code == 200 and r.json() == SUCCESS, r.text
        # With the edge's token the node is the token's, whatever the login name.
        with_func = {**first_program, "message": "success", "func": "SUNNY", "cpu": 20.0}
        r = await client.post("/usage", json=with_func, headers=edge_headers("0x01"))
        assert r.status_code == 200 and r.json() == SUCCESS, r.text
        # A refusal names each field once ("func: func: ..." was the old message).
        r = await client.post("/usage", json={**first_program, "func": "S" * 33, "cpu": "lots"})
        assert r.status_code == 422 and r.json()["message"].startswith("cpu: Input"), r.text
        assert "cpu: cpu:" not in r.json()["message"] and "; func: " in r.json()["message"]
    rows = await fetch(
        db, "SELECT nid, username, func, message, known, authenticated FROM vms.usage ORDER BY cpu"
    )
    assert [tuple(r) for r in rows] == [
        ("edge-master-01-1129", "edge-master-01-1129", None, KOREAN_SUCCESS, False, False),
        ("0x01", "edge-master-01-1129", "SUNNY", "success", True, True),
    ]


async def test_field_local_time_is_read_in_the_fleet_zone_korean_by_default(db):
    """Item 4: the field's devices send Korean local time; the error says which zone was assumed."""
    now = datetime.now(UTC).replace(microsecond=0)
    korean = now.astimezone(ZoneInfo("Asia/Seoul"))
    body = {
        "nid": "0x01",
        "date": korean.strftime("%Y%m%d"),
        "time": korean.strftime("%H%M%S"),
        "result": "4",
    }
    async with vms(db) as client:  # every setting at its default
        r = await client.post("/save_edgeData", json=body, headers=edge_headers("0x01"))
        assert r.status_code == 200 and r.json() == SUCCESS, r.text
        ahead = korean + timedelta(hours=1)
        late = {**body, "date": ahead.strftime("%Y%m%d"), "time": ahead.strftime("%H%M%S")}
        r = await client.post("/save_edgeData", json=late, headers=edge_headers("0x01"))
        assert r.status_code == 422 and r.json()["code"] == "1001"
        assert "Asia/Seoul" in r.json()["message"] and "in the future" in r.json()["message"], (
            r.text
        )
    async with vms(db, field_timezone="UTC") as client:  # a fleet whose devices run UTC
        r = await client.post("/save_edgeData", json=body, headers=edge_headers("0x01"))
        assert r.status_code == 422 and "read in UTC, the fleet default" in r.json()["message"], (
            r.text
        )
    rows = await fetch(db, "SELECT ts FROM vms.environment")
    assert [r["ts"] for r in rows] == [now]
