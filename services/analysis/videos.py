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

from services.analysis.containers import NotAVideo, VideoHeader, read_header
from services.analysis.gateway import Gateway, caller_key
from services.analysis.images import check_image
from services.analysis.queue import JobMeta, first_stream, text
from services.analysis.settings import AnalysisSettings
from shared.auth import Principal
from shared.contracts.analysis import AnalysisResult, AnalyzeMetadata, VideoStatus
from shared.deps import from_app_state
from shared.errors import Conflict, DomainError, Invalid, NotFound, PayloadTooLarge, Unavailable

log = logging.getLogger("edge.analysis.videos")


class Cancelled(Exception):
    """The video was cancelled (POST /videos/{id}/cancel): stop quietly."""


JPEG_QUALITY = 90


def check_header(path: Path, settings: AnalysisSettings) -> VideoHeader:
    """The container's headers against the limits, before anything is decoded: 422 naming the
    limit (and its setting) when over one, or when the body is not a video container."""
    try:
        header = read_header(path)
    except NotAVideo as exc:
        raise Invalid(f"not a video the gateway reads: {exc}", field="body") from None
    pixels = header.width * header.height
    if pixels > settings.video_max_pixels:
        raise Invalid(
            f"the video is {header.width} x {header.height}, over the limit of "
            f"{settings.video_max_pixels} pixels (ANALYSIS_VIDEO_MAX_PIXELS)",
            field="body",
        )
    if header.frames <= 0:
        raise Invalid("the video's headers give no frame count", field="body")
    if header.frames > settings.video_max_frames:
        raise Invalid(
            f"the video has {header.frames} frames, over the limit of "
            f"{settings.video_max_frames} (ANALYSIS_VIDEO_MAX_FRAMES)",
            field="body",
        )
    if header.duration_s > settings.video_max_duration_s:
        raise Invalid(
            f"the video lasts {header.duration_s:.1f} s, over the limit of "
            f"{settings.video_max_duration_s:g} s (ANALYSIS_VIDEO_MAX_DURATION_S)",
            field="body",
        )
    return header


