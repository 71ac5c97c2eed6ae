"""Item 4: the field's date/time strings are read in the edge's own zone (setup), else the fleet
default (VMS_FIELD_TIMEZONE, Asia/Seoul); a refused time says which zone was assumed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.field.test_replay import EDGE
from tests.helpers.env import OPERATOR
from tests.vms.conftest import fetch, field_date_time


async def test_each_edge_time_is_read_in_its_own_zone_or_the_fleet_default(field):
    r = await field.setup.post("/edges", json={**EDGE, "name": "korean-box"})
    assert r.status_code == 201 and r.json()["time_zone"] is None, r.text
    korean = r.json()["nid"]
    r = await field.setup.post("/edges", json={**EDGE, "name": "utc-box", "time_zone": "UTC"})
    assert r.status_code == 201 and r.json()["time_zone"] == "UTC", r.text
    utc = r.json()["nid"]
    r = await field.setup.post("/edges", json={**EDGE, "name": "bad", "time_zone": "Mars/Olympus"})
    assert r.status_code == 422 and "time_zone" in r.text

    now = datetime.now(UTC).replace(microsecond=0)
    async with field.vms(allow_anonymous=True) as vms:
        for nid, zone in ((korean, "Asia/Seoul"), (utc, "UTC")):
            date, time = field_date_time(now, zone)
            r = await vms.post(
                "/save_edgeData", json={"nid": nid, "date": date, "time": time, "result": "0"}
            )
            assert r.status_code == 200 and r.json()["code"] == "0000", (nid, r.text)
        # Korean time from the UTC box lies 9 hours ahead: refused, naming the zone assumed.
        date, time = field_date_time(now + timedelta(minutes=10), "Asia/Seoul")
        r = await vms.post(
            "/save_edgeData", json={"nid": utc, "date": date, "time": time, "result": "0"}
        )
        assert (
            r.status_code == 422 and "read in UTC, the edge's time zone" in r.json()["message"]
        ), r.text
    rows = await fetch(field.database_url, "SELECT nid, ts FROM vms.environment ORDER BY nid")
    assert {r["nid"]: r["ts"] for r in rows} == {korean: now, utc: now}

    # An operator changes an edge's zone; a VMS reading setup afresh uses it.
    edge_id = (await field.setup.get("/edges", params={"nid": utc})).json()["items"][0]["id"]
    r = await field.setup.patch(
        f"/edges/{edge_id}", json={"time_zone": "Asia/Seoul"}, headers=OPERATOR
    )
    assert r.status_code == 200 and r.json()["time_zone"] == "Asia/Seoul"
    async with field.vms(allow_anonymous=True) as vms:
        date, time = field_date_time(now, "Asia/Seoul")
        r = await vms.post(
            "/save_edgeData", json={"nid": utc, "date": date, "time": time, "result": "1"}
        )
        assert r.status_code == 200, r.text
