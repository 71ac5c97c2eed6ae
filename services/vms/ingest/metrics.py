"""Prometheus metrics of the ingest path, on the app's registry (served at /metrics)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
        self.node_condition = Gauge(
            "vms_node_condition",
            "1 for a node's current condition (SUNNY, RAINY ...), from its environment records",
            ["nid", "condition"],
            registry=registry,
        )
        # Each node's newest usage and report time, kept in plain dicts and read when /metrics is
        # scraped (``_NodeGauges``): a commit sets them with a dict store per node, not with three
        # gauge updates (each a lock and a few Python calls, on every /usage record).
        self._cpu: dict[str, float] = {}
        self._memory: dict[str, float] = {}
        self._last: dict[str, float] = {}
        registry.register(_NodeGauges(self._cpu, self._memory, self._last))
        self._conditions: dict[str, str] = {}

    def observe_nodes(self, nodes: Iterable[NodeBatch]) -> None:
        """The per-node gauges from a committed batch's summary (``nodes.state.summarize``): each
        node's are set once per batch, to what the batch leaves them at (its newest report's
        time, its newest usage and condition)."""
        last, cpu, memory = self._last, self._cpu, self._memory
        for node in nodes:
            nid = node.nid
            seen = last.get(nid)
            if seen is None and len(last) >= MAX_NODE_SERIES:
                continue
            stamp = 0.0
            for at in (node.usage_at, node.environment_at, node.detections_at):
                if at is not None and (t := at.timestamp()) > stamp:
                    stamp = t
            if seen is None or stamp > seen:
                last[nid] = stamp
            if node.usage_at is not None:
                cpu[nid] = float(node.cpu or 0.0)
                memory[nid] = float(node.memory or 0.0)
            condition = node.condition
            if condition is not None:
                old = self._conditions.get(nid)
                if old is not None and old != condition:
                    self.node_condition.remove(nid, old)
                self._conditions[nid] = condition
                self.node_condition.labels(nid, condition).set(1)


class _NodeGauges(Collector):
    """vms_node_cpu_percent, vms_node_memory_percent and vms_node_last_report_timestamp_seconds,
    one series per node (at most MAX_NODE_SERIES nodes), from ``IngestMetrics``' dicts."""

    _FAMILIES = (
        ("vms_node_cpu_percent", "A node's last reported cpu use"),
        ("vms_node_memory_percent", "A node's last reported memory use"),
        (
            "vms_node_last_report_timestamp_seconds",
            "Unix time of a node's newest committed record (any kind)",
        ),
    )

    def __init__(self, cpu: dict[str, float], memory: dict[str, float], last: dict[str, float]):
        self._values = (cpu, memory, last)

    def describe(self) -> Iterator[Metric]:
        for name, doc in self._FAMILIES:
            yield GaugeMetricFamily(name, doc, labels=["nid"])

    def collect(self) -> Iterator[Metric]:
        for (name, doc), values in zip(self._FAMILIES, self._values, strict=True):
            family = GaugeMetricFamily(name, doc, labels=["nid"])
            for nid, value in list(values.items()):
                family.add_metric([nid], value)
            yield family
