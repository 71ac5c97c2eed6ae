"""What one batch brings to each node's current state (pure logic; the writer applies it in SQL).

The writer stores a batch and updates ``vms.node_state`` in ONE statement (one round trip, one
implicit transaction): the new state of a node is computed from its locked current row and the
summary below, so concurrent writers (several workers, replicas) never lose an update.

Rules:
- ``streak`` counts consecutive environment samples with the current condition. A code that is
  not in the mapping is stored but neither breaks nor extends the streak.
- A node's samples of one kind in a batch move its state only when the newest of them is newer
  than the state's (agents replay buffers late; those samples are stored, the state stays).
- ``cpu_avg``/``memory_avg`` are exponentially weighted (``VMS_EWMA_ALPHA`` for the newest
  sample); ``low_confidence_share`` likewise (``VMS_LOW_CONFIDENCE_ALPHA``) over the per-second
  share below_threshold / (below_threshold + detections), seconds without any result skipped.
  With E the current average and samples x1..xk: E' = (1-a)^k E + sum a(1-a)^(k-i) x_i, so a batch
  carries ``decay`` = (1-a)^k and ``contrib`` = the sum; a node without E starts from x1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from operator import attrgetter
from typing import Any

from services.vms.records import (
    DetectionsRecord,
    EnvironmentRecord,
    Record,
    UsageRecord,
)
from shared.contracts.events import Event, EventType


@dataclass(slots=True)
class Ewma:
    fresh: float  # the average of these samples alone, starting from the first
    decay: float
    contrib: float


def ewma(samples: list[float], alpha: float) -> Ewma:
    if len(samples) == 1:  # the common case: one sample per node per batch
        x = samples[0]
        return Ewma(x, 1 - alpha, alpha * x)
    # The recursion itself, not a weighted sum of the samples: each step is a convex
    # combination, so samples that never pass 90 never average above it (a weighted sum summed
    # in C rounded to 90.00000000000001).
    # One pass, the same operations in the same order as one recursion each (the first step of
    # decay and contrib, from 1 and 0, is exact: (1-a) and a*x1).
    keep = 1 - alpha
    fresh = samples[0]
    decay, contrib = keep, alpha * fresh
    for x in islice(samples, 1, None):
        decay *= keep
        contrib = keep * contrib + alpha * x
        fresh = alpha * x + keep * fresh
    return Ewma(fresh, decay, contrib)


@dataclass(slots=True)
class NodeBatch:
    """Everything one batch says about one node, ready to be applied to its row."""

    nid: str
    known: bool
    authenticated: bool
    # usage: the newest sample and the averages' weights
    usage_at: datetime | None = None
    cpu: float | None = None
    memory: float | None = None
    func: str | None = None
    cpu_avg: Ewma | None = None
    memory_avg: Ewma | None = None
    # environment: the newest sample, and the final run of one condition among the mapped samples
    environment_at: datetime | None = None
    condition: str | None = None
    condition_code: str | None = None
    run: int = 0
    run_since: datetime | None = None
    previous: str | None = None  # the condition before the final run, within this batch
    all_same: bool = True  # every mapped sample had the final condition
    # detections
    detections_at: datetime | None = None
    detections: dict[str, Any] | None = None
    low_confidence: Ewma | None = None


_TS, _CPU, _MEMORY = attrgetter("ts"), attrgetter("cpu"), attrgetter("memory")


def summarize(
    records: list[Record], *, ewma_alpha: float, low_confidence_alpha: float
) -> dict[str, NodeBatch]:
    """Per node, what the batch brings (records of any kind, any order)."""
    nodes: dict[str, NodeBatch] = {}
    usage: dict[str, list[UsageRecord]] = {}
    shares: dict[str, list[float]] = {}
    for r in sorted(records, key=_TS):
        nid = r.nid
        node = nodes.get(nid)
        if node is None:
            node = nodes[nid] = NodeBatch(nid, r.known, r.authenticated)
        else:
            node.known, node.authenticated = r.known, r.authenticated
        if isinstance(r, UsageRecord):
            samples = usage.get(nid)
            if samples is None:
                usage[nid] = [r]
            else:
                samples.append(r)
        elif isinstance(r, EnvironmentRecord):
            node.environment_at = r.ts
            condition = r.condition
            if condition is None:
                continue
            if condition == node.condition:
                node.run += 1
            else:
                if node.condition is not None:
                    node.previous, node.all_same = node.condition, False
                node.condition, node.run, node.run_since = condition, 1, r.ts
            node.condition_code = r.result
        else:
            node.detections_at, node.detections = r.ts, r.summary
            results = r.detected + r.below_threshold
            if results:
                shares.setdefault(nid, []).append(r.below_threshold / results)
    for nid, samples in usage.items():
        node, last = nodes[nid], samples[-1]  # the newest sample
        node.usage_at, node.cpu, node.memory, node.func = last.ts, last.cpu, last.memory, last.func
        node.cpu_avg = ewma(list(map(_CPU, samples)), ewma_alpha)
        node.memory_avg = ewma(list(map(_MEMORY, samples)), ewma_alpha)
    for nid, values in shares.items():
        nodes[nid].low_confidence = ewma(values, low_confidence_alpha)
    return nodes


def events_for_detections(records: list[Record], event_classes: frozenset[str]) -> list[Event]:
    """A "detection" event per summary that saw one of the watched classes."""
    if not event_classes:
        return []
    events: list[Event] = []
    for r in records:
        if not isinstance(r, DetectionsRecord):
            continue
        hits = {c: n for c, n in r.counts.items() if n and c in event_classes}
        if hits:
            events.append(Event(type=EventType.DETECTION, nid=r.nid, counts=hits, at=r.ts))
    return events
