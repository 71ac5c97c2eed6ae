"""The demo story of `edgectl up`, as an operator watches it: the stack's real processes (embedded
Postgres, the services, two edge agents running the monitoring AIs with their scripted SIMULATED
load and the YOLO worker), and the optimizer's decision log telling it: edge-01 overloaded ->
edge-02 helps -> handed back; a person on edge-01 -> edge-02 focuses -> the TTL ends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.stack.test_up import _get, _stack_env, _wait


@pytest.mark.timeout(600)
def test_the_demo_story_plays_and_the_decision_log_tells_it(tmp_path):
    data_dir = tmp_path / "data"
    env, ports = _stack_env(data_dir)
    env.update(
        EDGE_UP_STORY_PERIOD_S="120", EDGE_UP_ANALYSIS="false", EDGE_UP_WEATHER_PERIOD_S="600"
    )
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgectl.main", "up", "--plain"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    optimizer = f"http://127.0.0.1:{ports['optimizer']}"
    vms = f"http://127.0.0.1:{ports['vms']}"
    try:
        _wait("demo fleet seeded", lambda: "demo fleet seeded" in log.read_text(), 240, proc, log)
        token = json.loads((data_dir / "secrets.json").read_text())["EDGE_OPERATOR_TOKEN"]
        headers = {"Authorization": f"Bearer {token}"}

        def decisions(policy: str, edge: str) -> list[tuple[str, dict]]:
            found = _get(f"{optimizer}/decisions?policy={policy}&edge={edge}&limit=50", headers)
            return [(d["action"], d) for d in reversed((found or {}).get("items", []))]

        # The monitoring AIs report the scripted load, marked simulated in their logs.
        _wait(
            "edge-01's simulated load above 90 %",
            lambda: any(
                n["nid"] == "0x01" and (n.get("usage") or {}).get("cpu", 0) > 90
                for n in (_get(f"{vms}/nodes/state", headers) or {}).get("items", [])
            ),
            180,
            proc,
            log,
        )
        # 1. edge-01 overloads -> edge-02 helps -> handback.
        handoff = _wait(
            "overload handoff_to_edge on edge-01",
            lambda: [d for a, d in decisions("overload", "edge-01") if a == "handoff_to_edge"],
            120,
            proc,
            log,
        )[0]
        assert handoff["inputs"]["helper"] == "edge-02"
        assert handoff["inputs"]["cpu_avg"] > 85
        # The hand-off is carried out: edge-02's YOLO worker (onnxruntime, the demo model) reads
        # edge-01's camera and its detections are stored under 0x01, analysed_by 0x02.
        helped = _wait(
            "detections of edge-01's camera by edge-02",
            lambda: [
                d
                for d in (_get(f"{vms}/detections?nid=0x01&limit=50", headers) or {}).get(
                    "items", []
                )
                if "0x02" in (d.get("analysed_by") or "") and d.get("detections")
            ],
            120,
            proc,
            log,
        )
        assert helped[0]["model"] == "demo-yolov8" and helped[0]["frames"] >= 1
        _wait(
            "overload hand_back on edge-01 after the handoff",
            lambda: (
                [a for a, d in decisions("overload", "edge-01") if d["at"] > handoff["at"]][:1]
                == ["hand_back"]
            ),
            120,
            proc,
            log,
        )
        # 2. A person on edge-01 -> edge-02 focuses -> the TTL ends.
        # (one decision per analysis deployment of edge-02: the YOLO worker and the monitoring AI)
        _wait(
            "focus on and off on edge-02",
            lambda: (
                [a for a, _ in decisions("focus", "edge-02")][0:1] == ["focus_on"]
                and "focus_off" in [a for a, _ in decisions("focus", "edge-02")]
            ),
            250,
            proc,
            log,
        )
        on = next(d for a, d in decisions("focus", "edge-02") if a == "focus_on")
        assert on["inputs"]["source_nid"] == "0x01"
        assert decisions("focus", "edge-01") == []
        text = log.read_text()
        assert "a person on edge-01 (scripted detection)" in text
        assert "SIMULATED" in text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, log.read_text()[-3000:]
