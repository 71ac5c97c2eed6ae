"""Prometheus metrics of the master's reconcile passes, on the app's registry (/metrics)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.contracts.fleet import DesiredState, ObservedState


class MasterMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry  # the app's /metrics registry, for the other parts' metrics
        self.passes = Counter(
            "master_reconcile_passes_total", "Reconcile passes completed", registry=registry
        )
        self.deployments = Gauge(
            "master_deployments",
            "Deployments desired running, by observed state after the last pass",
            ["observed"],
            registry=registry,
        )
        self.failures = Counter(
            "master_deployment_failures_total",
            "Deployments the master newly observed as failed",
            registry=registry,
        )

    def observe_pass(
        self, previous: Mapping[int, Mapping[str, Any]], reports: Iterable[Any]
    ) -> None:
        """``previous``: the snapshot's deployments by id; ``reports``: what changed this pass."""
        running = DesiredState.RUNNING
        observed = {i: str(d["observed"]) for i, d in previous.items() if d["desired"] == running}
        for report in reports:
            if report.id in observed:
                failed = ObservedState.FAILED
                if report.observed == failed and observed[report.id] != failed:
                    self.failures.inc()
                observed[report.id] = str(report.observed)
        counts = Tally(observed.values())
        for state in (ObservedState.PENDING, ObservedState.RUNNING, ObservedState.FAILED):
            self.deployments.labels(state).set(counts.get(state, 0))
        self.passes.inc()
