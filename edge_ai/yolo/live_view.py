"""Live view through NAT, the worker's part: while the edge's live-view request holds (the file the
agent writes when the request arrives over MQTT, ``$EDGE_VIEW_FILE``), the latest camera frame
with the boxes of its detections and a rising frame counter drawn on it goes to the VMS as JPEG
(``POST /live/{nid}/frame``, the edge's token), at the requested rate and width, within the
requested byte budget: a frame over its share lowers the JPEG quality for the next ones, and a
frame the budget cannot pay for is skipped. A camera that gives no frame is said instead
(``POST /live/{nid}/problem``). Nothing is sent when no request holds: the request's TTL ends it.
Frames are never buffered: a frame that cannot go up now is of no use later."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from edge_ai.common.http import AsyncHttp, async_client
from edge_ai.common.runtime import Stop
from edge_common.compat import to_thread

log = logging.getLogger("edge_ai.yolo.live")

CHECK_S = 0.2  # how often the request file is looked at while no view runs (one stat)
PROBLEM_EVERY_S = 1.0
QUALITY_START, QUALITY_MIN, QUALITY_STEP = 80, 25, 15

if TYPE_CHECKING:  # (Python 3.8 on the edge: no subscripted builtins at run time)
    from collections.abc import Callable

    # What the worker hands over: the latest frame, its detections, and the camera's problem.
    Latest = Callable[[], tuple[Any, list[Any], str]]


class ViewRequest:
    """The request file, re-read when it changes."""

    def __init__(self, path: Path | None):
        self.path = path
        self._mtime: float | None = None
        self.fps = 2.0
        self.width = 640
        self.budget_bps = 256_000
        self.until = 0.0

    def refresh(self) -> None:
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            self.until = 0.0
            self._mtime = None
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            data = json.loads(self.path.read_text())
            self.fps = min(10.0, max(0.1, float(data["fps"])))
            self.width = min(1920, max(160, int(data["width"])))
            self.budget_bps = max(8_000, int(data["budget_bps"]))
            self.until = float(data["until"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignored the live-view request file %s: %s", self.path, exc)
            self.until = 0.0

    @property
    def active(self) -> bool:
        return time.time() < self.until


def draw(frame: Any, detections: list[Any], seq: int, width: int) -> Any:
    """The frame scaled to ``width``, its boxes and the counter drawn on it."""
    import cv2

    height, frame_width = frame.shape[:2]
    scale = width / float(frame_width)
    out = cv2.resize(frame, (width, max(1, round(height * scale))))
    for d in detections:
        x1, y1, x2, y2 = (round(v * scale) for v in d.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 200, 255), 2)
        label = f"{d.class_name} {d.confidence:.2f}"
        cv2.putText(
            out, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 200, 255), 1
        )
    stamp = f"#{seq} {time.strftime('%H:%M:%S')}"
    cv2.putText(out, stamp, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3)
    cv2.putText(out, stamp, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return out


def encode(image: Any, quality: int) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(data.tobytes())


class LiveSender:
    def __init__(
        self,
        request: ViewRequest,
        latest: Latest,
        *,
        vms_url: str,
        token: str | None,
        nid: str,
        http: AsyncHttp | None = None,
    ):
        self.request = request
        self.latest = latest
        self.nid = nid
        self.base = vms_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = http or async_client(timeout=3.0, headers=headers)
        self.seq = 0
        self.sent_bytes = 0
        self.skipped = 0
        self.quality = QUALITY_START
        self._allowance = 0.0
        self._last_fill = time.monotonic()
        self._last_problem = 0.0
        self._failing = False

    async def run(self, stop: Stop) -> None:
        while not stop.event.is_set():
            self.request.refresh()
            if not self.request.active:
                self._allowance = 0.0
                if await stop.wait(CHECK_S):
                    return
                continue
            started = time.monotonic()
            await self.send_one()
            period = 1.0 / self.request.fps
            if await stop.wait(max(0.0, period - (time.monotonic() - started))):
                return

    def _fill(self) -> None:
        """The byte budget: a bucket filled at budget_bps, holding one second at most."""
        now = time.monotonic()
        budget = float(self.request.budget_bps)
        self._allowance = min(budget, self._allowance + (now - self._last_fill) * budget)
        self._last_fill = now

    async def send_one(self) -> None:
        frame, detections, problem = self.latest()
        if frame is None or problem:
            now = time.monotonic()
            if now - self._last_problem >= PROBLEM_EVERY_S:
                self._last_problem = now
                detail = problem or "no frame from the camera yet"
                await self._post("/problem", json={"detail": f"camera: {detail[:300]}"})
            return
        self._fill()
        self.seq += 1
        image = await to_thread(draw, frame, detections, self.seq, self.request.width)
        jpeg = await to_thread(encode, image, self.quality)
        share = self.request.budget_bps / self.request.fps
        if len(jpeg) > share and self.quality > QUALITY_MIN:
            self.quality = max(QUALITY_MIN, self.quality - QUALITY_STEP)
        elif len(jpeg) < share / 2 and self.quality < QUALITY_START:
            self.quality = min(QUALITY_START, self.quality + 5)
        if len(jpeg) > self._allowance:
            self.skipped += 1
            return
        self._allowance -= len(jpeg)
        ok = await self._post(
            "/frame",
            content=jpeg,
            headers={"Content-Type": "image/jpeg", "X-Live-Seq": str(self.seq)},
        )
        if ok:
            self.sent_bytes += len(jpeg)

    async def _post(self, path: str, **kw: Any) -> bool:
        url = f"{self.base}/live/{self.nid}{path}"
        try:
            response = await self._http.post(url, **kw)
        except httpx.HTTPError as exc:
            self._fail(f"{url}: {exc}")
            return False
        if response.status_code >= 300:
            self._fail(f"{url}: HTTP {response.status_code} {response.text[:200]}")
            return False
        if self._failing:
            log.info("live view: the VMS takes frames again")
            self._failing = False
        return True

    def _fail(self, why: str) -> None:
        if not self._failing:
            log.warning("live view: %s (frames are dropped, not buffered)", why)
            self._failing = True

    def stats(self) -> dict:
        return {
            "active": self.request.active,
            "frames": self.seq,
            "sent_bytes": self.sent_bytes,
            "skipped": self.skipped,
            "quality": self.quality,
        }

    async def aclose(self) -> None:
        await self._http.aclose()
