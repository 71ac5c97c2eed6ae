"""Prediction: how much earlier the overload policy's forecast trigger fires than the average-based
one, and how often it fires for nothing, on synthetic cpu traces.

Each trace is one sample a second: a noisy baseline, then either a ramp to saturation (a real
overload: the raw load stays above the threshold) or bursts of 5-15 s near saturation only (no
overload). The VMS's
smoothing (EWMA, alpha 0.2) gives ``cpu_avg``; the optimizer looks every ``--cycle`` seconds. The
average trigger: ``cpu_avg`` above the threshold for ``window_s``. The forecast trigger: the same,
or the policy's own forecast (services/optimizer/policies/forecast.py, the defaults of
OPTIMIZER_OVERLOAD__FORECAST_*) above it for ``window_s``.

    .venv/bin/python -m bench.collab.predict --traces 400
"""

from __future__ import annotations

import argparse
import random
import statistics
from datetime import UTC, datetime, timedelta

from services.optimizer.model.config import OverloadConfig
from services.optimizer.policies.forecast import Trend, observe

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def trace(rng: random.Random, overload: bool, seconds: int = 300) -> list[float]:
    base = rng.uniform(30, 50)
    out = []
    start = rng.randint(60, 120)
    ramp = rng.uniform(40, 120)  # seconds from the baseline to 100 %
    burst_until = -1
    for t in range(seconds):
        value = base + rng.gauss(0, 4)
        if overload and t >= start:
            value = min(100.0, base + (100 - base) * (t - start) / ramp) + rng.gauss(0, 3)
        elif not overload:
            if t > burst_until and rng.random() < 0.01:
                burst_until = t + rng.randint(5, 15)  # a burst: 5 to 15 s near saturation
            if t <= burst_until:
                value = rng.uniform(88, 100)
        out.append(max(0.0, min(100.0, value)))
    return out


def first_trigger(
    samples: list[float], cfg: OverloadConfig, cycle_s: int, forecast: bool
) -> int | None:
    avg: float | None = None
    trends: dict[str, Trend] = {}
    above_since: int | None = None
    for t, value in enumerate(samples):
        avg = value if avg is None else 0.2 * value + 0.8 * avg
        if t % cycle_s:
            continue
        above = avg > cfg.cpu_percent
        if forecast and not above and avg >= cfg.cpu_percent * cfg.forecast_watch:
            trend = observe(
                trends, "cpu", avg, T0 + timedelta(seconds=t), cfg.forecast_alpha, cfg.forecast_beta
            )
            ahead = trend.forecast(cfg.forecast_s, cfg.forecast_min_samples) if trend else None
            above = ahead is not None and ahead > cfg.cpu_percent
        elif forecast and avg < cfg.cpu_percent * cfg.forecast_watch:
            trends.clear()
        if not above:
            above_since = None
            continue
        above_since = t if above_since is None else above_since
        if t - above_since >= cfg.window_s:
            return t
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=400)
    parser.add_argument("--cycle", type=int, default=5, help="seconds between decision cycles")
    parser.add_argument("--window", type=float, default=10.0, help="overload window_s")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    cfg = OverloadConfig(window_s=args.window)
    rng = random.Random(args.seed)
    leads, missed_avg, missed_fc = [], 0, 0
    false_avg = false_fc = 0
    for i in range(args.traces):
        overload = i % 2 == 0
        samples = trace(rng, overload)
        avg_at = first_trigger(samples, cfg, args.cycle, forecast=False)
        fc_at = first_trigger(samples, cfg, args.cycle, forecast=True)
        if overload:
            missed_avg += avg_at is None
            missed_fc += fc_at is None
            if avg_at is not None and fc_at is not None:
                leads.append(avg_at - fc_at)
        else:
            false_avg += avg_at is not None
            false_fc += fc_at is not None
    quiet = args.traces - (args.traces + 1) // 2
    print(
        f"{args.traces} traces (half ramps to saturation, half bursts of 5-15 s only), "
        f"cycle {args.cycle} s, window {args.window:g} s, forecast {cfg.forecast_s:g} s ahead"
    )
    print(
        f"helper in place earlier with the forecast: p50 {statistics.median(leads):.0f} s, "
        f"mean {statistics.fmean(leads):.1f} s, min {min(leads):.0f} s, max {max(leads):.0f} s "
        f"(n={len(leads)})"
    )
    print(f"overloads missed: average {missed_avg}, forecast {missed_fc}")
    print(
        f"false triggers (bursts only): average {false_avg}/{quiet} ({false_avg / quiet:.1%}), "
        f"forecast {false_fc}/{quiet} ({false_fc / quiet:.1%})"
    )


if __name__ == "__main__":
    main()
