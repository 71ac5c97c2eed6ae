"""Prometheus metrics of the gateway (on its /metrics) and of a worker (on --metrics-port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGES = ("queue", "decode", "preprocess", "inference", "nms", "write")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.queue_depth = Gauge(
            "analysis_queue_depth", "jobs in the stream (waiting or in work)", registry=registry
        )
        self.requests = Counter(
            "analysis_requests_total",
            "POST /analyze answers by outcome",
            ["outcome"],
            registry=registry,
        )
        self.cache = Counter(
            "analysis_cache_total", "result cache lookups", ["result"], registry=registry
        )
        self.throttled = Counter(
            "analysis_throttled_total", "requests refused by a token bucket", registry=registry
        )
        self.latency = Histogram(
            "analysis_request_seconds",
            "POST /analyze, request to answer",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.degraded = Gauge(
            "analysis_redis_degraded",
            "1 while Redis is unreachable (cache and buckets in-process)",
            registry=registry,
        )
        self.vms_frames = Counter(
            "analysis_vms_frames_total", "VMS inbox frames by step", ["step"], registry=registry
        )


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.batch_size = Histogram(
            "analysis_batch_size",
            "images per forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )
        self.stage = Histogram(
            "analysis_stage_seconds",
            "time per batch and stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.images = Counter(
            "analysis_images_total", "images analysed", ["outcome"], registry=registry
        )
        self.images_per_s = Gauge(
            "analysis_images_per_second", "images per second over the last batch", registry=registry
        )
        self.reclaimed = Counter(
            "analysis_reclaimed_total", "jobs taken over from a stopped worker", registry=registry
        )
        self.dead_lettered = Counter(
            "analysis_dead_lettered_total", "jobs failed after max attempts", registry=registry
        )
