"""The node's metrics for Prometheus (GET /metrics on the agent): cpu, memory, disk, network
bytes, read from psutil when scraped, and the agent's workloads by state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import psutil
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class NodeCollector(Collector):
    """Labels: ``node`` (the agent's node name) and ``nid``, so dashboards join with the VMS's
    per-node metrics."""

    def __init__(self, node: str, nid: str | None, workdir: str, states: Callable[[], list[str]]):
        self.labels = [node, nid or ""]
        self.workdir = workdir
        self.states = states

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=["node", "nid"])
        family.add_metric(self.labels, value)
        return family

    def collect(self) -> Iterator[Metric]:
        mem = psutil.virtual_memory()
        disk = psutil.disk_usage(self.workdir)
        net = psutil.net_io_counters()
        yield self._gauge(
            "edge_node_cpu_percent", "CPU use since the last scrape", psutil.cpu_percent(None)
        )
        yield self._gauge("edge_node_cpu_count", "logical CPUs", psutil.cpu_count() or 1)
        yield self._gauge("edge_node_memory_percent", "memory in use", mem.percent)
        yield self._gauge("edge_node_memory_total_bytes", "memory installed", mem.total)
        yield self._gauge("edge_node_memory_available_bytes", "memory available", mem.available)
        yield self._gauge("edge_node_disk_used_percent", "work dir's disk in use", disk.percent)
        yield self._gauge("edge_node_disk_free_bytes", "work dir's disk free", disk.free)
        for direction, value in (("receive", net.bytes_recv), ("transmit", net.bytes_sent)):
            family = CounterMetricFamily(
                f"edge_node_network_{direction}_bytes",
                f"bytes {direction}d on every interface since boot",
                labels=["node", "nid"],
            )
            family.add_metric(self.labels, value)
            yield family
        workloads = GaugeMetricFamily(
            "edge_agent_workloads", "workloads by state", labels=["node", "nid", "state"]
        )
        for state, count in sorted(Counter(self.states()).items()):
            workloads.add_metric([*self.labels, state], count)
        yield workloads


def node_registry(
    node: str, nid: str | None, workdir: str, states: Callable[[], list[str]]
) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(NodeCollector(node, nid, workdir, states))
    return registry
