"""Videos: an upload streamed to disk, every frame analysed through the job queue (so workers
batch them with everything else), per-frame results as they come (a Redis stream the SSE route
replays and follows), and an annotated copy rendered with OpenCV once every frame is done.

State: ``video:{id}`` (a hash: status, frames, fps, size, progress) and ``video:{id}:frames``
(a stream of per-frame results, then one ``end`` entry), both with the results' TTL; the files
are under ``ANALYSIS_VIDEO_DIR``. A video being analysed belongs to the gateway process that took
the upload (its frames' jobs are durable, the video's progress is not): a gateway that stops
marks its videos failed; one that crashes leaves them "analysing" until their state expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.exceptions import RedisError

from services.analysis.gateway import Gateway, caller_key
from services.analysis.images import check_image
from services.analysis.queue import JobMeta, first_stream, text
from shared.auth import Principal
from shared.contracts.analysis import AnalysisResult, AnalyzeMetadata
from shared.deps import from_app_state
from shared.errors import Conflict, DomainError, Invalid, NotFound, PayloadTooLarge, Unavailable

log = logging.getLogger("edge.analysis.videos")

JPEG_QUALITY = 90


def probe(path: Path) -> dict[str, Any] | None:
    """Frames, fps and size of a video OpenCV can read (its first frame read back), else None."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        ok, frame = capture.read()
        if not ok or frame is None:
            return None
        return {
            "frames_total": int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
            "fps": float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
            "width": int(frame.shape[1]),
            "height": int(frame.shape[0]),
        }
    finally:
        capture.release()


def jpeg_frames(path: Path) -> Generator[bytes, None, None]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
    finally:
        capture.release()


