"""Issue 11 end to end: every optimizer decision changes what the edge does, hot, and the decision
log tells it. Setup, the master, the VMS, the optimizer and two edge agents run as processes; each
edge runs the real YOLO worker (random yolov8n weights on ultralytics' bundled images) uploaded as
an AI package. Each behaviour starts and stops on the edge without restarting its worker:

1. low-confidence routing: hard frames go up to the VMS inbox, then stop when the route goes;
2. overload: edge-01 overloaded -> edge-02's running worker (same pid: no process started) also
   reads edge-01's camera (its URL, with the password, through the agent's 0600 live secrets file)
   and posts under 0x01 marked analysed_by 0x02 while edge-01 pauses; handed back -> edge-02 drops
   the camera, edge-01 analyses again;
3. focus: a person seen on edge-01 -> edge-02 in focus until the TTL, then normal.
"""

from __future__ import annotations

import time
from functools import partial

import pytest

from tests.collab.stack import CAMERA_PASSWORD, Platform, wait_until
from tests.helpers.env import OPERATOR

YOLO = "yoloworker-10"


@pytest.fixture
def platform(db, tmp_path):
    p = Platform(db, tmp_path)
    yield p
    p.close()


def vms_inbox(p: Platform, nid: str) -> list[dict]:
    r = p.vms.get("/analysis", params={"nid": nid, "limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_routing_handoff_and_focus_happen_on_the_edge_hot_and_are_logged(platform: Platform):
    p = platform
    e1 = p.add_edge("edge-01", "0x01", 37.5000, 127.0)
    e2 = p.add_edge("edge-02", "0x02", 37.5040, 127.0)  # ~450 m away, same cluster
    ai = p.upload_yolo()
    # No routing at first: the share levels are out of reach, the load policies idle.
    p.policy("low_confidence", share_level=1.0, clear_level=1.0, window_s=0)
    p.policy("overload", window_s=0, recover_window_s=0)
    p.policy("focus", classes=["person"], radius_km=1.0, ttl_s=8)
    for nid in ("0x01", "0x02"):
        p.deploy(nid, ai)
    running = {
        nid: wait_until(
            partial(p.running, nid),
            timeout=120,
            what=f"the worker on {nid}",
        )
        for nid in ("0x01", "0x02")
    }
    pids = {nid: w["pid"] for nid, w in running.items()}
    wait_until(
        lambda: [s for s in p.summaries("0x01") if s["frames"] > 0][2:],
        timeout=120,
        what="edge-01's summaries in the VMS",
    )
    p.post_usage("0x01", 20, 30, samples=5)
    p.post_usage("0x02", 20, 30, samples=5)

    # 1. Low confidence: every result of random weights is below 0.5; at share_level 0.3 the
    # optimizer routes both edges up; the workers send hard frames to the VMS inbox.
    p.policy("low_confidence", share_level=0.3, clear_level=0.2, window_s=0)
    t0 = time.monotonic()
    p.cycle()
    wait_until(
        lambda: vms_inbox(p, "0x01"), timeout=30, what="edge-01's hard frames in the VMS inbox"
    )
    routed_after = time.monotonic() - t0
    [up] = p.decisions(policy="low_confidence", edge="edge-01")
    assert (
        up["action"] == "route_up" and up["operations"][0]["params"]["route_low_confidence"] is True
    )
    assert p.optimizer.get("/routing/0x01").json()["route_low_confidence"] is True
    # The share sent up is measured on the edge and reported to the VMS.
    wait_until(
        lambda: any(s["frames_sent_up"] > 0 for s in p.summaries("0x01", 20)),
        timeout=20,
        what="frames_sent_up reported",
    )
    # Withdrawn (the policy off): the uploads stop.
    p.policy("low_confidence", enabled=False)
    p.cycle()
    wait_until(
        lambda: p.workload("0x01")["live"] == {}, timeout=20, what="route withdrawn on the agent"
    )
    time.sleep(3)
    settled = len(vms_inbox(p, "0x01"))
    time.sleep(3)
    assert len(vms_inbox(p, "0x01")) == settled
    assert {nid: p.workload(nid)["pid"] for nid in pids} == pids  # hot: no restart
    down = p.decisions(policy="low_confidence", edge="edge-01")[0]
    assert down["action"] == "route_local" and "disabled" in down["reason"]

    # Before any hand-off, edge-02's token cannot post for 0x01, marked or not.
    refused = p.post_detection("0x01", {}, token_of="0x02", analysed_by="0x02", expect=403)
    assert "does not analyse 0x01" in refused.text
    p.post_detection("0x01", {}, token_of="0x02", expect=403)
    p.post_detection("0x01", {}, token_of="0x02", analysed_by="0x01", expect=403)

    # 2. Overload: edge-01 at 99 % cpu, edge-02 idle -> edge-02 helps, hot: edge-02's running
    # worker takes edge-01's camera as a second source (no new process).
    secrets_file = p.agents["0x02"].workdir / "live" / f"{YOLO}.secrets.json"
    p.post_usage("0x01", 99, 50, samples=30)
    t0 = time.monotonic()
    p.cycle()
    [handoff] = p.decisions(policy="overload", edge="edge-01")
    assert handoff["action"] == "handoff_to_edge" and handoff["inputs"]["helper_nid"] == "0x02"
    wait_until(
        lambda: "helping 0x01: reading" in p.logs("0x02", YOLO),
        timeout=30,
        what="edge-02's worker helping",
    )
    wait_until(
        lambda: "profile normal -> helped" in p.logs("0x01", YOLO),
        timeout=30,
        what="edge-01 paused",
    )
    seen = {s["id"] for s in p.summaries("0x01")}
    fresh = wait_until(
        lambda: [
            s
            for s in p.summaries("0x01")
            if s["id"] not in seen and s["frames"] > 0 and s["analysed_by"] == "0x02"
        ][2:],
        timeout=60,
        what="the helper's detections under 0x01",
    )
    helped_after = time.monotonic() - t0
    assert all(s["authenticated"] for s in fresh)
    # No process started: edge-02 runs its one worker, same pid, no restart; the hand-off is in
    # its live params (nids only) and the helper deployment is observed running in it.
    [only] = p.workloads("0x02")
    assert only["name"] == YOLO and only["pid"] == pids["0x02"] and only["restarts"] == 0
    assert only["live"] == {"help_for": ["0x01"]}
    copies = wait_until(
        lambda: [
            d
            for d in p.setup.get("/deployments", params={"edge_id": e2["id"]}).json()["items"]
            if d["params"].get("analysis_for") == "0x01" and d["observed"] == "running"
        ],
        timeout=30,
        what="the helper deployment observed running",
    )
    assert "hot hand-off" in copies[0]["observed_reason"]
    # The camera URL (with its password) reached the worker through the agent's 0600 secrets file
    # only: never in params, answers or logs.
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert CAMERA_PASSWORD in secrets_file.read_text()
    log = p.logs("0x02", YOLO)
    assert CAMERA_PASSWORD not in log and "***" in log
    for answer in (
        p.workloads("0x02"),
        p.setup.get("/deployments").json(),
        p.decisions(),
        p.master.get("/status", headers=OPERATOR).text,
    ):
        assert CAMERA_PASSWORD not in repr(answer)
    # The helper holds no credential of edge-01: it posts with edge-02's own token, which the VMS
    # takes for 0x01 because the optimizer's hand-off names 0x02.
    assert p.tokens["0x01"] not in repr(p.workloads("0x02"))
    # None of the helper's summaries is refused: the optimizer records the hand-off's route
    # before it writes the deployments that start the helper.
    assert "record refused" not in log, log
    assert p.cameras["0x01"].hits > 0
    assert p.workload("0x01")["pid"] == pids["0x01"]
    # Handed back: edge-01 calm again -> edge-02's worker drops the camera, edge-01 analyses again.
    p.post_usage("0x01", 5, 20, samples=60)
    p.cycle()
    wait_until(
        lambda: "no longer helping 0x01 (handed back)" in p.logs("0x02", YOLO),
        timeout=30,
        what="edge-02's worker handed back",
    )
    wait_until(
        lambda: "profile helped -> normal" in p.logs("0x01", YOLO),
        timeout=30,
        what="edge-01 resumed",
    )
    assert p.workload("0x02")["live"] == {} and not secrets_file.exists()
    time.sleep(2)  # a summary already queued in the worker's sender may still land
    hits = p.cameras["0x01"].hits
    helped = len([s for s in p.summaries("0x01") if s["analysed_by"] == "0x02"])
    time.sleep(3)
    assert p.cameras["0x01"].hits == hits  # nobody reads edge-01's camera any more
    assert len([s for s in p.summaries("0x01") if s["analysed_by"] == "0x02"]) == helped
    actions = [d["action"] for d in p.decisions(policy="overload", edge="edge-01")]
    assert actions == ["hand_back", "handoff_to_edge"]
    # Handed back: edge-02's token is refused for 0x01 again (within VMS_HANDOFF_CACHE_S).
    wait_until(
        lambda: (
            p.post_detection(
                "0x01", {}, token_of="0x02", analysed_by="0x02", expect=None
            ).status_code
            == 403
        ),
        timeout=10,
        what="the helper's token refused for 0x01 after the hand-back",
    )
    assert {nid: p.workload(nid)["pid"] for nid in pids} == pids

    # 3. Focus: a person on edge-01 -> edge-02 in focus (through the VMS's detection event).
    t0 = time.monotonic()
    p.post_detection("0x01", {"person": 1})
    wait_until(
        lambda: "profile normal -> focus" in p.logs("0x02", YOLO),
        timeout=30,
        what="edge-02 in focus",
    )
    focus_after = time.monotonic() - t0
    wait_until(
        lambda: "profile focus -> normal" in p.logs("0x02", YOLO), timeout=30, what="focus over"
    )
    wait_until(
        lambda: len(p.decisions(policy="focus", edge="edge-02")) == 2,
        timeout=20,
        what="focus_off logged",
    )
    assert [d["action"] for d in p.decisions(policy="focus", edge="edge-02")] == [
        "focus_off",
        "focus_on",
    ]
    assert p.decisions(policy="focus", edge="edge-01") == []
    assert {nid: p.workload(nid)["pid"] for nid in pids} == pids
    assert all(p.workload(nid)["restarts"] == 0 for nid in pids)
    print(
        f"decision -> edge: first frame up {routed_after:.2f} s, "
        f"helper's detections {helped_after:.2f} s, "
        f"focus in effect {focus_after:.2f} s"
    )
    assert e1["id"] != e2["id"]
