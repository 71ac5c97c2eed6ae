"""Prometheus metrics of the ingest path, on the app's registry (served at /metrics)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.vms.nodes.state import NodeBatch

# Per-node series stop being added past this many nodes (a large fleet is watched through
# GET /nodes/state; the dashboards' per-edge panels are for the first ones).
MAX_NODE_SERIES = 2000


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
        self.node_cpu = Gauge(
            "vms_node_cpu_percent", "A node's last reported cpu use", ["nid"], registry=registry
        )
        self.node_memory = Gauge(
            "vms_node_memory_percent",
            "A node's last reported memory use",
            ["nid"],
            registry=registry,
        )
        self.node_condition = Gauge(
            "vms_node_condition",
            "1 for a node's current condition (SUNNY, RAINY ...), from its environment records",
            ["nid", "condition"],
            registry=registry,
        )
        self.node_last_report = Gauge(
            "vms_node_last_report_timestamp_seconds",
            "Unix time of a node's newest committed record (any kind)",
            ["nid"],
            registry=registry,
        )
        self._conditions: dict[str, str] = {}
        # Per node: its last report's time and its series, each found once (``labels()`` costs a
        # few microseconds, on every committed record) and made when first set.
        self._last: dict[str, float] = {}
        self._series: dict[str, dict[Gauge, Any]] = {}

    def observe_nodes(self, nodes: Iterable[NodeBatch]) -> None:
        """The per-node gauges from a committed batch's summary (``nodes.state.summarize``): each
        node's gauges are set once per batch, to what the batch leaves them at (its newest
        report's time, its newest usage and condition)."""
        for node in nodes:
            nid = node.nid
            series = self._series.get(nid)
            if series is None:
                if len(self._series) >= MAX_NODE_SERIES:
                    continue
                series = self._series[nid] = {}
            stamp = max(
                t.timestamp()
                for t in (node.usage_at, node.environment_at, node.detections_at)
                if t is not None
            )
            if stamp > self._last.get(nid, 0.0):
                self._last[nid] = stamp
                self._gauge(series, self.node_last_report, nid).set(stamp)
            if node.usage_at is not None:
                self._gauge(series, self.node_cpu, nid).set(float(node.cpu or 0.0))
                self._gauge(series, self.node_memory, nid).set(float(node.memory or 0.0))
            condition = node.condition
            if condition is not None:
                old = self._conditions.get(nid)
                if old is not None and old != condition:
                    self.node_condition.remove(nid, old)
                self._conditions[nid] = condition
                self.node_condition.labels(nid, condition).set(1)

    @staticmethod
    def _gauge(series: dict[Gauge, Any], gauge: Gauge, nid: str) -> Any:
        child = series.get(gauge)
        if child is None:
            child = series[gauge] = gauge.labels(nid)
        return child
