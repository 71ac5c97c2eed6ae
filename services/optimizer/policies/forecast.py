"""Short-term forecast of an edge's cpu and memory (Holt's linear trend, double exponential
smoothing over irregularly spaced samples), so the overload policy can hand over before the edge
saturates rather than after the smoothed past crossed the threshold.

One ``Trend`` per edge and resource, fed the VMS's smoothed value each time the node reported
something new; kept in the runner's memory (a restarted optimizer learns the trend again within a
few cycles; until it has ``min_samples`` the forecast is None and only the smoothed value counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from services.optimizer.model.columns import FleetColumns
    from services.optimizer.model.state import FleetState


@dataclass(slots=True)
class Trend:
    level: float
    slope: float  # per second
    at: datetime
    samples: int = 1

    def update(self, value: float, at: datetime, alpha: float, beta: float) -> None:
        dt = (at - self.at).total_seconds()
        if dt <= 0:
            return
        predicted = self.level + self.slope * dt
        level = alpha * value + (1 - alpha) * predicted
        self.slope = beta * (level - self.level) / dt + (1 - beta) * self.slope
        self.level, self.at = level, at
        self.samples += 1

    def forecast(self, horizon_s: float, min_samples: int) -> float | None:
        if self.samples < min_samples:
            return None
        return max(0.0, min(100.0, self.level + self.slope * horizon_s))


def observe(
    trends: dict[str, Trend],
    key: str,
    value: float | None,
    at: datetime | None,
    alpha: float,
    beta: float,
) -> Trend | None:
    """Feed one sample (skipped when absent or not newer than the last); the edge's trend."""
    if value is None or at is None:
        return trends.get(key)
    trend = trends.get(key)
    if trend is None:
        trend = trends[key] = Trend(level=value, slope=0.0, at=at)
    elif at > trend.at:
        trend.update(value, at, alpha, beta)
    return trend


@dataclass
class ForecastMemo:
    """What the overload policy last made of each edge's trends, by the mirror's rows, so that a
    whole-fleet cycle follows only the trends that can have moved: an edge whose node was not
    written since (the row's ``revision``) took in no new sample, so its trends and its forecast
    are what they were, unless the settings or the trends changed (``key``: the memo then starts
    again). Kept by the runner between cycles, beside the trends."""

    columns: FleetColumns | None = None
    key: tuple[object, ...] = ()
    revision: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # -1: not seen
    crossing: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))
    has_trend: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))
    # nids whose trends were not looked at since the memo started again
    unseen: set[str] = field(default_factory=set)

    def ready(
        self, columns: FleetColumns, key: tuple[object, ...], trends: dict[str, Trend]
    ) -> bool:
        """Valid for these columns and settings (started again otherwise: False)."""
        size = len(columns.edges.cols["id"])
        if self.columns is not columns or self.key != key:
            self.columns, self.key = columns, key
            self.revision = np.full(size, -1, np.int64)
            self.crossing = np.zeros(size, np.bool_)
            self.has_trend = np.zeros(size, np.bool_)
            self.unseen = {k.rpartition(":")[0] for k in trends}
            return False
        if len(self.revision) < size:
            grow = size - len(self.revision)
            self.revision = np.concatenate([self.revision, np.full(grow, -1, np.int64)])
            self.crossing = np.concatenate([self.crossing, np.zeros(grow, np.bool_)])
            self.has_trend = np.concatenate([self.has_trend, np.zeros(grow, np.bool_)])
        return True

    def carry(self, old: FleetState, new: FleetState, trends: dict[str, Trend]) -> None:
        """A whole read replaced the mirror (new columns, new rows): what the memo knew of an
        edge whose node the read shows as the old mirror did (same nid, present and stale alike,
        same cpu, memory and last report: no new sample, so its trends and its forecast are as
        they were) is kept; every other edge counts as moved. Without it the cycle after a
        whole read follows the trends of every warm edge again."""
        if self.columns is not old.columns or not len(self.revision):
            return
        oe, ne = old.columns.edges, new.columns.edges
        ids = ne["id"]
        n = len(ids)
        known = np.fromiter(map(oe.rows.get, ids.tolist(), repeat(-1)), np.int64, n)
        same = (known >= 0) & (known < len(self.revision))
        at = np.where(same, known, 0)
        # The memo had taken in the old row's values (its revision), and they are the same now.
        same &= self.revision[at] == oe.cols["revision"][at]
        for name in ("alive", "node", "stale"):
            same &= oe.cols[name][at] == ne[name]
        for name in ("cpu", "memory", "seen"):
            a, b = oe.cols[name][at], ne[name]
            same &= (a == b) | (np.isnan(a) & np.isnan(b))
        new_edges, old_edges = new.edges, old.edges
        for i in np.flatnonzero(same).tolist():
            edge_id = int(ids[i])
            if new_edges[edge_id].nid != old_edges[edge_id].nid:
                same[i] = False
        size = len(ne.cols["id"])
        revision = np.full(size, -1, np.int64)
        crossing = np.zeros(size, np.bool_)
        has_trend = np.zeros(size, np.bool_)
        kept = np.flatnonzero(same)
        revision[kept] = ne["revision"][kept]
        crossing[kept] = self.crossing[at[kept]]
        has_trend[kept] = self.has_trend[at[kept]]
        # Every other edge: whether its node has trends, as it is now.
        for i in np.flatnonzero(~same).tolist():
            nid = new_edges[int(ids[i])].nid
            has_trend[i] = f"{nid}:cpu" in trends or f"{nid}:memory" in trends
        self.columns = new.columns
        self.revision, self.crossing, self.has_trend = revision, crossing, has_trend

    def note(self, row: int, nid: str, crossing: bool, has_trend: bool) -> None:
        """The edge's trends took in its node's current values."""
        if self.columns is None or row >= len(self.revision):
            return
        self.revision[row] = self.columns.edges.cols["revision"][row]
        self.crossing[row], self.has_trend[row] = crossing, has_trend
        self.unseen.discard(nid)

    def note_rows(
        self, rows: npt.NDArray[np.int64], nids: list[str], has_trend: npt.NDArray[np.bool_]
    ) -> None:
        """:meth:`note` of these rows (of these nodes) at once, none of them crossing."""
        if self.columns is None:
            return
        self.unseen.difference_update(nids)
        keep = rows < len(self.revision)
        rows = rows[keep]
        self.revision[rows] = self.columns.edges.cols["revision"][rows]
        self.crossing[rows] = False
        self.has_trend[rows] = has_trend[keep]
