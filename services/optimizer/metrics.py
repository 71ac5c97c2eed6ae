"""Prometheus metrics of the optimizer, on the app's registry (served at /metrics)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.optimizer.model.columns import FleetColumns
from services.optimizer.model.context import RolloutStatus
from shared.contracts.fleet import EdgeStatus, ObservedState


class OptimizerMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.decisions = Counter(
            "optimizer_decisions_total",
            "Decisions recorded, by policy, action and outcome at recording",
            ["policy", "action", "outcome", "dry_run"],
            registry=registry,
        )
        self.cycles = Counter(
            "optimizer_cycles_total",
            "Decision cycles, by how they ended (ran, paused, not leader)",
            ["result"],
            registry=registry,
        )
        self.cycle_seconds = Histogram(
            "optimizer_cycle_duration_seconds",
            "One decision cycle, fetch to record",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.paused = Gauge("optimizer_paused", "1 while an operator paused it", registry=registry)
        self.dry_run = Gauge("optimizer_dry_run", "1 while in dry-run", registry=registry)
        self.rollouts = Gauge(
            "optimizer_rollouts",
            "Rollouts by status (superseded ones not counted)",
            ["status"],
            registry=registry,
        )
        self.edges = Gauge(
            "optimizer_fleet_edges",
            "Edges by status in the fleet view",
            ["status"],
            registry=registry,
        )
        self.deployments = Gauge(
            "optimizer_fleet_deployments",
            "Desired-running deployments by observed state in the fleet view",
            ["observed"],
            registry=registry,
        )

    def controls(self, values: dict[str, Any]) -> None:
        self.paused.set(1 if values.get("paused") else 0)
        self.dry_run.set(1 if values.get("dry_run") else 0)

    def recorded(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.decisions.labels(
                str(row["policy"]),
                str(row["action"]),
                str(row["outcome"]),
                "true" if row["dry_run"] else "false",
            ).inc()

    def fleet(self, columns: FleetColumns, rollouts: Iterable[Any]) -> None:
        """Edges by status and running deployments by observed state, counted over the mirror's
        columns (no pass over a large fleet's objects)."""
        by_status = columns.edge_statuses()
        for status in EdgeStatus:
            self.edges.labels(str(status)).set(by_status.get(status, 0))
        observed = columns.observed_states()
        for state in (ObservedState.PENDING, ObservedState.RUNNING, ObservedState.FAILED):
            self.deployments.labels(state).set(observed.get(state, 0))
        counts = Tally(str(r.status) for r in rollouts)
        for rollout_status in RolloutStatus:
            if rollout_status != RolloutStatus.SUPERSEDED:
                name = str(rollout_status)
                self.rollouts.labels(name).set(counts.get(name, 0))
