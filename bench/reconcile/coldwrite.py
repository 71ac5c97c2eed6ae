"""Where a cold cycle's write goes: the fleet `bench.reconcile.run` seeds (each edge's
mismatches acted on at once: about 4 % of the edges' deployments at 100,000 edges), decided by
the optimizer's own code over its Arrow reads, then written and recorded as the runner does:

- routes: the routing rows saved before the bulk write (``DecisionRunner._save_routes``);
- write: the operations through setup's ``POST /deployments/bulk`` in the runner's chunks
  (``OPTIMIZER_BULK_MAX_OPERATIONS``), with the CPU the bench process (the optimizer's side: the
  bodies, the answers, folding them into the mirror) and setup's process spent meanwhile;
- record: the decision log and the policies' memory into the optimizer's tables
  (``DecisionRunner._record``, one transaction; the routes were saved before).

The seeded database can be written once: each run seeds its own.

    .venv/bin/python -m bench.reconcile.coldwrite --edges 100000 [--py-spy setup.txt]

``--py-spy FILE`` records setup's process during the write (py-spy's raw format: one line per
stack with its count; `.venv/bin/pip install py-spy`); ``--profile`` prints a cProfile of this
process's routes, write and record.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bench.reconcile.run import seed
from services.optimizer.engine.cycle import decide
from services.optimizer.engine.runner import DecisionRunner, Written
from services.optimizer.model.config import PoliciesConfig
from services.optimizer.model.context import CycleInput
from services.optimizer.model.state import FleetState
from services.optimizer.sources.clients import SetupClient, VmsClient
from shared import migrations
from tests.helpers.database import create_database, drop_database
from tests.helpers.env import free_port, service_env, settings_for
from tests.helpers.processes import start_service

CONFIG = {
    "overload": {"window_s": 0},
    "low_confidence": {"window_s": 0},
    "environment": {"hysteresis_samples": 1},
    "recovery": {"silent_after_s": 86400},
}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the service's uvicorn)."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        t = p.cpu_times()
        total += t.user + t.system
    return total


def spy_on(pid: int, path: str) -> subprocess.Popen[bytes]:
    spy = subprocess.Popen(
        [
            *(str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid)),
            *("--subprocesses", "--rate", "500", "--format", "raw", "-o", path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # attached
    return spy


async def cycle(
    url: str,
    setup_url: str,
    vms_url: str,
    setup_pid: int,
    out: dict[str, Any],
    spy: str | None,
    profile: bool,
) -> None:
    prof = cProfile.Profile()
    settings = settings_for(
        "optimizer", url, setup_url=setup_url, vms_url=vms_url, source_timeout_s=300
    )
    engine = create_async_engine(url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    setup, vms = SetupClient(settings), VmsClient(settings)
    runner = DecisionRunner(settings, engine, maker, setup, vms)
    try:
        snapshot, nodes = await asyncio.gather(setup.snapshot(), vms.state())
        fleet = runner.fleet = FleetState.from_read(snapshot, nodes)
        del snapshot, nodes
        gc.freeze()  # as the runner does after a whole read
        config = PoliciesConfig().merged(CONFIG)
        inp = CycleInput(state=fleet, config=config, now=datetime.now(UTC))
        t = time.perf_counter()
        result = decide(inp)
        out["decide_s"] = time.perf_counter() - t
        out["operations"], out["decisions"] = len(result.operations), len(result.decisions)

        if profile:
            prof.enable()
        t = time.perf_counter()
        await runner._save_routes(result.routes)  # as the runner does, before the write
        out["routes_s"], out["routes"] = time.perf_counter() - t, len(result.routes)
        spying = spy_on(setup_pid, spy) if spy else None
        c_setup, c_self, t = cpu_s(setup_pid), time.process_time(), time.perf_counter()
        rejected = await runner._write(result.operations)
        out["write_s"] = time.perf_counter() - t
        if spying is not None:
            spying.send_signal(signal.SIGINT)
            spying.wait(timeout=60)
        out["write_cpu_self_s"] = time.process_time() - c_self
        out["write_cpu_setup_s"] = cpu_s(setup_pid) - c_setup
        assert rejected is None, rejected

        written = Written(dry_run=False, routes_saved=True)
        c_self, t = time.process_time(), time.perf_counter()
        await runner._record(uuid.uuid4().hex, result, result.decisions, {}, written)
        out["record_s"] = time.perf_counter() - t
        out["record_cpu_self_s"] = time.process_time() - c_self
        if profile:
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    finally:
        await setup.aclose()
        await vms.aclose()
        await engine.dispose()
        gc.unfreeze()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", type=int, default=100000)
    ap.add_argument(
        "--profile", action="store_true", help="cProfile of this process's routes, write, record"
    )
    ap.add_argument("--py-spy", dest="py_spy", help="record setup's process into this file")
    args = ap.parse_args()
    out: dict[str, Any] = {"load_start": Path("/proc/loadavg").read_text().split()[:3]}
    name = f"edgebench_coldwrite_{args.edges}_{uuid.uuid4().hex[:6]}"
    url = asyncio.run(create_database(name))
    procs = []
    try:
        for svc in ("setup", "vms", "optimizer"):
            migrations.upgrade(f"services.{svc}", url)
        asyncio.run(seed(url, args.edges))
        with tempfile.TemporaryDirectory() as tmp:
            ports = free_port(), free_port()
            common = dict(EDGE_MIGRATE_ON_START="false", EDGE_LOG_LEVEL="WARNING")
            for svc, port, extra in (
                ("setup", ports[0], {"SETUP_NOTIFY_MASTER": "false"}),
                ("vms", ports[1], {"VMS_STALE_AFTER_S": "3600", "VMS_NOTIFY_OPTIMIZER": "false"}),
            ):
                env = service_env(url, **extra, **common)
                procs.append(
                    start_service(svc, env=env, port=port, tmp_path=Path(tmp), timeout=120)
                )
            setup_url, vms_url = (f"http://127.0.0.1:{p}" for p in ports)
            asyncio.run(
                cycle(url, setup_url, vms_url, procs[0].pid, out, args.py_spy, args.profile)
            )
    finally:
        for p in reversed(procs):
            p.stop()
        asyncio.run(drop_database(name))
    out["load_end"] = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"\n=== cold write, {args.edges:,} edges, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"load average {' '.join(out['load_start'])} -> {' '.join(out['load_end'])}"
    )
    print(
        f"decide {out['decide_s']:.3f} s: {out['operations']} operations, "
        f"{out['decisions']} decisions"
    )
    print(f"routes {out['routes_s']:.3f} s: {out['routes']} routes saved before the write")
    print(
        f"write  {out['write_s']:.3f} s (CPU: this process {out['write_cpu_self_s']:.3f} s, "
        f"setup {out['write_cpu_setup_s']:.3f} s)"
    )
    print(f"record {out['record_s']:.3f} s (CPU: this process {out['record_cpu_self_s']:.3f} s)")


if __name__ == "__main__":
    main()
