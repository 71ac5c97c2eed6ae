"""Event clips, the worker's part.

``ClipRecorder`` keeps the last ``pre_s`` seconds of frames (with their detections) in a bounded
ring buffer. A detection of one of the configured classes at the working threshold (the same
events that raise the optimizer's focus), or a demo event the operator asked for on purpose,
starts a clip: the buffered frames, then ``post_s`` seconds more, written as MP4 (OpenCV; VP9,
else MPEG-4 Part 2) with the boxes drawn, into the clip folder next to a JSON of its metadata.
Events closer than ``min_gap_s`` to the last clip's end are part of no new clip.

``ClipUploader`` sends the folder's clips to the VMS, one at a time, oldest first, resumably: it
asks the VMS where to go on (``POST /clips/uploads``; the clip's id is its SHA-256, so a clip the
VMS holds is never sent again), then sends chunks at that offset (``PATCH``, ``Upload-Offset``).
A dropped link resumes from the last chunk the VMS took, never from the start. Telemetry first:
while the worker's summaries wait in their buffer no chunk goes, and chunks go at most
``budget_bps`` bytes a second."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from edge_ai.common.http import AsyncHttp, async_client
from edge_ai.common.runtime import Stop
from edge_common.compat import to_thread

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("edge_ai.yolo.clips")

CODECS = ("vp09", "mp4v")  # VP9 in MP4 plays in browsers; MPEG-4 Part 2 where VP9 is missing


def _draw(frame: Any, detections: list[Any]) -> Any:
    import cv2

    out = frame.copy()
    for d in detections:
        x1, y1, x2, y2 = (round(v) for v in d.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 200, 255), 2)
        cv2.putText(
            out,
            f"{d.class_name} {d.confidence:.2f}",
            (x1, max(12, y1 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 200, 255),
            1,
        )
    return out


def write_mp4(path: Path, frames: list[tuple[float, Any, list[Any]]], fps: float) -> None:
    """The frames (same size as the first; others scaled) as an MP4 at ``fps``."""
    import cv2

    height, width = frames[0][1].shape[:2]
    for codec in CODECS:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps, (width, height))
        if writer.isOpened():
            break
    else:
        raise RuntimeError("OpenCV can write no MP4 codec here (vp09, mp4v)")
    try:
        for _ts, frame, detections in frames:
            image = _draw(frame, detections)
            if image.shape[:2] != (height, width):
                image = cv2.resize(image, (width, height))
            writer.write(image)
    finally:
        writer.release()


class ClipRecorder:
    def __init__(
        self,
        folder: Path,
        *,
        nid: str,
        classes: set[str],
        pre_s: float = 5.0,
        post_s: float = 5.0,
        max_frames: int = 300,
        min_gap_s: float = 10.0,
    ):
        self.folder = folder
        self.nid = nid
        self.classes = classes
        self.pre_s = pre_s
        self.post_s = post_s
        self.min_gap_s = min_gap_s
        self.ring: collections.deque[tuple[float, Any, list[Any]]] = collections.deque(
            maxlen=max_frames
        )
        self.recording: dict[str, Any] | None = None
        self._last_end = 0.0
        self._demo: str | None = None
        self.written = 0

    def demo(self, why: str = "demo event (triggered on purpose)") -> None:
        """An event on purpose (the demo's): the next frame starts a clip, whatever it shows."""
        self._demo = why

    def add(self, now: float, frame: Any, detections: list[Any]) -> Path | None:
        """One frame read (``detections``: those at the working threshold). The clip's file, when
        this frame completes one."""
        self.ring.append((now, frame, detections))
        while self.ring and self.ring[0][0] < now - self.pre_s:
            self.ring.popleft()
        if self.recording is not None:
            self.recording["frames"].append((now, frame, detections))
            self.recording["classes"].update(d.class_name for d in detections)
            if now >= self.recording["until"]:
                return self._finish(now)
            return None
        hits = {d.class_name for d in detections if d.class_name in self.classes}
        demo, self._demo = self._demo, None
        if (hits or demo) and now - self._last_end >= self.min_gap_s:
            self.recording = {
                "event": f"{self.nid}-{int(now * 1000)}",
                "started": self.ring[0][0],
                "until": now + self.post_s,
                "frames": list(self.ring),
                "classes": set(hits) | ({"demo"} if demo else set()),
                "why": demo or f"detection of {', '.join(sorted(hits))}",
            }
            log.info("clip %s: %s", self.recording["event"], self.recording["why"])
        return None

    def _finish(self, now: float) -> Path | None:
        rec, self.recording = self.recording, None
        assert rec is not None
        self._last_end = now
        frames = rec["frames"]
        duration = max(frames[-1][0] - frames[0][0], 0.001)
        fps = max(0.5, (len(frames) - 1) / duration) if len(frames) > 1 else 1.0
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{rec['event']}.mp4"
        try:
            write_mp4(tmp, frames, fps)
        except Exception as exc:  # a clip that cannot be written is lost, the worker goes on
            log.warning("clip %s not written: %s", rec["event"], exc)
            tmp.unlink(missing_ok=True)
            return None
        path = self.folder / f"{rec['event']}.mp4"
        meta = {
            "nid": self.nid,
            "event": rec["event"],
            "started_at": datetime.fromtimestamp(rec["started"], timezone.utc).isoformat(),
            "duration_s": round(len(frames) / fps, 3),
            "classes": sorted(rec["classes"]),
            "why": rec["why"],
        }
        (self.folder / f"{rec['event']}.json").write_text(json.dumps(meta))
        tmp.rename(path)
        self.written += 1
        log.info(
            "clip %s written: %d frames, %d bytes", rec["event"], len(frames), path.stat().st_size
        )
        return path


def _prepare(path: Path) -> tuple[dict[str, Any], str, int]:
    """The clip's metadata, id (SHA-256, computed once and kept in the metadata) and size."""
    meta_path = path.with_suffix(".json")
    meta: dict[str, Any] = json.loads(meta_path.read_text())
    if "clip_id" not in meta:
        meta["clip_id"] = _sha256(path)
        meta_path.write_text(json.dumps(meta))
    return meta, str(meta["clip_id"]), path.stat().st_size


def _read(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


class ClipUploader:
    def __init__(
        self,
        folder: Path,
        *,
        vms_url: str,
        token: str | None,
        budget_bps: int = 128_000,
        chunk_bytes: int = 64 * 1024,
        telemetry_waiting: Callable[[], bool] = lambda: False,
        http: AsyncHttp | None = None,
    ):
        self.folder = folder
        self.base = vms_url.rstrip("/")
        self.budget_bps = budget_bps
        self.chunk_bytes = chunk_bytes
        self.telemetry_waiting = telemetry_waiting
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = http or async_client(timeout=10.0, headers=headers)
        self.uploaded = 0
        self.resumed_at: list[int] = []  # offsets an upload went on from (not 0)
        self.sent_bytes = 0
        self._backoff = 1.0

    def pending(self) -> list[Path]:
        if not self.folder.exists():
            return []
        return sorted(p for p in self.folder.glob("*.mp4") if not p.name.startswith("."))

    async def run(self, stop: Stop) -> None:
        while not stop.event.is_set():
            clips = self.pending()
            if not clips:
                if await stop.wait(1.0):
                    return
                continue
            try:
                await self.upload(clips[0], stop)
                self._backoff = 1.0
            except (httpx.HTTPError, UploadRefused) as exc:
                log.warning("clip %s: %s; retrying in %.0fs", clips[0].stem, exc, self._backoff)
                if await stop.wait(self._backoff):
                    return
                self._backoff = min(60.0, self._backoff * 2)

    async def upload(self, path: Path, stop: Stop | None = None) -> None:
        """One clip, from where the VMS is; the files are removed once the VMS holds it."""
        meta, clip_id, size = await to_thread(_prepare, path)
        body = {k: meta[k] for k in ("nid", "event", "started_at", "duration_s", "classes")}
        body.update(clip_id=clip_id, size=size)
        state = self._state(await self._http.post(f"{self.base}/clips/uploads", json=body))
        offset = state["offset"]
        if offset:
            self.resumed_at.append(offset)
            if not state["complete"]:
                log.info("clip %s: resuming at byte %d of %d", path.stem, offset, size)
        while not state["complete"]:
            if stop is not None and stop.event.is_set():
                return
            if self.telemetry_waiting():  # telemetry first
                await asyncio.sleep(0.5)
                continue
            chunk = await to_thread(_read, path, offset, self.chunk_bytes)
            started = time.monotonic()
            r = await self._http.patch(
                f"{self.base}/clips/uploads/{clip_id}",
                content=chunk,
                headers={
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            if r.status_code == 409:  # the VMS holds another offset: ask it where
                r = await self._http.post(f"{self.base}/clips/uploads", json=body)
            state = self._state(r)
            self.sent_bytes += len(chunk)
            offset = state["offset"]
            # The byte budget: this chunk's share of a second, less the time it took.
            spent = time.monotonic() - started
            await asyncio.sleep(max(0.0, len(chunk) / self.budget_bps - spent))
        self.uploaded += 1
        log.info("clip %s uploaded (%d bytes, id %s)", path.stem, size, clip_id[:12])
        await to_thread(_remove, path)

    @staticmethod
    def _state(r: httpx.Response) -> dict[str, Any]:
        if r.status_code >= 300:
            raise UploadRefused(f"HTTP {r.status_code}: {r.text[:200]}")
        data: dict[str, Any] = r.json()
        return data

    async def aclose(self) -> None:
        await self._http.aclose()


class UploadRefused(Exception):
    pass
