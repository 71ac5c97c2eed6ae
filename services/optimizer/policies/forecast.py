"""Short-term forecast of an edge's cpu and memory (Holt's linear trend, double exponential
smoothing over irregularly spaced samples), so the overload policy can hand over before the edge
saturates rather than after the smoothed past crossed the threshold.

One ``Trend`` per edge and resource, fed the VMS's smoothed value each time the node reported
something new; kept in the runner's memory (a restarted optimizer learns the trend again within a
few cycles; until it has ``min_samples`` the forecast is None and only the smoothed value counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
