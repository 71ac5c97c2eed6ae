"""The weather AI's other sources: the frame classifier's documented rules, and the operator's
value set through the local API (the program runs as a real process against a recording server)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from edge_ai.weather.classifier import (
    FrameStats,
    Rules,
    SmoothedClassifier,
    classify_stats,
    frame_stats,
)
from tests.edge_ai.recorder import Recorder
from tests.helpers.env import free_port
from tests.helpers.processes import REPO, Proc, python_module, wait_http

cv2 = pytest.importorskip("cv2")
np = pytest.importorskip("numpy")


def asset(name: str):
    import ultralytics

    return cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / name))


def night(frame):
    return (frame * 0.15).astype(np.uint8)


def fog(frame):
    return cv2.addWeighted(
        cv2.GaussianBlur(frame, (21, 21), 0), 0.3, np.full_like(frame, 200), 0.7, 0
    )


def rain(frame):
    grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return (grey * 0.8).astype(np.uint8)


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        (FrameStats(brightness=40, saturation=90, contrast=50, sharpness=900), "NIGHT"),
        (FrameStats(brightness=180, saturation=10, contrast=20, sharpness=40), "FOGGY"),
        (FrameStats(brightness=200, saturation=20, contrast=60, sharpness=900), "SNOWY"),
        (FrameStats(brightness=100, saturation=30, contrast=50, sharpness=900), "RAINY"),
        (FrameStats(brightness=150, saturation=55, contrast=50, sharpness=900), "CLOUDY"),
        (FrameStats(brightness=150, saturation=90, contrast=50, sharpness=900), "SUNNY"),
    ],
)
def test_rules_first_match_wins(stats, expected):
    assert classify_stats(stats, Rules()) == expected


def test_rules_on_real_pictures():
    bus = asset("bus.jpg")
    assert classify_stats(frame_stats(bus)) == "SUNNY"
    assert classify_stats(frame_stats(night(bus))) == "NIGHT"
    assert classify_stats(frame_stats(fog(bus))) == "FOGGY"
    assert classify_stats(frame_stats(rain(bus))) == "RAINY"


def test_smoothing_needs_a_majority():
    bus = asset("bus.jpg")
    c = SmoothedClassifier(window=5)
    for _ in range(3):
        assert c.update(bus) == "SUNNY"
    assert c.update(night(bus)) == "SUNNY"  # one dark frame (a passing truck's shadow) is not night
    assert c.update(night(bus)) == "SUNNY"
    assert c.update(night(bus)) == "NIGHT"


def records_after(server: Recorder, start: int) -> list[str]:
    return [d["result"] for d in server.of_kind("environment")[start:]]


def wait_for(check, what: str, proc: Proc, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.alive(), proc.log_text()
        assert time.monotonic() < deadline, f"{what}\n{proc.log_text()[-2000:]}"
        time.sleep(0.2)


def test_classifier_source_and_operator_override(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.jpg"), night(asset("bus.jpg")))
    cv2.imwrite(str(frames / "b.jpg"), night(asset("zidane.jpg")))
    server = Recorder(free_port()).start()
    api = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "EDGE_VMS_URL": server.url,
        "EDGE_NODE_ID": "0x41",
        "EDGE_BUFFER_DIR": str(tmp_path / "buf"),
        "EDGE_API_PORT": str(api),
    }
    proc = Proc(
        python_module("edge_ai.weather", "--source", "classifier", "--video", str(frames)),
        env=env,
        log_path=tmp_path / "weather.log",
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: "5" in records_after(server, 0), "NIGHT (5) from the classifier", proc)
        wait_http(f"http://127.0.0.1:{api}/healthz", proc=proc)

        r = httpx.put(f"http://127.0.0.1:{api}/result", json={"result": "3"}, timeout=5)
        assert r.status_code == 200 and r.json() == {"result": "3", "override": True}
        mark = len(server.of_kind("environment"))
        wait_for(
            lambda: records_after(server, mark + 1)[:2] == ["3", "3"], "the operator's 3", proc
        )

        bad = httpx.put(f"http://127.0.0.1:{api}/result", json={"value": "3"}, timeout=5)
        assert bad.status_code == 400 and bad.json()["field"] == "result"
        assert (
            httpx.put(f"http://127.0.0.1:{api}/result", content=b"{", timeout=5).status_code == 400
        )

        assert httpx.delete(f"http://127.0.0.1:{api}/result", timeout=5).json()["override"] is False
        mark = len(server.of_kind("environment"))
        wait_for(
            lambda: records_after(server, mark + 1)[:2] == ["5", "5"],
            "back to the classifier",
            proc,
        )
        metrics = httpx.get(f"http://127.0.0.1:{api}/metrics", timeout=5).text
        assert "edge_vms_delivered_total" in metrics and "edge_vms_dropped_total 0.0" in metrics
    finally:
        code = proc.stop()
        server.stop()
    assert code == 0, proc.log_text()
    assert {d["nid"] for d in server.of_kind("environment")} == {"0x41"}
