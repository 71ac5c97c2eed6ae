"""The gateway's logic: rate limit, check, answer from the cache, or queue and (maybe) wait."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import Depends
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from services.analysis.cache import ResultCache
from services.analysis.errors import AnalysisTimeout, TooManyRequests
from services.analysis.fusion import fuse
from services.analysis.images import CheckedImage, check_image
from services.analysis.metrics import GatewayMetrics
from services.analysis.queue import GROUP, SUBMIT_SCRIPT, JobMeta, Keys, new_job_id, text
from services.analysis.ratelimit import RateLimiter, retry_after
from services.analysis.settings import AnalysisSettings
from shared.auth import Principal
from shared.contracts.analysis import AnalysisResult, AnalyzeMetadata, JobAccepted
from shared.deps import from_app_state
from shared.errors import Forbidden, Invalid, NotFound, Unauthorized, Unavailable, UpstreamError

log = logging.getLogger("edge.analysis.gateway")

# Hashing a large image takes milliseconds: off the event loop above this size.
THREAD_ABOVE_BYTES = 256 * 1024


def caller_key(principal: Principal) -> str:
    """Whose bucket a request takes from: each edge its own, each staff token its own."""
    if principal.kind == "edge":
        return f"edge:{principal.nid}"
    return principal.kind


def resilient_redis(url: str, *, socket_timeout: float | None) -> Redis:
    """A client whose broken pooled connection is retried once on a new one."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )


