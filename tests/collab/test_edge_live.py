"""The edge half of issue 11, with real processes: an edge agent runs the real YOLO worker (random
yolov8n weights on ultralytics' bundled images) and the master's ``PUT /workloads/{name}`` changes
only the workload's ``live`` settings. Each behaviour starts and stops on the running worker, hot:
the worker's pid never changes.

- low-confidence routing: hard frames go up (the VMS inbox by default), stop when withdrawn;
- hand-off, source side: helped (local analysis paused), then "server" (frames up at a bounded
  rate), then handed back;
- focus: the focus profile (lower threshold, more uploads) until ``focus_until``, then normal;
- hand-off, helper side (hot): the running worker also reads the helped edge's camera (its URL in
  the agent's 0600 live secrets file) and posts under the helped nid, then drops it on hand-back.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.agent.helpers import Agent, ArtifactServer, kill_leftovers, package_bytes, wait_until
from tests.collab.stack import CAMERA_PASSWORD, Camera
from tests.edge_ai.recorder import Recorder
from tests.helpers.env import free_port

NAME = "yoloworker-10"


def bundled_frames(tmp_path: Path) -> Path:
    import ultralytics

    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(Path(ultralytics.__file__).parent / "assets" / name, frames / name)
    return frames


def yolo_spec(
    digest: str,
    frames: Path,
    vms_url: str,
    buffer_dir: Path,
    *,
    live: dict,
    nid: str = "0x41",
    extra_env: dict[str, str] | None = None,
) -> dict:
    return {
        "name": NAME,
        "package_digest": digest,
        "version": "01",
        "command": [
            "python",
            "-m",
            "edge_ai.yolo",
            "--source",
            str(frames),
            "--model",
            "yolov8n.yaml",
            "--imgsz",
            "160",
            "--rate",
            "3",
            "--min-conf",
            "0.00001",
            "--max-detections",
            "5",
            "--max-uploads",
            "1",
        ],
        "env": {
            "EDGE_VMS_URL": vms_url,
            "EDGE_NODE_ID": nid,
            "EDGE_BUFFER_DIR": str(buffer_dir),
            "EDGE_BACKOFF_MIN": "0.2",
            "EDGE_BACKOFF_MAX": "1",
            "YOLO_OFFLINE": "1",
            "YOLO_HELPED_MODE": "pause",
            **(extra_env or {}),
        },
        "edgeconfig_xml": (
            f"<Configuration><vms><IP>127.0.0.1</IP><Port>{vms_url.rsplit(':', 1)[1]}</Port>"
            "<Path>usage</Path></vms></Configuration>"
        ),
        "deployment_id": 7,
        "generation": 1,
        "live": live,
    }


@pytest.fixture
def edge(tmp_path):
    artifacts = ArtifactServer()
    vms = Recorder(free_port()).start()
    agent = Agent(tmp_path, artifacts.url, node="edge-41").start()
    digest = artifacts.add(
        package_bytes({"manifest.yaml": "filename: yoloworker\nai_class: '10'\n"})
    )
    yield {
        "agent": agent,
        "vms": vms,
        "digest": digest,
        "frames": bundled_frames(tmp_path),
        "tmp": tmp_path,
    }
    agent.close()
    kill_leftovers(agent.workdir)
    vms.stop()
    artifacts.close()


def put(edge, live: dict, live_secrets: dict | None = None, **kw) -> float:
    body = yolo_spec(
        edge["digest"], edge["frames"], edge["vms"].url, edge["tmp"] / "buffer", live=live, **kw
    )
    if live_secrets is not None:
        body["live_secrets"] = live_secrets
    r = edge["agent"].client.put(f"/workloads/{NAME}", json=body)
    assert r.status_code == 200, r.text
    return time.monotonic()


def summaries_since(vms: Recorder, count: int) -> list[dict]:
    return vms.of_kind("detections")[count:]


def test_routing_handoff_and_focus_reach_the_running_worker_hot(edge):
    agent, vms = edge["agent"], edge["vms"]
    put(edge, {})
    running = wait_until(
        lambda: (s := agent.status(NAME))["state"] == "running" and s,
        timeout=60,
        what="worker running",
    )
    pid = running["pid"]
    wait_until(
        lambda: any(d["frames"] > 0 for d in vms.of_kind("detections")),
        timeout=120,
        what="first summaries",
    )
    time.sleep(1.5)
    assert vms.uploads == []  # not routed: nothing goes up
    assert all(d["profile"] == "normal" for d in vms.of_kind("detections"))

    # 1. Low-confidence routing on: hard frames reach the VMS inbox (no analysis URL configured).
    t0 = put(edge, {"route_low_confidence": True})
    wait_until(lambda: len(vms.uploads) >= 3, timeout=30, what="frames sent up")
    first_up = time.monotonic() - t0
    meta = vms.uploads[0][0]
    assert (
        meta["nid"] == "0x41"
        and meta["reason"] == "low_confidence"
        and vms.uploads[0][1][:2] == b"\xff\xd8"
    )
    seen = len(vms.of_kind("detections"))
    wait_until(
        lambda: any(d["frames_sent_up"] > 0 for d in summaries_since(vms, seen)),
        what="share reported",
    )
    assert all(
        d["frames_sent_up"] <= 1 for d in vms.of_kind("detections")
    )  # --max-uploads 1 a second
    assert agent.status(NAME)["pid"] == pid and agent.status(NAME)["live"] == {
        "route_low_confidence": True
    }

    # Withdrawn: the uploads stop (what was already queued may still land).
    put(edge, {})
    time.sleep(2.5)
    settled = len(vms.uploads)
    time.sleep(3)
    assert len(vms.uploads) == settled
    assert agent.status(NAME)["pid"] == pid

    # 2. Helped by another edge: local analysis paused (YOLO_HELPED_MODE=pause), summaries say so.
    put(edge, {"analysis_route": "edge", "analysis_edge": "0x42"})
    seen = len(vms.of_kind("detections"))
    helped = wait_until(
        lambda: [d for d in summaries_since(vms, seen) if d["profile"] == "helped"][3:],
        timeout=15,
        what="helped profile",
    )
    # (A frame in flight at the switch may land in the first two seconds.)
    helped = [d for d in summaries_since(vms, seen) if d["profile"] == "helped"][2:]
    assert helped and all(d["frames"] == 0 for d in helped)
    # No helper: the server takes the frames over, at most --max-uploads a second.
    before = len(vms.uploads)
    put(edge, {"analysis_route": "server"})
    wait_until(
        lambda: [m for m, _ in vms.uploads[before:] if m["reason"] == "overload"][2:],
        timeout=15,
        what="frames to the server",
    )
    # Handed back: local analysis again.
    put(edge, {})
    seen = len(vms.of_kind("detections"))
    wait_until(
        lambda: any(
            d["profile"] == "normal" and d["frames"] > 0 for d in summaries_since(vms, seen)
        ),
        timeout=15,
        what="local analysis back",
    )
    assert agent.status(NAME)["pid"] == pid

    # 3. Focus for 6 s: lower threshold, more uploads; then back to normal on its own.
    until = datetime.now(UTC) + timedelta(seconds=6)
    put(edge, {"focus": True, "focus_until": until.isoformat(), "focus_source": "0x40"})
    seen = len(vms.of_kind("detections"))
    focused = wait_until(
        lambda: [d for d in summaries_since(vms, seen) if d["profile"] == "focus"],
        timeout=10,
        what="focus profile",
    )
    assert focused[0]["conf_threshold"] == pytest.approx(0.35)
    wait_until(
        lambda: any(d["profile"] == "normal" for d in summaries_since(vms, seen + len(focused))),
        timeout=15,
        what="focus over after its TTL",
    )
    last_focus = max(d["ts"] for d in vms.of_kind("detections") if d["profile"] == "focus")
    # (The second the TTL ends in is still summarised as focus.)
    ended = datetime.fromisoformat(last_focus.replace("Z", "+00:00"))
    assert ended <= until + timedelta(seconds=2.5)
    assert agent.status(NAME)["pid"] == pid and agent.status(NAME)["restarts"] == 0
    log = "\n".join(
        agent.client.get(f"/workloads/{NAME}/logs", params={"tail": 400}).json()["lines"]
    )
    assert "profile normal -> focus" in log and "profile focus -> normal" in log, log
    print(f"routing: first frame sent up {first_up:.2f} s after the agent was told")


def test_a_hand_off_is_taken_on_by_the_running_worker_and_dropped_on_hand_back(edge):
    """Hot hand-off, helper side: ``help_for`` in the live settings and the camera URL in the live
    secrets: the same process reads the helped camera (basic auth) and posts its summaries under
    the helped nid marked ``analysed_by``; the password is in the 0600 file only; hand-back stops
    the reads and the posts."""
    agent, vms = edge["agent"], edge["vms"]
    camera = Camera()
    secrets_file = agent.workdir / "live" / f"{NAME}.secrets.json"
    try:
        put(edge, {})
        pid = wait_until(
            lambda: (s := agent.status(NAME))["state"] == "running" and s["pid"],
            timeout=60,
            what="worker running",
        )
        wait_until(
            lambda: any(d["frames"] > 0 for d in vms.of_kind("detections")),
            timeout=120,
            what="first summaries",
        )
        assert not secrets_file.exists()

        put(edge, {"help_for": ["0x40"]}, live_secrets={"help_sources": {"0x40": camera.url}})
        seen = len(vms.of_kind("detections"))
        helped = wait_until(
            lambda: [
                d for d in summaries_since(vms, seen) if d["nid"] == "0x40" and d["frames"] > 0
            ][1:],
            timeout=30,
            what="summaries for the helped node",
        )
        assert all(d["analysed_by"] == "0x41" for d in helped)
        assert camera.hits > 0
        # Its own camera still analysed, under its own nid, unmarked.
        assert any(
            d["nid"] == "0x41" and d["frames"] > 0 and "analysed_by" not in d
            for d in summaries_since(vms, seen)
        )
        status = agent.status(NAME)
        assert status["pid"] == pid and status["restarts"] == 0  # no process started
        assert status["live"] == {"help_for": ["0x40"]}
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        log = "\n".join(
            agent.client.get(f"/workloads/{NAME}/logs", params={"tail": 400}).json()["lines"]
        )
        assert "helping 0x40: reading http://***:***@" in log
        assert CAMERA_PASSWORD not in log
        assert CAMERA_PASSWORD not in agent.client.get("/workloads").text
        assert CAMERA_PASSWORD not in agent.client.get(f"/workloads/{NAME}").text

        # Handed back: the worker drops the camera, the secrets file goes.
        put(edge, {})
        wait_until(
            lambda: (
                "no longer helping 0x40 (handed back)"
                in "\n".join(agent.client.get(f"/workloads/{NAME}/logs").json()["lines"])
            ),
            timeout=15,
            what="hand-back",
        )
        assert not secrets_file.exists()
        time.sleep(2)  # a summary already queued in the sender may still land
        hits, posted = (
            camera.hits,
            len([d for d in vms.of_kind("detections") if d["nid"] == "0x40"]),
        )
        time.sleep(3)
        assert camera.hits == hits
        assert len([d for d in vms.of_kind("detections") if d["nid"] == "0x40"]) == posted
        assert agent.status(NAME)["pid"] == pid
    finally:
        camera.close()
