"""Prometheus metrics of the ingest path, on the app's registry (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.records = Counter(
            "vms_records_stored_total", "Records committed", ["kind"], registry=registry
        )
        self.rejects = Counter(
            "vms_records_rejected_total", "Records refused", ["reason"], registry=registry
        )
        self.batch_size = Histogram(
            "vms_commit_batch_records",
            "Records per group commit",
            registry=registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000),
        )
        self.commit_latency = Histogram(
            "vms_commit_duration_seconds",
            "Time to write and commit one batch",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.queued = Gauge(
            "vms_ingest_queued_records", "Records waiting for the writer", registry=registry
        )
        self.commit_failures = Counter(
            "vms_commit_failures_total",
            "Batches that could not be committed",
            ["reason"],
            registry=registry,
        )
