"""Unit tests of the per-node batch summary the set-based node_state upsert applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.vms.nodes.state import ewma, summarize
from services.vms.records import EnvironmentRecord, UsageRecord

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def env(nid: str, s: int, condition: str | None, code: str = "0") -> EnvironmentRecord:
    ts = T0 + timedelta(seconds=s)
    return EnvironmentRecord(
        nid=nid,
        ts=ts,
        received_at=ts,
        result=code,
        condition=condition,
        authenticated=True,
        known=True,
    )


def usage(nid: str, s: int, cpu: float) -> UsageRecord:
    ts = T0 + timedelta(seconds=s)
    return UsageRecord(
        nid=nid,
        ts=ts,
        received_at=ts,
        cpu=cpu,
        memory=cpu / 2,
        func="SUNNY",
        username=None,
        code=None,
        message=None,
        authenticated=False,
        known=True,
    )


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


def test_the_tables_columns_are_the_records_fields_in_order():
    """The column order is written once (services/vms/records.py): the tables and the writer's
    statements follow it."""
    from services.vms import models
    from services.vms.records import RECORD_TYPES, ROW_OF, columns
    from services.vms.storage.writer import COLUMNS

    for kind, record in RECORD_TYPES.items():
        table = getattr(models, kind)
        assert [c.name for c in table.columns if c.name != "id"] == list(columns(record))
        assert COLUMNS[kind] == columns(record)
    ts = T0 + timedelta(seconds=1)
    row = ROW_OF["usage"](usage("a", 1, 40.0))
    assert row == ("a", ts, ts, 40.0, 20.0, "SUNNY", None, None, None, False, True)
