"""Our own routes: the YOLO worker's /detections and the agents' /batch, read back through the query
API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.helpers.env import OPERATOR
from tests.vms.conftest import edge_headers, fetch, field_date_time, vms


def summary(ts: datetime, nid: str = "0x01", **over) -> dict:
    body = {
        "nid": nid,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "model": "yolov8n",
        "model_version": "01",
        "fps": 4.8,
        "frames": 5,
        "inference_ms": {"mean": 41.2, "p50": 40.0, "max": 60.1},
        "conf_threshold": 0.5,
        "counts": {"person": 2, "bus": 1},
        "detections": [
            {"class": "bus", "class_id": 5, "confidence": 0.91, "box": [10, 20, 200, 180]},
            {"class": "person", "class_id": 0, "confidence": 0.55, "box": [1.5, 2.5, 30.0, 80.0]},
            {"class": "person", "class_id": 0, "confidence": 0.72, "box": [40, 2, 60, 90]},
        ],
        "below_threshold": 3,
        "frames_sent_up": 1,
    }
    body.update(over)
    return body


async def test_detections_summary_is_stored_and_filterable(vms_flag, db):
    t0 = datetime.now(UTC) - timedelta(seconds=10)
    r = await vms_flag.post("/detections", json=summary(t0), headers=edge_headers("0x01"))
    assert r.status_code == 200 and r.json()["status"] == "stored", r.text
    quiet = summary(
        t0 + timedelta(seconds=1),
        counts={"car": 1},
        below_threshold=0,
        detections=[{"class": "car", "class_id": 2, "confidence": 0.97, "box": [0, 0, 5, 5]}],
    )
    r = await vms_flag.post("/detections", json=quiet, headers=edge_headers("0x01"))
    assert r.status_code == 200

    page = (await vms_flag.get("/detections", params={"nid": "0x01"}, headers=OPERATOR)).json()
    assert page["total"] == 2 and [i["counts"] for i in page["items"]] == [
        {"car": 1},
        {"person": 2, "bus": 1},
    ]
    first = page["items"][1]
    assert first["model"] == "yolov8n" and first["model_version"] == "01" and first["fps"] == 4.8
    assert first["detections"][0] == {
        "class": "bus",
        "class_id": 5,
        "confidence": 0.91,
        "box": [10.0, 20.0, 200.0, 180.0],
    }
    assert (
        first["below_threshold"] == 3
        and first["min_confidence"] == 0.55
        and first["inference_mean_ms"] == 41.2
    )

    q = {"class": "person", "confidence_below": 0.6}
    assert (await vms_flag.get("/detections", params=q, headers=OPERATOR)).json()["total"] == 1
    q = {"class": "bus", "confidence_below": 0.6}  # the bus is sure; a person is not: no match
    assert (await vms_flag.get("/detections", params=q, headers=OPERATOR)).json()["total"] == 0
    assert (await vms_flag.get("/detections", params={"class": "car"}, headers=OPERATOR)).json()[
        "total"
    ] == 1
    p = (
        await vms_flag.get("/detections", params={"limit": 1, "offset": 1}, headers=OPERATOR)
    ).json()
    assert (
        p["total"] == 2
        and len(p["items"]) == 1
        and p["items"][0]["counts"] == {"person": 2, "bus": 1}
    )

    node = (await vms_flag.get("/nodes/state", params={"nids": "0x01"}, headers=OPERATOR)).json()[
        "items"
    ][0]
    assert node["detections"]["counts"] == {"car": 1} and node["detections"]["model"] == "yolov8n"
    # 3 of 6 results below the threshold, then 0 of 1: the share is weighted towards the recent
    # past.
    assert 0 < node["detections"]["low_confidence_share"] < 0.5

    series = (
        await vms_flag.get(
            "/nodes/0x01/series", params={"kind": "detections", "step": "1h"}, headers=OPERATOR
        )
    ).json()
    assert sum(p["detected"] for p in series["points"]) == 4


async def test_bad_detections_get_422_naming_the_field(vms_flag, db):
    now = datetime.now(UTC)
    bad = [
        (summary(now, fps="fast"), "fps"),
        (
            summary(now, detections=[{"class": "bus", "confidence": 1.5, "box": [0, 0, 1, 1]}]),
            "detections.0.confidence",
        ),
        (
            summary(now, detections=[{"class": "bus", "confidence": 0.5, "box": [0, 0, 1]}]),
            "detections.0.box",
        ),
        (summary(now + timedelta(days=2)), "ts"),
        (summary(now - timedelta(days=400)), "ts"),
        ({k: v for k, v in summary(now).items() if k != "model"}, "model"),
    ]
    for body, field in bad:
        r = await vms_flag.post("/detections", json=body, headers=edge_headers("0x01"))
        assert r.status_code == 422, (field, r.text)
        assert r.json()["error"]["field"] == field, r.json()
    assert (await fetch(db, "SELECT count(*) AS n FROM vms.detections"))[0]["n"] == 0


async def test_mixed_batch_stores_the_good_and_reports_the_bad(vms_flag, db):
    date, time = field_date_time()
    now = datetime.now(UTC)
    records = [
        {"kind": "usage", "data": {"username": "u", "cpu": "10", "memory": 20, "func": "SUNNY"}},
        {
            "kind": "environment",
            "data": {"nid": "0x03", "date": "20241340", "time": time, "result": "1"},
        },
        {"kind": "environment", "data": {"nid": "0x03", "date": date, "time": time, "result": "1"}},
        {"kind": "weather", "data": {}},
        {"kind": "detections", "data": summary(now, nid="0x03")},
        {"kind": "usage", "data": {"nid": "0x04", "cpu": 1, "memory": 1, "func": "SUNNY"}},
        "not an object",
    ]
    r = await vms_flag.post("/batch", json={"records": records}, headers=edge_headers("0x03"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] == 3 and body["rejected"] == 4
    assert body["results"][0] == {"index": 0, "status": "stored"}
    assert (
        body["results"][1]["status"] == "rejected"
        and body["results"][1]["field"] == "records[1].data.date"
    )
    assert body["results"][3]["field"] == "records[3].kind"
    assert (
        body["results"][5]["field"] == "records[5].data.nid"
    )  # another node's record under 0x03's token
    assert body["results"][6]["field"] == "records[6]"
    counts = await fetch(
        db,
        "SELECT (SELECT count(*) FROM vms.usage) AS u, "
        "(SELECT count(*) FROM vms.environment) AS e, "
        "(SELECT count(*) FROM vms.detections) AS d",
    )
    assert dict(counts[0]) == {"u": 1, "e": 1, "d": 1}
    node = (await vms_flag.get("/nodes/state", params={"nids": "0x03"}, headers=OPERATOR)).json()[
        "items"
    ][0]
    assert node["condition"] == "CLOUDY" and node["usage"]["cpu"] == 10.0


async def test_batch_envelope_errors(vms_flag, db):
    r = await vms_flag.post("/batch", json={"items": []}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()["error"]["field"] == "records"
    async with vms(db, unknown_nodes="flag", batch_max_records=2) as client:
        r = await client.post("/batch", json={"records": [{}, {}, {}]}, headers=OPERATOR)
        assert r.status_code == 422 and r.json()["error"]["field"] == "records"


async def test_buffered_records_replayed_late_do_not_move_the_current_state(vms_flag, db):
    now = datetime.now(UTC).replace(microsecond=0)
    d1, t1 = field_date_time(now - timedelta(seconds=5))
    d0, t0 = field_date_time(now - timedelta(minutes=10))
    r = await vms_flag.post(
        "/save_edgeData",
        json={"nid": "0x06", "date": d1, "time": t1, "result": "2"},
        headers=OPERATOR,
    )
    assert r.status_code == 200
    old = {"kind": "environment", "data": {"nid": "0x06", "date": d0, "time": t0, "result": "0"}}
    r = await vms_flag.post("/batch", json={"records": [old]}, headers=OPERATOR)
    assert r.json()["stored"] == 1
    node = (await vms_flag.get("/nodes/state", params={"nids": "0x06"}, headers=OPERATOR)).json()[
        "items"
    ][0]
    assert node["condition"] == "RAINY" and node["streak"] == 1
    assert (await fetch(db, "SELECT count(*) AS n FROM vms.environment"))[0]["n"] == 2


async def test_queries_need_a_token_and_validate(vms_flag, db):
    assert (await vms_flag.get("/nodes/state")).status_code == 401
    r = await vms_flag.get(
        "/nodes/0x01/series",
        params={"step": "1s", "start": "2020-01-01T00:00:00Z"},
        headers=OPERATOR,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "step"
    r = await vms_flag.get("/nodes/0x01/series", params={"step": "often"}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()["error"]["field"] == "step"
    r = await vms_flag.get("/detections", params={"limit": 100000}, headers=OPERATOR)
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"


async def test_large_batch_takes_the_copy_path_with_the_same_results(vms_flag, db):
    from services.vms.storage.writer import COPY_FROM_RECORDS

    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    records = []
    for i in range(COPY_FROM_RECORDS):
        ts = base + timedelta(seconds=i)
        date, time = field_date_time(ts)
        nid = f"0x2{(i // 3) % 3}"
        kind = ("usage", "environment", "detections")[i % 3]
        if kind == "usage":
            data = {"nid": nid, "cpu": i % 100, "memory": 10, "func": "SUNNY", "ts": ts.isoformat()}
        elif kind == "environment":
            data = {"nid": nid, "date": date, "time": time, "result": "0" if i < 150 else "2"}
        else:
            data = summary(ts, nid=nid)
        records.append({"kind": kind, "data": data})
    r = await vms_flag.post("/batch", json={"records": records}, headers=OPERATOR)
    assert r.status_code == 200 and r.json()["stored"] == COPY_FROM_RECORDS, r.text
    counts = await fetch(
        db,
        "SELECT (SELECT count(*) FROM vms.usage) AS u, (SELECT count(*) FROM "
        "vms.environment) AS e, (SELECT count(*) FROM vms.detections) AS d",
    )
    assert sum(dict(counts[0]).values()) == COPY_FROM_RECORDS
    det = await fetch(
        db,
        "SELECT counts->>'bus' AS bus, detections->0->>'class' "
        "AS first FROM vms.detections LIMIT 1",
    )
    assert (det[0]["bus"], det[0]["first"]) == ("1", "bus")
    node = (await vms_flag.get("/nodes/state", params={"nids": "0x21"}, headers=OPERATOR)).json()[
        "items"
    ][0]
    env_samples = [x for x in records if x["kind"] == "environment" and x["data"]["nid"] == "0x21"]
    rainy = [x for x in env_samples if x["data"]["result"] == "2"]
    assert (
        node["condition"] == "RAINY"
        and node["previous_condition"] == "SUNNY"
        and node["streak"] == len(rainy)
    )
    assert node["detections"]["counts"] == {"person": 2, "bus": 1}


async def test_a_helpers_summaries_are_marked_analysed_by_it(vms_flag, db):
    """Overload hand-off: the helper (0x02) posts under the source node (0x01) with the source's
    token and says it analysed them; the VMS keeps that and shows it per item, per series bucket
    and in the node's state. The source's own summaries carry none."""
    t0 = datetime.now(UTC) - timedelta(seconds=20)
    own = summary(t0)
    helped = summary(t0 + timedelta(seconds=1), analysed_by="0x02")
    for body in (own, helped):
        r = await vms_flag.post("/detections", json=body, headers=edge_headers("0x01"))
        assert r.status_code == 200, r.text
    page = (await vms_flag.get("/detections", params={"nid": "0x01"}, headers=OPERATOR)).json()
    assert [i["analysed_by"] for i in page["items"]] == ["0x02", None]
    series = (
        await vms_flag.get(
            "/nodes/0x01/series", params={"kind": "detections", "step": "1h"}, headers=OPERATOR
        )
    ).json()
    assert [p["analysed_by"] for p in series["points"] if p["analysed_by"]] == [["0x02"]]
    node = (await vms_flag.get("/nodes/state", params={"nids": "0x01"}, headers=OPERATOR)).json()[
        "items"
    ][0]
    assert node["detections"]["analysed_by"] == "0x02"
    # Through /batch too (an agent replaying what it buffered), and a bad value names the field.
    late = summary(t0 + timedelta(seconds=2), analysed_by="0x03")
    r = await vms_flag.post(
        "/batch",
        json={"records": [{"kind": "detections", "data": late}]},
        headers=edge_headers("0x01"),
    )
    assert r.status_code == 200, r.text
    page = (await vms_flag.get("/detections", params={"nid": "0x01"}, headers=OPERATOR)).json()
    assert page["items"][0]["analysed_by"] == "0x03"
    r = await vms_flag.post(
        "/detections", json=summary(t0, analysed_by="x" * 40), headers=edge_headers("0x01")
    )
    assert r.status_code == 422 and "analysed_by" in r.text
