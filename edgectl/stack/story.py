"""The demo's scripted story (`edgectl up`): what an operator watches in the live view.

Every ``period_s`` of the wall clock (``EDGE_UP_STORY_PERIOD_S``, default 240):

1. edge-01's monitoring AI reports a SIMULATED load (``MONITORING_LOAD_PROFILE``): calm, then
   96 % cpu from 10 % of the period to 50 %, then calm again; edge-02's stays calm (20 %);
   the optimizer hands edge-01's analysis to edge-02 (``overload handoff_to_edge``), whose helper
   copy reads edge-01's camera (the demo camera below), then hands it back (``hand_back``);
2. at 70 % of the period a detection of a person on edge-01 is posted to the VMS (a scripted
   summary, model ``demo-story``: the demo's YOLO has random weights and sees no person), and the
   optimizer raises focus on edge-02 (``focus focus_on``) until its TTL ends (``focus_off``).

Steps 1's hand-off and 2's focus need an analysis AI on the edges: the YOLO worker, deployed on
both edges. It runs on the default install (onnxruntime, the demo ONNX model: random weights, its
boxes mean nothing); the helper's summaries of edge-01's camera are stored under 0x01 with
``analysed_by`` 0x02.

The demo camera is a snapshot URL served by `edgectl up` itself (``http://demo:<password>@127.0.0.1:
<port>/frame.jpg``: the pictures ultralytics ships when it is installed, else drawn ones, see
``demo_pictures``), registered as edge-01's and edge-02's camera: the helper reads it with the
password the master hands over as a secret.
"""

from __future__ import annotations

import base64
import itertools
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edge_ai.common.http import CallFailed, EdgeSyncClient

log = logging.getLogger("edgectl.story")

CALM, BUSY, HELPER = (25, 40), (96, 55), (20, 35)
RISE, FALL, DETECT = 0.1, 0.5, 0.7  # fractions of the period


@dataclass(frozen=True)
class Story:
    period_s: float

    def profile(self, nid: str) -> dict[str, str]:
        """The monitoring AI's params for a demo edge: its scripted (simulated) load."""
        p = self.period_s
        if nid == "0x01":
            steps = [(0, *CALM), (RISE * p, *BUSY), (FALL * p, *CALM)]
        else:
            steps = [(0, *HELPER)]
        text = ",".join(f"{at:g}:{cpu}:{mem}" for at, cpu, mem in steps)
        return {"MONITORING_LOAD_PROFILE": text, "MONITORING_LOAD_PERIOD_S": f"{p:g}"}

    def optimizer_env(self) -> dict[str, str]:
        """Policy settings that let the story play within its period."""
        p = self.period_s
        return {
            "OPTIMIZER_RESYNC_SECONDS": "5",
            "OPTIMIZER_OVERLOAD__WINDOW_S": f"{max(5.0, 0.05 * p):g}",
            "OPTIMIZER_OVERLOAD__RECOVER_WINDOW_S": f"{max(10.0, 0.08 * p):g}",
            "OPTIMIZER_FOCUS__TTL_S": f"{max(10.0, 0.12 * p):g}",
        }

    def phase(self, now: float | None = None) -> float:
        return ((time.time() if now is None else now) % self.period_s) / self.period_s


class StoryTeller:
    """Posts the scripted detection once per period, when the period passes ``DETECT``; called
    from the stack's watch loop (no thread of its own)."""

    def __init__(self, story: Story, vms_url: str, token_file: Path):
        self.story = story
        self.vms_url = vms_url.rstrip("/")
        self.token_file = token_file
        self._last_period: int | None = None

    def tick(self, client: EdgeSyncClient) -> None:
        now = time.time()
        period = int(now // self.story.period_s)
        if self.story.phase(now) < DETECT or self._last_period == period:
            return
        if not self.token_file.exists():
            return
        record = {
            "nid": "0x01",
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".000Z",
            "model": "demo-story",
            "model_version": "01",
            "fps": 1,
            "frames": 1,
            "conf_threshold": 0.5,
            "counts": {"person": 1},
            "detections": [
                {"class": "person", "class_id": 0, "confidence": 0.9, "box": [40, 60, 200, 460]}
            ],
        }
        token = self.token_file.read_text().strip()
        try:
            client.request(
                "POST",
                f"{self.vms_url}/detections",
                json=record,
                headers={"Authorization": f"Bearer {token}"},
                request_timeout=5,
            )
        except CallFailed as exc:
            if exc.unreachable:
                log.warning("story: the scripted detection was not posted: %s", exc.message)
                return
            self._last_period = period
            log.warning("story: the scripted detection refused: %s", exc.status)
            return
        self._last_period = period
        log.info("story: a person on edge-01 (scripted detection): edge-02 should focus")


def demo_pictures(data_dir: Path) -> Path:
    """The demo camera's pictures: ultralytics' bundled ones when it is installed (the edge
    extra), else pictures drawn by detectors.demo into the data folder."""
    import importlib.util

    if importlib.util.find_spec("ultralytics") is not None:
        import ultralytics

        return Path(ultralytics.__file__).parent / "assets"
    from detectors.demo import write_demo_frames

    return write_demo_frames(data_dir / "demo-camera")


class DemoCamera:
    """A camera's snapshot URL with basic auth, each GET the next bundled picture; a thread of
    `edgectl up` on a free loopback port."""

    def __init__(self, images: list[Path]):
        frames = itertools.cycle([p.read_bytes() for p in images])
        self.password = secrets.token_urlsafe(12)
        expected = "Basic " + base64.b64encode(f"demo:{self.password}".encode()).decode()
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="demo camera"')
                    self.end_headers()
                    return
                with lock:
                    body = next(frames)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="demo-camera", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://demo:{self.password}@127.0.0.1:{self.port}/frame.jpg"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
