"""``edgectl analysis-worker``: jobs from the queue in batches, the model, results written.

A worker needs only Redis (and the model file): N workers on M machines share the one consumer
group. Each loop: take over jobs that a stopped worker held longer than the lease (dead-lettering
those delivered too often), then read new jobs, blocking until one comes and then waiting at most
``batch_wait_ms`` to fill the batch. A prefetch thread reads, decodes and pre-processes the next
batch while the main thread runs this batch's forward pass, NMS and result writes, so the CPU
stages do not serialise the accelerator.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client import CollectorRegistry, start_http_server

from services.analysis.detector import BatchDetector, decode_image, spec_from
from services.analysis.fusion import fuse
from services.analysis.metrics import WorkerMetrics
from services.analysis.queue import (
    COMPLETE_SCRIPT,
    GROUP,
    JobMeta,
    Keys,
    StreamEntry,
    first_stream,
    stream_entries,
    text,
)
from services.analysis.settings import AnalysisSettings
from shared.contracts.analysis import AnalysisResult, Detection, JobError, StageTimings
from shared.errors import Invalid

log = logging.getLogger("edge.analysis.worker")


@dataclass
class Job:
    entry_id: str
    job_id: str
    image: bytes
    meta: JobMeta
    attempts: int = 1
    picked_at: float = field(default_factory=time.time)
    decoded: Any = None
    error: str | None = None
    size: tuple[int, int] = (0, 0)  # height, width


@dataclass
class Batch:
    jobs: list[Job]
    groups: list[tuple[list[int], Any]] = field(default_factory=list)  # indices into ready, tensor
    ready: list[Job] = field(default_factory=list)
    decode_s: float = 0.0
    preprocess_s: float = 0.0


class Worker:
    def __init__(
        self,
        settings: AnalysisSettings,
        detector: BatchDetector,
        *,
        name: str | None = None,
        metrics: WorkerMetrics | None = None,
    ):
        self.settings = settings
        self.detector = detector
        self.keys = Keys(settings.key_prefix)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=None)
        self.complete_script = self.redis.register_script(COMPLETE_SCRIPT)
        self.metrics = metrics or WorkerMetrics(CollectorRegistry())
        self.stop_event = threading.Event()
        self.redis_down = False
        self.failed_with: str | None = None
        self.ensure_group(self.redis, self.keys)
        # Shows in XINFO CONSUMERS from now on (the model is loaded by then): "a worker is up".
        self.redis.xgroup_createconsumer(self.keys.stream, GROUP, self.name)

    @staticmethod
    def ensure_group(client: redis.Redis, keys: Keys) -> None:
        try:
            client.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # Taking jobs.
    def _jobs(
        self, entries: list[StreamEntry], attempts: dict[str, int] | None = None
    ) -> list[Job]:
        jobs = []
        for entry_id, fields in entries:
            if not fields:  # deleted while pending
                continue
            eid = text(entry_id)
            jobs.append(
                Job(
                    eid,
                    text(fields[b"id"]),
                    fields[b"image"],
                    JobMeta.from_json(fields[b"meta"]),
                    attempts=(attempts or {}).get(eid, 1),
                )
            )
        return jobs

    def reclaim(self, count: int) -> list[Job]:
        """Jobs a stopped worker held past the lease; those delivered too often are failed."""
        lease_ms = int(self.settings.lease_s * 1000)
        reply = self.redis.xautoclaim(
            self.keys.stream, GROUP, self.name, lease_ms, "0-0", count=count
        )
        entries = stream_entries(reply[1])
        if not entries:
            return []
        pending = self.redis.xpending_range(
            self.keys.stream,
            GROUP,
            min=entries[0][0],
            max=entries[-1][0],
            count=len(entries) * 2 + 10,
            consumername=self.name,
        )
        attempts = {text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        jobs = self._jobs(entries, attempts)
        self.metrics.reclaimed.inc(len(jobs))
        alive = []
        for job in jobs:
            if job.attempts > self.settings.max_attempts:
                log.warning("job %s dead-lettered after %d deliveries", job.job_id, job.attempts)
                self.metrics.dead_lettered.inc()
                self.finish(
                    [
                        (
                            job,
                            self.failed(
                                job, "dead_letter", f"given up after {job.attempts - 1} deliveries"
                            ),
                        )
                    ]
                )
            else:
                log.info("job %s taken over (delivery %d)", job.job_id, job.attempts)
                alive.append(job)
        return alive

    def read(self, count: int, block_ms: int | None) -> list[Job]:
        """New jobs; ``block_ms`` None: only what is there (Redis's BLOCK 0 would wait forever)."""
        reply = self.redis.xreadgroup(
            GROUP, self.name, {self.keys.stream: ">"}, count=count, block=block_ms
        )
        return self._jobs(first_stream(reply))

    def take_batch(self) -> list[Job]:
        size = self.settings.batch_size
        jobs = self.reclaim(size)
        if len(jobs) < size:
            jobs += self.read(size - len(jobs), None if jobs else 500)
        if jobs and len(jobs) < size and self.settings.batch_wait_ms > 0:
            jobs += self.read(size - len(jobs), max(1, int(self.settings.batch_wait_ms)))
        return jobs

    # The stages.
    def prepare(self, jobs: list[Job]) -> Batch:
        batch = Batch(jobs)
        started = time.perf_counter()
        for job, decoded in zip(jobs, self.detector.decode([j.image for j in jobs]), strict=True):
            job.decoded, job.error, job.size = decoded.image, decoded.error, decoded.size
        batch.decode_s = time.perf_counter() - started
        batch.ready = [j for j in jobs if j.decoded is not None]
        if batch.ready:
            started = time.perf_counter()
            batch.groups = self.detector.preprocess([j.decoded for j in batch.ready])
            batch.preprocess_s = time.perf_counter() - started
        return batch

    def run_batch(self, batch: Batch) -> None:
        began = time.perf_counter()
        answers: list[list[Detection]] = [[] for _ in batch.ready]
        infer_s = nms_s = 0.0
        for indices, prepared in batch.groups:
            started = time.perf_counter()
            raw = self.detector.infer(prepared)
            infer_s += time.perf_counter() - started
            started = time.perf_counter()
            for i, found in zip(indices, self.detector.postprocess(raw, prepared), strict=True):
                answers[i] = found
            nms_s += time.perf_counter() - started
        by_job = dict(zip((j.job_id for j in batch.ready), answers, strict=True))
        results = []
        for job in batch.jobs:
            if job.error is not None:
                results.append((job, self.failed(job, "invalid", job.error, field="image")))
                continue
            timings = StageTimings(
                queue_ms=round(max(0.0, job.picked_at - job.meta.submitted_at) * 1000, 2),
                decode_ms=round(batch.decode_s * 1000, 2),
                preprocess_ms=round(batch.preprocess_s * 1000, 2),
                inference_ms=round(infer_s * 1000, 2),
                nms_ms=round(nms_s * 1000, 2),
            )
            results.append((job, self.done(job, by_job[job.job_id], len(batch.ready), timings)))
        started = time.perf_counter()
        try:
            self.finish(results)
        except redis.RedisError as exc:
            # Not acknowledged either: the jobs stay pending and are taken over after the lease.
            log.warning("%d results not written (%s); left to the lease", len(results), exc)
            return
        write_s = time.perf_counter() - started
        m = self.metrics
        m.batch_size.observe(len(batch.jobs))
        for stage, seconds in (
            ("decode", batch.decode_s),
            ("preprocess", batch.preprocess_s),
            ("inference", infer_s),
            ("nms", nms_s),
            ("write", write_s),
        ):
            m.stage.labels(stage).observe(seconds)
        for job in batch.jobs:
            m.stage.labels("queue").observe(max(0.0, job.picked_at - job.meta.submitted_at))
        m.images.labels("done").inc(len(batch.ready))
        m.images.labels("failed").inc(len(batch.jobs) - len(batch.ready))
        elapsed = batch.decode_s + batch.preprocess_s + (time.perf_counter() - began)
        m.images_per_s.set(len(batch.jobs) / elapsed if elapsed > 0 else 0.0)

    # Results.
    def _base(self, job: Job) -> dict[str, Any]:
        m = job.meta
        return dict(
            job_id=job.job_id,
            image_sha256=m.image_sha256,
            model=self.detector.model_name,
            attempts=job.attempts,
            nid=m.nid,
            vms_request_id=m.vms_request_id,
            camera_time=m.camera_time,
            mode=m.mode,
        )

    def done(
        self, job: Job, detections: list[Detection], batch_size: int, timings: StageTimings
    ) -> AnalysisResult:
        edge = [Detection.model_validate(d) for d in job.meta.edge_detections]
        height, width = job.size
        fused = fuse(edge, detections, threshold=self.settings.fusion_iou) if edge else None
        return AnalysisResult(
            status="done",
            detections=detections,
            fused=fused,
            width=width,
            height=height,
            batch_size=batch_size,
            timings=timings,
            **self._base(job),
        )

    def failed(self, job: Job, kind: str, message: str, field: str | None = None) -> AnalysisResult:
        return AnalysisResult(
            status="failed",
            error=JobError(type=kind, message=message, field=field),
            **self._base(job),
        )

    def finish(self, results: list[tuple[Job, AnalysisResult]]) -> None:
        """Write every result once (SET NX), acknowledge the entries: one round trip."""
        s = self.settings
        pipe = self.redis.pipeline(transaction=False)
        now = time.time()
        for job, result in results:
            body = result.model_dump_json(exclude_none=True)
            cache = (
                f"{s.key_prefix}:cache:{result.model}:{result.image_sha256}"
                if result.status == "done"
                else ""
            )
            outbox = body if job.meta.vms_request_id is not None else ""
            self.complete_script(
                keys=[
                    self.keys.result(job.job_id),
                    self.keys.done(job.job_id),
                    self.keys.job(job.job_id),
                    self.keys.stream,
                    cache,
                    self.keys.cache_index,
                    self.keys.vms_outbox,
                    self.keys.owner(job.job_id),
                ],
                args=[
                    body,
                    s.result_ttl_s,
                    job.entry_id,
                    GROUP,
                    s.cache_ttl_s,
                    s.cache_max_entries,
                    now,
                    outbox,
                ],
                client=pipe,
            )
        pipe.execute()

    # The loop.
    def run(self) -> None:
        """Until stopped: a prefetch thread prepares batches, this thread runs them."""
        prepared: queue.Queue[Batch | None] = queue.Queue(maxsize=1)

        def prefetch() -> None:
            try:
                while not self.stop_event.is_set():
                    jobs = self.take_jobs_waiting_out_redis()
                    if jobs:
                        prepared.put(self.prepare(jobs))
            except Exception:
                log.exception("prefetch failed")
                self.failed_with = "prefetch failed"
                self.stop_event.set()
            finally:
                prepared.put(None)

        thread = threading.Thread(target=prefetch, name="prefetch", daemon=True)
        thread.start()
        log.info(
            "worker %s: model %s on %s, batches of %d",
            self.name,
            self.detector.model_name,
            self.detector.device,
            self.settings.batch_size,
        )
        while True:
            batch = prepared.get()
            if batch is None:
                break
            self.run_batch(batch)
        thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self.leave()

    def take_jobs_waiting_out_redis(self) -> list[Job]:
        """A batch; while Redis is unreachable, retry every second (the worker stays up), and
        recreate the group when Redis came back without it (restarted without persistence)."""
        try:
            jobs = self.take_batch()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if not self.redis_down:
                log.warning("Redis unreachable (%s); retrying every second", exc)
            self.redis_down = True
            self.stop_event.wait(1.0)
            return []
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("the consumer group is gone (Redis restarted empty?); recreating it")
            self.ensure_group(self.redis, self.keys)
            return []
        if self.redis_down:
            log.info("Redis is back")
            self.redis_down = False
        return jobs

    def leave(self) -> None:
        """A worker that stops with nothing in hand leaves the group (one that holds jobs stays,
        so that another can take them over after the lease)."""
        mine = self.redis.xpending_range(
            self.keys.stream, GROUP, min="-", max="+", count=1, consumername=self.name
        )
        if not mine:
            self.redis.xgroup_delconsumer(self.keys.stream, GROUP, self.name)
        log.info("worker %s stopped", self.name)

    def stop(self) -> None:
        self.stop_event.set()


def make_detector(settings: AnalysisSettings, threads: int = 0) -> BatchDetector:
    return BatchDetector(
        spec_from(
            settings.model_path,
            backend=settings.backend,
            layout=settings.layout,
            labels=settings.labels,
            device=settings.device,
            imgsz=settings.imgsz,
            conf=settings.conf,
            iou=settings.iou_nms,
            half=settings.half,
            threads=threads,
        )
    )


def main(settings: AnalysisSettings, *, metrics_port: int | None = None, threads: int = 0) -> int:
    from shared.logging import configure_logging

    configure_logging(
        "analysis-worker",
        level=settings.log_level,
        fmt=settings.log_format,
        secrets=settings.secret_values(),
    )
    if threads:
        from services.analysis.detector import cpu_threads

        cpu_threads(threads)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    if metrics_port:
        start_http_server(metrics_port, addr=settings.host, registry=registry)
    try:
        detector = make_detector(settings, threads)
    except Invalid as exc:
        log.error("the model cannot be used: %s (%s)", exc.message, exc.field)
        return 2
    worker = Worker(settings, detector, metrics=metrics)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    try:
        worker.run()
    finally:
        detector.close()
    return 1 if worker.failed_with else 0


__all__ = ["Worker", "decode_image", "main"]
