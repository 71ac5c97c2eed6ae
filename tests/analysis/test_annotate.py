"""What the seeds' users had: the annotated picture beside the JSON, a per-class count, and the
terminal client (``edgectl analyze``); on the default install's detector (the demo ONNX model,
onnxruntime, random weights)."""

from __future__ import annotations

import json
import subprocess

import cv2
import httpx
import numpy as np

from detectors.demo import DEMO_MODEL
from edgectl.analysis_cmd import parse_multipart
from tests.analysis.conftest import ASSETS, BUS, REDIS_URL, start_worker
from tests.helpers.env import OPERATOR, free_port, service_env
from tests.helpers.processes import edgectl, start_service


def test_annotated_answer_count_and_edgectl_analyze(database_url, prefix, tmp_path):
    env = service_env(
        database_url,
        EDGE_REDIS_URL=REDIS_URL,
        ANALYSIS_KEY_PREFIX=prefix,
        ANALYSIS_MODEL=str(DEMO_MODEL),
        ANALYSIS_RATE_PER_S="0",
    )
    port = free_port()
    gateway = start_service("analysis", env=env, port=port, tmp_path=tmp_path)
    worker = start_worker(database_url, prefix, tmp_path, model=str(DEMO_MODEL), imgsz=640)
    base = f"http://127.0.0.1:{port}"
    try:
        r = httpx.post(
            f"{base}/analyze",
            params={"annotate": "true"},
            content=BUS,
            headers={**OPERATOR, "Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("multipart/mixed; boundary=")
        parts = parse_multipart(r.headers["content-type"], r.content)
        assert [kind for kind, _ in parts] == ["application/json", "image/jpeg"]
        result = json.loads(parts[0][1])
        assert result["model"] == "demo-yolov8" and result["detections"]
        counted: dict[str, int] = {}
        for d in result["detections"]:
            counted[d["class"]] = counted.get(d["class"], 0) + 1
        assert result["count"] == counted
        drawn = cv2.imdecode(np.frombuffer(parts[1][1], np.uint8), cv2.IMREAD_COLOR)
        plain = cv2.imdecode(np.frombuffer(BUS, np.uint8), cv2.IMREAD_COLOR)
        assert drawn.shape == plain.shape == (1080, 810, 3)
        # The boxes are drawn in amber (BGR 0, 200, 255): the first box's top-left corner is.
        x1, y1 = (int(v) for v in result["detections"][0]["box"][:2])
        corner = drawn[min(y1 + 1, 1079), min(x1 + 1, 809)].astype(int)
        assert abs(corner - np.array([0, 200, 255])).max() < 60, corner

        refused = httpx.post(
            f"{base}/analyze",
            params={"annotate": "true", "async": "true"},
            content=BUS,
            headers=OPERATOR,
        )
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "annotate"

        # The terminal client: detections printed, annotated pictures saved.
        saved = tmp_path / "annotated"
        run = subprocess.run(
            edgectl(
                "analyze", str(ASSETS / "bus.jpg"), str(ASSETS / "zidane.jpg"), "--save", str(saved)
            ),
            env={**env, "EDGE_ANALYSIS_URL": base},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        count = len(result["detections"])
        assert f"bus.jpg: {count} detections (demo-yolov8, 810x1080, cached)" in run.stdout
        assert "zidane.jpg: " in run.stdout
        assert sorted(p.name for p in saved.iterdir()) == [
            "bus-annotated.jpg",
            "zidane-annotated.jpg",
        ]
        assert (saved / "bus-annotated.jpg").read_bytes()[:2] == b"\xff\xd8"

        as_json = subprocess.run(
            edgectl("analyze", str(ASSETS / "bus.jpg"), "--json"),
            env={**env, "EDGE_ANALYSIS_URL": base},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert as_json.returncode == 0, as_json.stderr
        line = json.loads(as_json.stdout)
        assert line["image"].endswith("bus.jpg") and line["count"] == counted
    finally:
        worker.stop()
        gateway.stop()
