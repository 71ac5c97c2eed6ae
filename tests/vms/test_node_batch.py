"""Unit tests of the per-node batch summary the set-based node_state upsert applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.vms.nodes.state import Record, ewma, summarize

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def env(nid: str, s: int, condition: str | None, code: str = "0") -> Record:
    values = {"known": True, "authenticated": True, "result": code, "condition": condition}
    return Record("environment", nid, T0 + timedelta(seconds=s), (), values)


def usage(nid: str, s: int, cpu: float) -> Record:
    values = {"known": True, "authenticated": False, "cpu": cpu, "memory": cpu / 2, "func": "SUNNY"}
    return Record("usage", nid, T0 + timedelta(seconds=s), (), values)


def test_ewma_weights_match_step_by_step_averaging():
    alpha, old, samples = 0.2, 50.0, [10.0, 30.0, 90.0]
    step = old
    for x in samples:
        step = alpha * x + (1 - alpha) * step
    e = ewma(samples, alpha)
    assert e.decay * old + e.contrib == pytest.approx(step)
    fresh = samples[0]
    for x in samples[1:]:
        fresh = alpha * x + (1 - alpha) * fresh
    assert e.fresh == pytest.approx(fresh)


def test_final_run_previous_condition_and_order_independence():
    records = [
        env("a", 3, "RAINY"),
        env("a", 1, "SUNNY"),
        env("a", 2, "SUNNY"),
        env("a", 4, None, "9"),
        env("a", 5, "RAINY"),
    ]
    node = summarize(records, ewma_alpha=0.2, low_confidence_alpha=0.1)["a"]
    assert (node.condition, node.run, node.previous, node.all_same) == ("RAINY", 2, "SUNNY", False)
    assert node.run_since == T0 + timedelta(seconds=3)
    assert node.environment_at == T0 + timedelta(
        seconds=5
    )  # the unmapped sample still counts as seen


def test_one_condition_all_batch_and_usage_latest():
    nodes = summarize(
        [env("b", 1, "SUNNY"), env("b", 2, "SUNNY"), usage("b", 2, 40), usage("b", 1, 20)],
        ewma_alpha=0.5,
        low_confidence_alpha=0.1,
    )
    b = nodes["b"]
    assert (b.condition, b.run, b.all_same, b.previous) == ("SUNNY", 2, True, None)
    assert b.cpu == 40 and b.usage_at == T0 + timedelta(seconds=2)
    assert (
        b.cpu_avg.fresh == pytest.approx(30.0) and b.authenticated is False
    )  # the newest record's flags