def probe(path: Path, header: VideoHeader) -> dict[str, Any] | None:
    """Frames, fps and size of a video whose headers passed ``check_header``, once OpenCV has
    decoded its first frame to the size the headers declare; else None."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        ok, frame = capture.read()
        if not ok or frame is None:
            return None
        if frame.shape[1] > header.width or frame.shape[0] > header.height:
            return None  # the frames are larger than the headers say: a lie
        return {
            "frames_total": header.frames,
            "fps": round(header.fps, 3),
            "width": header.width,
            "height": header.height,
        }
    finally:
        capture.release()


def jpeg_frames(path: Path, header: VideoHeader) -> Generator[bytes, None, None]:
    """Each frame as JPEG, as many as the headers declare, each no larger than they declare."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        for _ in range(header.frames):
            ok, frame = capture.read()
            if not ok:
                return
            if frame.shape[1] > header.width or frame.shape[0] > header.height:
                raise Invalid(
                    f"a frame is {frame.shape[1]} x {frame.shape[0]}, larger than the video's "
                    f"headers declare ({header.width} x {header.height})",
                    field="body",
                )
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
    cancelled: set[str],
) -> int:
    """The video with each frame's boxes and labels drawn, as MP4; returns the frames written."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    writer = None
    written = 0
    try:
        while written < len(boxes) and key not in cancelled:
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
        self.cancelled: set[str] = set()  # videos cancelled while this process renders them

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
                    self.key(video_id),
                    mapping={"status": VideoStatus.failed, "error": "the gateway stopped"},
                )

    # POST /videos
    async def upload(self, principal: Principal, request: Request) -> dict[str, Any]:
        self.gateway.authorise(principal, AnalyzeMetadata())
        await self.gateway.throttle(principal)  # one token for the upload; then one a frame
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
            header = await asyncio.to_thread(check_header, path, self.settings)
            info = await asyncio.to_thread(probe, path, header)
            if info is None:
                raise Invalid(
                    "the body is not a video OpenCV can decode to the size its headers declare",
                    field="body",
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        state = {
            "status": VideoStatus.analysing,
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
        task = asyncio.create_task(
            self.process(video_id, path, info, header, caller_key(principal)),
            name=f"video-{video_id}",
        )
        self.tasks[video_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(video_id, None))
        return {
            "video_id": video_id,
            "status": VideoStatus.analysing,
            **info,
            "events": f"/videos/{video_id}/events",
            "status_url": f"/videos/{video_id}",
            "annotated": f"/videos/{video_id}/annotated",
            "cancel": f"/videos/{video_id}/cancel",
        }

    # The work of one video.
    async def process(
        self, video_id: str, path: Path, info: dict[str, Any], header: VideoHeader, owner: str
    ) -> None:
        redis = self.gateway.redis
        key, frames_key = self.key(video_id), self.frames_key(video_id)
        boxes: list[list[dict]] = []
        try:
            started = time.perf_counter()
            async for index, result in self.analyse_frames(video_id, path, header, owner):
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
            await redis.hset(
                key, mapping={"status": VideoStatus.rendering, "frames_total": str(len(boxes))}
            )
            target = self.dir / f"{video_id}.mp4"
            rendered = await asyncio.to_thread(
                render,
                path,
                target,
                boxes,
                info["fps"],
                self.render_progress,
                video_id,
                self.cancelled,
            )
            if await self.is_cancelled(video_id):
                raise Cancelled
            await redis.hset(
                key,
                mapping={
                    "status": VideoStatus.done,
                    "rendered": str(rendered),
                    "file": str(target),
                },
            )
            await redis.xadd(
                frames_key,
                {
                    "data": json.dumps(
                        {"end": True, "status": VideoStatus.done, "frames": len(boxes)}
                    )
                },
            )
        except Cancelled:
            log.info("video %s cancelled", video_id)
            await asyncio.to_thread((self.dir / f"{video_id}.mp4").unlink, missing_ok=True)
        except (DomainError, RedisError, OSError) as exc:
            message = (
                exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
            )
            log.warning("video %s failed: %s", video_id, message)
            with contextlib.suppress(RedisError):
                await redis.hset(key, mapping={"status": VideoStatus.failed, "error": message})
                await redis.xadd(
                    frames_key,
                    {
                        "data": json.dumps(
                            {"end": True, "status": VideoStatus.failed, "error": message}
                        )
                    },
                )
        finally:
            self.render_progress.pop(video_id, None)
            self.cancelled.discard(video_id)
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def is_cancelled(self, video_id: str) -> bool:
        """Cancelled here, or through another gateway process (the state in Redis says so)."""
        if video_id in self.cancelled:
            return True
        status = await self.gateway.redis.hget(self.key(video_id), "status")
        return status is not None and text(status) == VideoStatus.cancelled

    async def pace(self, owner: str) -> None:
        """One token of the owner's bucket per frame: a video's frames go at the caller's rate
        (ANALYSIS_RATE_PER_S), and its other requests share that rate meanwhile."""
        while True:
            wait = await self.gateway.limiter.take(owner)
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, 5.0))

    async def analyse_frames(
        self, video_id: str, path: Path, header: VideoHeader, owner: str
    ) -> AsyncIterator[tuple[int, AnalysisResult]]:
        """Each frame as a job, up to ``video_window`` in flight, results in frame order; each
        frame paid for with a token before it is queued; stops when the video is cancelled."""
        frames = jpeg_frames(path, header)
        in_flight: list[asyncio.Task[AnalysisResult]] = []
        index = 0
        try:
            while True:
                if await self.is_cancelled(video_id):
                    raise Cancelled
                while len(in_flight) < self.settings.video_window:
                    blob = await asyncio.to_thread(next, frames, None)
                    if blob is None:
                        break
                    await self.pace(owner)
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
        if data["status"] == VideoStatus.rendering:
            answer["rendered"] = self.render_progress.get(video_id, 0)
        if "error" in data:
            answer["error"] = data["error"]
        if data["status"] == VideoStatus.done:
            answer["annotated"] = f"/videos/{video_id}/annotated"
        return answer

    # POST /videos/{id}/cancel
    async def cancel(self, video_id: str, principal: Principal) -> dict[str, Any]:
        """Stop a video being analysed or rendered: no more frames are queued, its files are
        removed, its event stream ends with ``cancelled``. Its owner or staff only (403)."""
        state = await self.status(video_id, principal)
        if state["status"] not in (VideoStatus.analysing, VideoStatus.rendering):
            raise Conflict(
                f"video {video_id} is {state['status']}: only a video being analysed or rendered "
                "can be cancelled",
                field="video_id",
            )
        end = {"end": True, "status": VideoStatus.cancelled, "frames": state.get("frames_done", 0)}
        try:
            await self.gateway.redis.hset(
                self.key(video_id), mapping={"status": VideoStatus.cancelled}
            )
            await self.gateway.redis.xadd(self.frames_key(video_id), {"data": json.dumps(end)})
        except RedisError as exc:
            raise Unavailable(
                "the job store (Redis) is unreachable",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            ) from exc
        self.cancelled.add(video_id)
        task = self.tasks.get(video_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), timeout=5)
        return await self.status(video_id, principal)

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
        if state["status"] != VideoStatus.done:
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