def render(
    source: Path,
    target: Path,
    boxes: list[list[dict]],
    fps: float,
    progress: dict[str, int],
    key: str,
) -> int:
    """The video with each frame's boxes and labels drawn, as MP4; returns the frames written."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    writer = None
    written = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(
                    str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps or 25.0, size
                )
            for det in boxes[written] if written < len(boxes) else []:
                x1, y1, x2, y2 = (int(v) for v in det["box"])
                cv2.rectangle(frame, (x1, y1), (x2, y2), (0, 200, 255), 2)
                label = f"{det['class']} {det['confidence']:.2f}"
                cv2.putText(
                    frame,
                    label,
                    (x1, max(12, y1 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.5,
                    (0, 200, 255),
                    1,
                )
            writer.write(frame)
            written += 1
            progress[key] = written
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return written


class Videos:
    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.settings = gateway.settings
        self.dir = Path(self.settings.video_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tasks: dict[str, asyncio.Task[None]] = {}  # video id -> its analysis
        self.render_progress: dict[str, int] = {}

    def key(self, video_id: str) -> str:
        return f"{self.settings.key_prefix}:video:{video_id}"

    def frames_key(self, video_id: str) -> str:
        return f"{self.key(video_id)}:frames"

    async def close(self) -> None:
        """Stop every video of this process; each is marked failed (a task cancelled before it
        ran never reaches its own handler, so this is done here)."""
        running = dict(self.tasks)
        for task in running.values():
            task.cancel()
        for video_id, task in running.items():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            (self.dir / f"{video_id}.video").unlink(missing_ok=True)
            with contextlib.suppress(RedisError):
                await self.gateway.redis.hset(
                    self.key(video_id), mapping={"status": "failed", "error": "the gateway stopped"}
                )

    # POST /videos
    async def upload(self, principal: Principal, request: Request) -> dict[str, Any]:
        self.gateway.authorise(principal, AnalyzeMetadata())
        await self.gateway.throttle(principal)  # one token a video
        video_id = uuid.uuid4().hex
        path = self.dir / f"{video_id}.video"
        size = 0
        try:
            with path.open("wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.settings.video_max_bytes:
                        raise PayloadTooLarge(
                            f"the video is over {self.settings.video_max_bytes} bytes", field="body"
                        )
                    if chunk:
                        await asyncio.to_thread(out.write, chunk)
            if size == 0:
                raise Invalid("the video is empty (zero bytes)", field="body")
            info = await asyncio.to_thread(probe, path)
            if info is None:
                raise Invalid(
                    "the body is not a video OpenCV can read (MP4, AVI, MKV ...)", field="body"
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        state = {
            "status": "analysing",
            "frames_done": 0,
            "owner": caller_key(principal),
            "created_at": time.time(),
            **info,
        }
        try:
            await self.gateway.redis.hset(
                self.key(video_id), mapping={k: str(v) for k, v in state.items()}
            )
            await self.gateway.redis.expire(self.key(video_id), self.settings.result_ttl_s)
        except RedisError as exc:
            path.unlink(missing_ok=True)
            raise Unavailable(
                "the job store (Redis) is unreachable",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            ) from exc
        task = asyncio.create_task(self.process(video_id, path, info), name=f"video-{video_id}")
        self.tasks[video_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(video_id, None))
        return {
            "video_id": video_id,
            "status": "analysing",
            **info,
            "events": f"/videos/{video_id}/events",
            "status_url": f"/videos/{video_id}",
            "annotated": f"/videos/{video_id}/annotated",
        }

    # The work of one video.
    async def process(self, video_id: str, path: Path, info: dict[str, Any]) -> None:
        redis = self.gateway.redis
        key, frames_key = self.key(video_id), self.frames_key(video_id)
        boxes: list[list[dict]] = []
        try:
            started = time.perf_counter()
            async for index, result in self.analyse_frames(path):
                fps = (index + 1) / max(1e-6, time.perf_counter() - started)
                detections = [d.as_json() for d in result.detections]
                frame: dict[str, Any] = {
                    "frame": index,
                    "time_s": round(index / info["fps"], 3) if info["fps"] else None,
                    "status": result.status,
                    "detections": detections,
                    "fps": round(fps, 2),
                }
                if result.error is not None:
                    frame["error"] = result.error.model_dump(exclude_none=True)
                boxes.append(detections)
                await redis.xadd(frames_key, {"data": json.dumps(frame)})
                await redis.hset(key, "frames_done", str(index + 1))
            await redis.expire(frames_key, self.settings.result_ttl_s)
            await redis.hset(key, mapping={"status": "rendering", "frames_total": str(len(boxes))})
            target = self.dir / f"{video_id}.mp4"
            rendered = await asyncio.to_thread(
                render, path, target, boxes, info["fps"], self.render_progress, video_id
            )
            await redis.hset(
                key, mapping={"status": "done", "rendered": str(rendered), "file": str(target)}
            )
            await redis.xadd(
                frames_key,
                {"data": json.dumps({"end": True, "status": "done", "frames": len(boxes)})},
            )
        except (DomainError, RedisError, OSError) as exc:
            message = (
                exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
            )
            log.warning("video %s failed: %s", video_id, message)
            with contextlib.suppress(RedisError):
                await redis.hset(key, mapping={"status": "failed", "error": message})
                await redis.xadd(
                    frames_key,
                    {"data": json.dumps({"end": True, "status": "failed", "error": message})},
                )
        finally:
            self.render_progress.pop(video_id, None)
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def analyse_frames(self, path: Path) -> AsyncIterator[tuple[int, AnalysisResult]]:
        """Each frame as a job, up to ``video_window`` in flight, results in frame order."""
        frames = jpeg_frames(path)
        in_flight: list[asyncio.Task[AnalysisResult]] = []
        index = 0
        try:
            while True:
                while len(in_flight) < self.settings.video_window:
                    blob = await asyncio.to_thread(next, frames, None)
                    if blob is None:
                        break
                    in_flight.append(asyncio.create_task(self.analyse_one(blob)))
                if not in_flight:
                    return
                yield index, await in_flight.pop(0)
                index += 1
        finally:
            for task in in_flight:
                task.cancel()
            frames.close()

    async def analyse_one(self, blob: bytes) -> AnalysisResult:
        checked = check_image(blob, max_pixels=self.settings.max_image_pixels)
        meta = JobMeta(image_sha256=checked.sha256)
        while True:
            try:
                job_id = await self.gateway.submit(blob, meta, owner="video")
                break
            except Unavailable as exc:  # queue full: back off as its Retry-After says
                if "full" not in exc.message:
                    raise
                await asyncio.sleep(self.settings.retry_after_s)
        return await self.gateway.wait_for(job_id)

    # GET /videos/{id}
    async def status(self, video_id: str, principal: Principal) -> dict[str, Any]:
        """The video's progress; an edge reads only the videos it uploaded (403 otherwise)."""
        try:
            state = await self.gateway.redis.hgetall(self.key(video_id))
        except RedisError as exc:
            raise Unavailable("the job store (Redis) is unreachable") from exc
        if not state:
            raise NotFound(f"video {video_id} does not exist (or expired)", field="video_id")
        data = {text(k): text(v) for k, v in state.items()}
        owner = data.get("owner")
        self.gateway.check_owner(principal, owner, f"video {video_id}", field="video_id")
        answer: dict[str, Any] = {"video_id": video_id, "status": data["status"]}
        for name in ("frames_total", "frames_done", "width", "height", "rendered"):
            if name in data:
                answer[name] = int(data[name])
        answer["fps"] = float(data.get("fps", 0))
        if data["status"] == "rendering":
            answer["rendered"] = self.render_progress.get(video_id, 0)
        if "error" in data:
            answer["error"] = data["error"]
        if data["status"] == "done":
            answer["annotated"] = f"/videos/{video_id}/annotated"
        return answer

    # GET /videos/{id}/events
    async def events(self, video_id: str, principal: Principal) -> AsyncIterator[str]:
        await self.status(video_id, principal)  # 404/403 before the stream starts
        last = "0"
        while True:
            try:
                reply = await self.gateway.waiting.xread(
                    {self.frames_key(video_id): last}, count=100, block=15_000
                )
            except RedisError:
                yield 'event: error\ndata: {"error": "Redis unreachable"}\n\n'
                return
            if not reply:
                yield ": keep-alive\n\n"
                continue
            for entry_id, fields in first_stream(reply):
                last = text(entry_id)
                data = text(fields[b"data"])
                if json.loads(data).get("end"):
                    yield f"event: end\ndata: {data}\n\n"
                    return
                yield f"event: frame\nid: {last}\ndata: {data}\n\n"

    # GET /videos/{id}/annotated
    async def annotated(self, video_id: str, principal: Principal) -> Path:
        state = await self.status(video_id, principal)
        if state["status"] != "done":
            done = state.get("frames_done", 0)
            raise Conflict(
                f"video {video_id} is {state['status']} "
                f"({done} of {state.get('frames_total', '?')} frames); "
                "the annotated file comes when every frame is done",
                field="video_id",
            )
        path = self.dir / f"{video_id}.mp4"
        if not path.is_file():
            raise NotFound(f"the annotated file of video {video_id} is gone", field="video_id")
        return path


VideosDep = Annotated[Videos, Depends(from_app_state("videos", Videos))]
