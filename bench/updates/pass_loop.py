"""The reconcile pass's work for agent-pull edges, and how long it holds the master's event loop.

In-process, no setup: a fleet snapshot of N edges on an agent-pull cluster, one deployment each,
planned (``services.master.reconcile.desired.plan``) and converged by the master's own
``Reconciler._converge_all`` on the pull driver and its board (no broker: the notices are only
counted). A ticker task on the same loop wakes every millisecond; the longest gap between its
wakes is how long an agent's ``GET /edges/me/desired`` would have waited.

The baseline, in the same run with the same code for each edge (and the same board, which skips
the tag of an unchanged set in both): the pass as it was before 2026-12-07 afternoon, ``plan`` on
the loop and every edge's converge a task of its own, all started at once (each one runs to its
end without yielding: the loop is held for the whole of it).

Three passes each: the first (every set new), a change on every edge (a new generation), and
nothing changed. Python's garbage collector is left on, as in the master: a full collection
during a pass shows as a long hold in either way (printed when one happened).

    .venv/bin/python -m bench.updates.pass_loop --edges 1000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

from services.master.drivers.base import RuntimeDriver
from services.master.pull.board import DesiredBoard
from services.master.pull.driver import PullAgentDriver
from services.master.pull.notices import NoticePublisher
from services.master.reconcile.desired import EdgePlan, plan
from services.master.reconcile.service import PULL_EDGES_PER_SLICE, EdgeOutcome, Reconciler
from shared.contracts.fleet import FleetSnapshot
from shared.contracts.master import ClusterRecord, Runtime

DIGEST = "sha256:" + "a" * 64


def snapshot(n: int) -> FleetSnapshot:
    edges = [
        {
            "id": i,
            "name": f"edge-{i}",
            "nid": f"0x{i:x}",
            "cluster_id": 1,
            "latitude": None,
            "longitude": None,
            "supports_analysis": False,
            "status": "active",
        }
        for i in range(1, n + 1)
    ]
    ai = {
        "id": 1,
        "filename": "monitoring",
        "version": "01",
        "version_key": "01",
        "ai_class": "01",
        "condition": None,
        "status": "ready",
        "package_digest": DIGEST,
    }
    deployments = [
        {
            "id": i,
            "edge_id": i,
            "ai_id": 1,
            "filename": "monitoring",
            "desired": "running",
            "params": {},
            "allow_multiple": False,
            "generation": 1,
            "observed": "pending",
            "observed_generation": 0,
            "restarts": 0,
            "decision_id": None,
        }
        for i in range(1, n + 1)
    ]
    return {"edges": edges, "ai_packages": [ai], "deployments": deployments}


class _Drivers:
    def __init__(self, driver: RuntimeDriver):
        self.driver = driver

    async def get(self, *args: Any) -> RuntimeDriver:
        return self.driver


def reconciler() -> Reconciler:
    """A Reconciler with only what the per-edge part of a pass uses: the pull driver."""
    board = DesiredBoard(lambda nid: "k" * 32)
    r = Reconciler.__new__(Reconciler)
    r.drivers = _Drivers(PullAgentDriver(board, NoticePublisher(None)))
    r.reached = {}
    return r


async def all_at_once(r: Reconciler, plans: list[EdgePlan]) -> list[EdgeOutcome]:
    """The pass before: every edge a task, all started at once."""
    limiter = asyncio.Semaphore(16)

    async def one(p: EdgePlan) -> EdgeOutcome:
        async with limiter:
            return await r._converge_edge(p)

    return list(await asyncio.gather(*(one(p) for p in plans)))


async def held(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(seconds the work took, the longest the loop went without running the ticker)."""
    longest = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done = True
    await task
    return took, longest


async def run(n: int) -> None:
    clusters = {1: ClusterRecord(id=1, name="nat", runtime=Runtime.AGENT_PULL)}
    manifests = {1: {"command": ["python", "main.py"], "env": {"A": "1"}, "resources": {}}}
    kw: dict[str, Any] = dict(
        vms=("127.0.0.1", 8000), vms_path="usage", token_for=lambda nid, runtime: None
    )
    collections: list[float] = []
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started["t"] = time.perf_counter()
            else:
                collections.append(time.perf_counter() - started["t"])

    gc.callbacks.append(on_gc)
    print(f"=== the per-edge part of a reconcile pass, {n} agent-pull edges")
    ways = {"before": reconciler(), "now": reconciler()}
    snap = snapshot(n)
    for label in ("first pass (every set new)", "a change on every edge", "nothing changed"):
        if label == "a change on every edge":
            for dep in snap["deployments"]:
                dep["generation"] += 1
        cells = []
        for way, r in ways.items():
            collections.clear()

            async def work(r: Reconciler = r, way: str = way) -> None:
                if way == "before":
                    plans = plan(snap, clusters, manifests, **kw)
                    await all_at_once(r, [p for p in plans.values() if p.has_work])
                else:
                    plans = await asyncio.to_thread(plan, snap, clusters, manifests, **kw)
                    await r._converge_all(p for p in plans.values() if p.has_work)

            took, longest = await held(work)
            gc_note = f" (gc {1000 * max(collections):.0f} ms)" if collections else ""
            cells.append(f"{took:5.2f} s, loop held at most {1000 * longest:5.0f} ms{gc_note}")
        print(f"{label}")
        now = f"now (plan in a thread, slices of {PULL_EDGES_PER_SLICE} edges)"
        print(f"  {'baseline, all at once (plan on the loop, a task an edge)':<58}{cells[0]}")
        print(f"  {now:<58}{cells[1]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", type=int, default=1000)
    args = ap.parse_args()
    asyncio.run(run(args.edges))


if __name__ == "__main__":
    main()