class Gateway:
    def __init__(self, settings: AnalysisSettings, metrics: GatewayMetrics):
        self.settings = settings
        self.metrics = metrics
        self.keys = Keys(settings.key_prefix)
        # A pooled connection broken by a Redis restart fails once and is retried on a new one
        # (every command here is safe to repeat: a job is keyed by its id, results are SET NX).
        self.redis = resilient_redis(settings.redis_url, socket_timeout=5)
        # Synchronous callers wait in BLPOP, each holding a connection for up to the deadline.
        self.waiting = resilient_redis(settings.redis_url, socket_timeout=None)
        self.submit_script = self.redis.register_script(SUBMIT_SCRIPT)
        self.cache = ResultCache(
            self.redis, settings.key_prefix, local_entries=settings.local_cache_entries
        )
        self.limiter = RateLimiter(
            self.redis,
            settings.key_prefix,
            rate=settings.rate_per_s,
            capacity=settings.rate_capacity,
            global_rate=settings.global_rate_per_s,
            global_capacity=settings.global_capacity,
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.waiting.aclose()

    @property
    def degraded(self) -> bool:
        return self.cache.degraded or self.limiter.degraded

    async def readiness(self) -> dict[str, Any]:
        try:
            await self.redis.ping()
            depth = await self.redis.xlen(self.keys.stream)
            self.metrics.queue_depth.set(depth)
            self.metrics.degraded.set(0)
            return {"redis": "ok", "queue_depth": depth}
        except RedisError as exc:
            self.metrics.degraded.set(1)
            return {
                "redis": f"unreachable ({type(exc).__name__}): "
                "cached answers only, new jobs refused"
            }

    async def refresh_queue_depth(self) -> None:
        await self.readiness()

    # POST /analyze
    async def throttle(self, principal: Principal) -> None:
        wait = await self.limiter.take(caller_key(principal))
        if wait > 0:
            self.metrics.throttled.inc()
            self.metrics.requests.labels("throttled").inc()
            seconds = retry_after(wait)
            raise TooManyRequests(
                f"rate limit: {self.settings.rate_per_s:g} images/s, "
                f"bursts of {self.settings.rate_capacity:g}; "
                f"retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )

    async def check(self, image: bytes) -> CheckedImage:
        if len(image) > THREAD_ABOVE_BYTES:
            return await asyncio.to_thread(
                check_image, image, max_pixels=self.settings.max_image_pixels
            )
        return check_image(image, max_pixels=self.settings.max_image_pixels)

    def authorise(self, principal: Principal, meta: AnalyzeMetadata) -> AnalyzeMetadata:
        if principal.kind == "anonymous":
            raise Unauthorized()
        if principal.kind == "edge":
            if meta.nid not in (None, principal.nid):
                raise Forbidden(
                    f"this token is for node {principal.nid}, not {meta.nid}", field="metadata.nid"
                )
            return meta.model_copy(update={"nid": principal.nid})
        return meta

    async def analyze(
        self, principal: Principal, image: bytes, meta: AnalyzeMetadata, *, wait: bool
    ) -> AnalysisResult | JobAccepted:
        started = time.perf_counter()
        meta = self.authorise(principal, meta)
        await self.throttle(principal)
        checked = await self.check(image)
        cached = await self.cache.get(self.settings.model_name, checked.sha256)
        if cached is not None:
            self.metrics.cache.labels("hit").inc()
            self.metrics.requests.labels("cached").inc()
            self.metrics.latency.labels("cached").observe(time.perf_counter() - started)
            return self.answer_from_cache(cached, meta)
        self.metrics.cache.labels("miss").inc()
        job_meta = JobMeta(
            image_sha256=checked.sha256,
            nid=meta.nid,
            mode=meta.mode,
            camera_time=meta.camera_time.isoformat() if meta.camera_time else None,
            edge_detections=[d.as_json() for d in meta.detections],
        )
        job_id = await self.submit(image, job_meta, owner=caller_key(principal))
        if not wait:
            self.metrics.requests.labels("accepted").inc()
            return JobAccepted(job_id=job_id, status="queued", poll=f"/jobs/{job_id}")
        result = await self.wait_for(job_id)
        self.metrics.latency.labels("sync").observe(time.perf_counter() - started)
        if result.status == "failed":
            self.metrics.requests.labels("failed").inc()
            error = result.error
            if error is not None and error.type == "invalid":
                raise Invalid(error.message, field=error.field or "image")
            raise UpstreamError(
                f"job {job_id} failed: {error.message if error else 'unknown error'}"
            )
        self.metrics.requests.labels("analysed").inc()
        self.cache.remember(result)
        return result

    async def annotate(self, image: bytes, result: AnalysisResult) -> bytes:
        """The picture with the result's boxes drawn (the fused ones when edge boxes came), JPEG."""
        from detectors.annotate import annotate_jpeg

        shown = result.fused if result.fused is not None else result.detections
        boxes = [(d.class_name, d.confidence, d.box) for d in shown]
        drawn = await asyncio.to_thread(annotate_jpeg, image, boxes)
        if drawn is None:  # the worker decoded it; this cannot fail short of a bug
            raise Invalid("the image cannot be decoded for annotation", field="image")
        return drawn

    def answer_from_cache(self, cached: AnalysisResult, meta: AnalyzeMetadata) -> AnalysisResult:
        """The cached detections; fusion is redone with this request's edge boxes (cheap, pure)."""
        fused = (
            fuse(meta.detections, cached.detections, threshold=self.settings.fusion_iou)
            if meta.detections
            else None
        )
        return cached.model_copy(
            update={
                "cached": True,
                "fused": fused,
                "nid": meta.nid,
                "timings": None,
                "attempts": 0,
                "vms_request_id": None,
                "camera_time": meta.camera_time,
                "mode": meta.mode,
            }
        )

    async def submit(self, image: bytes, meta: JobMeta, *, owner: str) -> str:
        """Queue one job; ``owner`` (a ``caller_key``) is who may read it back besides staff."""
        job_id = new_job_id()
        try:
            accepted = await self.submit_script(
                keys=[self.keys.stream, self.keys.job(job_id), self.keys.owner(job_id)],
                args=[
                    self.settings.queue_max_jobs,
                    job_id,
                    image,
                    meta.to_json(),
                    self.settings.result_ttl_s,
                    owner,
                ],
            )
        except RedisError as exc:
            self.metrics.requests.labels("unavailable").inc()
            raise Unavailable(
                f"the job queue (Redis) is unreachable: {type(exc).__name__}",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            ) from None
        if not accepted:
            self.metrics.requests.labels("queue_full").inc()
            raise Unavailable(
                f"the analysis queue is full ({self.settings.queue_max_jobs} jobs); retry later",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        return job_id

    async def wait_for(self, job_id: str) -> AnalysisResult:
        timeout = self.settings.sync_timeout_s
        try:
            signalled = await self.waiting.blpop([self.keys.done(job_id)], timeout=timeout)
            raw = await self.redis.get(self.keys.result(job_id))
        except RedisError as exc:
            raise Unavailable(
                f"Redis became unreachable while job {job_id} was waiting; poll /jobs/{job_id}",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            ) from exc
        if raw is None:
            detail = "no result" if signalled else f"not analysed within {timeout:g} s"
            raise AnalysisTimeout(f"job {job_id}: {detail}; poll /jobs/{job_id}", field="job_id")
        return AnalysisResult.model_validate_json(raw)

    # GET /jobs/{id}
    async def job(self, job_id: str, principal: Principal) -> AnalysisResult | JobAccepted:
        """A job's result or "queued"; an edge reads only the jobs it posted (403 otherwise)."""
        try:
            raw, owner = await self.redis.mget([self.keys.result(job_id), self.keys.owner(job_id)])
            queued = raw is None and bool(await self.redis.exists(self.keys.job(job_id)))
        except RedisError as exc:
            raise Unavailable(
                "the job store (Redis) is unreachable",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            ) from exc
        if raw is None and not queued:
            raise NotFound(f"job {job_id} does not exist (or its result expired)", field="job_id")
        self.check_owner(principal, owner, f"job {job_id}", field="job_id")
        if raw is None:
            return JobAccepted(job_id=job_id, status="queued", poll=f"/jobs/{job_id}")
        return AnalysisResult.model_validate_json(raw)

    @staticmethod
    def check_owner(principal: Principal, owner: object, what: str, *, field: str) -> None:
        """Staff read everything; an edge only what it posted itself (``owner`` = its key)."""
        if principal.kind != "edge":
            return
        if owner is None or text(owner) != caller_key(principal):
            raise Forbidden(f"{what} was not posted by node {principal.nid}", field=field)

    async def queue_stats(self) -> dict[str, Any]:
        try:
            depth = await self.redis.xlen(self.keys.stream)
            try:
                groups = await self.redis.xinfo_groups(self.keys.stream)
            except ResponseError:  # no stream yet: no worker has started, nothing was queued
                groups = []
        except RedisError as exc:
            raise Unavailable("the job queue (Redis) is unreachable") from exc
        pending = sum(
            int(g.get("pending", 0)) for g in groups if g.get("name") in (GROUP, GROUP.encode())
        )
        consumers = sum(int(g.get("consumers", 0)) for g in groups)
        return {
            "depth": depth,
            "in_work": pending,
            "consumers": consumers,
            "max": self.settings.queue_max_jobs,
        }


GatewayDep = Annotated[Gateway, Depends(from_app_state("gateway", Gateway))]
