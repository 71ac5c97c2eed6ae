"""The optimizer's pure decide over a large fleet, in memory (no service, no database): each
policy's per-edge code run on its candidates (found over the mirror's columns), beside the same
policies run on every edge (``CycleInput(filtered=False)``, the way every cycle decided before),
in the same run, on the same fleet.

The fleet is the one bench.reconcile.run seeds (each edge: a monitoring AI of its condition's
class, 1 % the wrong one, 90 % on version 01 while 02 is ready; the weather AI; 1 % of the nodes
overloaded, 1 % unsure), built straight into the mirror. Cycles, as the runner runs them (the
policies' memory, rollouts, routes and trends carried, setup's answer to the operations folded
into the mirror): cold (acts on the seeded mismatches), the next one, then steady ones after
--churn of the nodes reported (their state rewritten).

    .venv/bin/python -m bench.reconcile.decide --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from services.optimizer.engine.cycle import decide
from services.optimizer.engine.runner import DecisionRunner
from services.optimizer.model.config import PoliciesConfig
from services.optimizer.model.context import CycleInput
from services.optimizer.model.state import (
    Deployment,
    Edge,
    FleetRead,
    FleetState,
    Node,
    NodesRead,
    Package,
)
from services.optimizer.policies.forecast import ForecastMemo
from shared.contracts.decisions import BulkResult
from shared.contracts.fleet import DesiredState, EdgeStatus, ObservedState, PackageStatus

CONDITIONS = ["SUNNY", "CLOUDY", "RAINY", "SNOWY", "FOGGY", "NIGHT"]
AI_CLASSES = {"SUNNY": "01", "CLOUDY": "01", "RAINY": "02", "SNOWY": "02", "FOGGY": "02"}
AI_CLASSES["NIGHT"] = "02"
CONFIG = PoliciesConfig().merged(
    {
        "overload": {"window_s": 0},
        "low_confidence": {"window_s": 0},
        "environment": {"hysteresis_samples": 1},
        "recovery": {"silent_after_s": 86400},
    }
)


def fleet(n: int, now: datetime) -> FleetState:
    rnd = random.Random(1)
    key1, key2 = "00000001.00000000.00000000.00000000", "00000002.00000000.00000000.00000000"
    ready = PackageStatus.READY
    packages = [
        Package(1, "monitoring", "01", key1, "01", None, ready),
        Package(2, "monitoring", "01", key1, "02", None, ready),
        Package(3, "monitoring", "02", key2, "01", None, ready),
        Package(4, "monitoring", "02", key2, "02", None, ready),
        Package(5, "weatherai", "01", key1, "00", None, ready),
    ]
    edges, deployments, nodes = [], [], []
    running, up, active = DesiredState.RUNNING, ObservedState.RUNNING, EdgeStatus.ACTIVE
    for g in range(1, n + 1):
        condition = rnd.choice(CONDITIONS)
        lat, lon = 37.3 + rnd.random() * 0.5, 126.8 + rnd.random() * 0.5
        analysis = rnd.random() < 0.7
        edges.append(Edge(g, f"edge-{g}", hex(g), 1 + g % 10, lat, lon, analysis, active))
        sunny = (condition in ("SUNNY", "CLOUDY")) != (g % 100 == 0)
        ai = (1 if sunny else 2) + (0 if rnd.random() < 0.9 else 2)
        deployments.append(
            Deployment(g, g, ai, "monitoring", running, {}, False, 1, up, 1, 0, None)
        )
        deployments.append(
            Deployment(n + g, g, 5, "weatherai", running, {}, False, 1, up, 1, 0, None)
        )
        cpu = 95.0 if g % 100 == 1 else rnd.random() * 70
        unsure = 0.6 if g % 100 == 2 else rnd.random() * 0.2
        nodes.append(
            Node(
                hex(g),
                condition,
                5 + rnd.randrange(100),
                cpu,
                rnd.random() * 80,
                unsure,
                0.0,
                now,
                False,
            )
        )
    read = FleetRead(edges, packages, deployments, dict(AI_CLASSES), set(), now)
    return FleetState.from_read(read, NodesRead(nodes, now))


class Run:
    """Cycles over one mirror, carrying what the runner carries between them."""

    def __init__(self, state: FleetState, filtered: bool) -> None:
        self.state, self.filtered = state, filtered
        self.memory: dict[Any, Any] = {}
        self.rollouts: list[Any] = []
        self.routes: dict[str, Any] = {}
        self.trends: dict[str, Any] = {}
        self.memo = ForecastMemo()
        self.next_id = max(state.deployments) + 1

    def cycle(self, now: datetime) -> tuple[float, int]:
        inp = CycleInput(
            state=self.state,
            config=CONFIG,
            now=now,
            memory=dict(self.memory),
            rollouts=self.rollouts,
            routes=dict(self.routes),
            trends=self.trends,
            forecast_memo=self.memo,
            filtered=self.filtered,
        )
        t = time.perf_counter()
        result = decide(inp)
        took = time.perf_counter() - t
        result.carry_into(self.memory, self.routes)
        answers = []
        for i, p in enumerate(result.operations):
            op = p.op
            if op.op == "create":
                answers.append(BulkResult(index=i, op=op.op, id=self.next_id, generation=1))
                self.next_id += 1
            elif op.op == "edge_status":
                answers.append(BulkResult(index=i, op=op.op, id=op.edge_id))
            else:
                gen = self.state.deployments[op.id].generation + 1
                answers.append(BulkResult(index=i, op=op.op, id=op.id, generation=gen))
        runner = SimpleNamespace(fleet=self.state)
        DecisionRunner._apply(runner, [p.op for p in result.operations], answers)  # type: ignore[arg-type]
        return took, len(result.operations)


def run(n: int, filtered: bool, churn: float, steady: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    t = time.perf_counter()
    state = fleet(n, now)
    out: dict[str, Any] = {"build_s": time.perf_counter() - t}
    gc.freeze()  # as the runner does after a whole read: the mirror out of the collector's way
    r = Run(state, filtered)
    out["cold"] = r.cycle(now)
    out["next"] = r.cycle(now + timedelta(seconds=5))
    rnd = random.Random(2)
    nodes = list(state.nodes.values())
    out["steady"] = []
    for k in range(steady):
        at = now + timedelta(seconds=10 + 5 * k)
        reported = [
            replace(x, streak=x.streak + 1, last_seen=at, cpu_avg=(x.cpu_avg or 0) * 0.99)
            for x in rnd.sample(nodes, int(n * churn))
        ]
        state.apply_read(
            FleetRead([], [], [], dict(AI_CLASSES), set(), at), NodesRead(reported, at)
        )
        out["steady"].append(r.cycle(at))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--churn", type=float, default=0.01, help="share of nodes reporting")
    ap.add_argument("--steady", type=int, default=3, help="steady cycles")
    args = ap.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"\n=== {n:,} edges ({2 * n:,} deployments), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        for filtered in (False, True):
            load = Path("/proc/loadavg").read_text().split()[:3]
            r = run(n, filtered, args.churn, args.steady)
            gc.unfreeze()
            gc.collect()
            steady = ", ".join(f"{s:.2f}" for s, _ in r["steady"])
            label = "candidates (columns)" if filtered else "every edge (baseline)"
            print(
                f"{label:<22} decide: cold {r['cold'][0]:6.2f} s ({r['cold'][1]} ops), "
                f"next {r['next'][0]:6.2f} s, steady after {args.churn:.0%} reported: "
                f"{steady} s   (mirror built in {r['build_s']:.1f} s; load {' '.join(load)})",
                flush=True,
            )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000
        print(f"bench process peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
