"""Folding new observations into a node's current state (pure logic, used by the writer in its transaction).

Rules:
- Samples older than the state's latest of the same kind are stored but do not move the state
  (agents replay buffers out of order).
- ``streak`` counts consecutive environment samples with the current condition; a code that is
  not in the mapping is stored but neither breaks nor extends the streak.
- ``cpu_avg``/``memory_avg`` are exponentially weighted (``VMS_EWMA_ALPHA``), and
  ``low_confidence_share`` is the exponentially weighted share of below-threshold results per
  second (``VMS_LOW_CONFIDENCE_ALPHA``): below_threshold / (below_threshold + detections).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class Record:
    """One validated observation on its way to the table."""

    kind: str  # usage | environment | detections
    nid: str
    ts: datetime
    row: tuple  # the table's columns, in storage.writer.COLUMNS[kind] order
    values: dict[str, Any]  # what the node state needs from it


STATE_COLUMNS = (
    "known",
    "authenticated",
    "condition",
    "condition_code",
    "previous_condition",
    "streak",
    "condition_since",
    "environment_at",
    "usage_at",
    "cpu",
    "memory",
    "func",
    "cpu_avg",
    "memory_avg",
    "detections_at",
    "detections",
    "low_confidence_share",
    "last_seen",
    "updated_at",
)


def _ewma(old: float | None, new: float, alpha: float) -> float:
    return new if old is None else alpha * new + (1 - alpha) * old


def fold(
    state: dict[str, Any],
    record: Record,
    *,
    now: datetime,
    ewma_alpha: float,
    low_confidence_alpha: float,
    low_confidence_threshold: float,
    event_classes: frozenset[str],
) -> list[dict[str, Any]]:
    """Apply one record to ``state`` in place; return the events it causes."""
    events: list[dict[str, Any]] = []
    v = record.values
    state["known"] = v["known"]
    state["authenticated"] = v["authenticated"]
    state["last_seen"] = now
    state["updated_at"] = now
    if record.kind == "usage":
        if state["usage_at"] is None or record.ts >= state["usage_at"]:
            state["usage_at"] = record.ts
            state["cpu"], state["memory"], state["func"] = v["cpu"], v["memory"], v["func"]
            state["cpu_avg"] = _ewma(state["cpu_avg"], v["cpu"], ewma_alpha)
            state["memory_avg"] = _ewma(state["memory_avg"], v["memory"], ewma_alpha)
    elif record.kind == "environment":
        if state["environment_at"] is None or record.ts > state["environment_at"]:
            state["environment_at"] = record.ts
            condition = v["condition"]
            if condition is not None:
                state["condition_code"] = v["result"]
                if condition == state["condition"]:
                    state["streak"] += 1
                else:
                    previous = state["condition"]
                    state["previous_condition"] = previous
                    state["condition"] = condition
                    state["streak"] = 1
                    state["condition_since"] = record.ts
                    events.append(
                        {
                            "type": "condition_changed",
                            "nid": record.nid,
                            "condition": condition,
                            "previous": previous,
                            "at": record.ts.isoformat(),
                        }
                    )
    elif record.kind == "detections":
        if state["detections_at"] is None or record.ts >= state["detections_at"]:
            state["detections_at"] = record.ts
            state["detections"] = v["summary"]
            results = v["detected"] + v["below_threshold"]
            if results:
                before = state["low_confidence_share"]
                share = _ewma(before, v["below_threshold"] / results, low_confidence_alpha)
                state["low_confidence_share"] = share
                crossed = share >= low_confidence_threshold and (before is None or before < low_confidence_threshold)
                if low_confidence_threshold > 0 and crossed:
                    events.append(
                        {
                            "type": "low_confidence",
                            "nid": record.nid,
                            "share": round(share, 4),
                            "threshold": low_confidence_threshold,
                            "at": record.ts.isoformat(),
                        }
                    )
        if event_classes:
            hits = {c: n for c, n in v["summary"]["counts"].items() if n and c in event_classes}
            if hits:
                events.append({"type": "detection", "nid": record.nid, "counts": hits, "at": record.ts.isoformat()})
    return events
