"""Where the optimizer's whole read goes: the fleet `bench.reconcile.run` seeds, read whole in the
Arrow form, split into its steps and timed in one process (best of --repeat each):

Both services are asked for the columns the optimizer reads (``columns=``, as it asks).

- setup's answer: its tables (Postgres streams the rows as CSV, ``COPY``, pyarrow parses them)
  and the Arrow body;
- the VMS's answer: the same two steps;
- over HTTP: GET /fleet/snapshot and GET /nodes/state (the services as processes);
- the optimizer: decoding both bodies into a FleetRead and a NodesRead, building the mirror
  (FleetState.from_read, its columns included) and one decide over the mirror (every policy,
  candidates).

    .venv/bin/python -m bench.reconcile.wholeread --edges 100000 [--profile optimizer]

``--profile`` prints a cProfile of the optimizer's part (decode + build), or of each service's
answer build in process (``setup``, ``vms``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bench.reconcile.run import ARROW, seed
from services.optimizer.engine.cycle import decide
from services.optimizer.model.config import PoliciesConfig
from services.optimizer.model.context import CycleInput
from services.optimizer.model.state import FleetState
from services.optimizer.sources.columnar import fleet_read, nodes_read
from services.setup.fleet import repository as setup_repository
from services.vms.queries import repository as vms_repository
from shared import migrations
from shared.contracts import columnar
from tests.helpers.database import create_database, drop_database
from tests.helpers.env import SERVICE, free_port, service_env
from tests.helpers.processes import start_service


def best(repeat: int, step: Callable[[], Any]) -> tuple[float, Any]:
    out: tuple[float, Any] | None = None
    for _ in range(repeat):
        t = time.perf_counter()
        value = step()
        dt = time.perf_counter() - t
        if out is None or dt < out[0]:
            out = (dt, value)
    assert out is not None
    return out


def cpu_best(repeat: int, step: Callable[[], Any]) -> tuple[float, float, Any]:
    """Best wall time, the process CPU time of that run, and the value."""
    out: tuple[float, float, Any] | None = None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        value = step()
        dt, dc = time.perf_counter() - t, time.process_time() - c
        if out is None or dt < out[0]:
            out = (dt, dc, value)
    assert out is not None
    return out


SNAPSHOT_READ = frozenset(columnar.SNAPSHOT_READ)
NODES_READ = frozenset(columnar.NODES_READ)


async def setup_columns(maker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    async with maker() as session:
        selects = setup_repository.snapshot_selects()
        return await setup_repository.snapshot_tables(session, selects, SNAPSHOT_READ)


async def vms_columns(maker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    async with maker() as session:
        table, _ = await vms_repository.node_state_table(
            session, nids=None, silent=None, since=None, stale_after_s=3600.0, names=NODES_READ
        )
        return {"nodes": table}


def arrow_body(tables: dict[str, Any], meta: dict[str, Any]) -> bytes:
    return columnar.encode(list(tables.items()), meta)


def profiled(step: Callable[[], Any], top: int = 30) -> None:
    prof = cProfile.Profile()
    prof.enable()
    step()
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def in_process(url: str, repeat: int, profile: str | None, timings: dict[str, float]) -> None:
    async def run() -> None:
        engine = create_async_engine(url)
        maker = async_sessionmaker(engine, expire_on_commit=False)
        try:
            for name, query in (("setup", setup_columns), ("vms", vms_columns)):
                best_q = None
                columns: Any = None
                for _ in range(repeat):
                    t = time.perf_counter()
                    columns = await query(maker)
                    dt = time.perf_counter() - t
                    best_q = dt if best_q is None else min(best_q, dt)
                timings[f"{name}_sql_s"] = best_q or 0.0
                build = partial(arrow_body, columns, {"generated_at": "x"})
                dt, dc, b = cpu_best(repeat, build)
                timings[f"{name}_body_s"], timings[f"{name}_body_cpu_s"] = dt, dc
                timings[f"{name}_mb"] = len(b) / 1e6
                if profile == name:
                    prof = cProfile.Profile()
                    prof.enable()
                    await query(maker)
                    prof.disable()
                    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
                    profiled(build)
        finally:
            await engine.dispose()

    asyncio.run(run())


def optimizer_side(
    snap: bytes, nodes: bytes, repeat: int, profile: str | None, timings: dict[str, float]
) -> None:
    dt, dc, fleet = cpu_best(repeat, lambda: fleet_read(snap))
    timings["decode_fleet_s"], timings["decode_fleet_cpu_s"] = dt, dc
    dt, dc, node_read = cpu_best(repeat, lambda: nodes_read(nodes))
    timings["decode_nodes_s"], timings["decode_nodes_cpu_s"] = dt, dc
    dt, dc, state = cpu_best(repeat, lambda: FleetState.from_read(fleet, node_read))
    timings["build_s"], timings["build_cpu_s"] = dt, dc
    cols = state.columns
    dt, _ = best(
        repeat,
        lambda: cols.build(
            list(state.edges.values()), state.nodes, list(state.deployments.values())
        ),
    )
    timings["columns_s"] = dt
    cfg = PoliciesConfig().merged(
        {
            "overload": {"window_s": 0},
            "low_confidence": {"window_s": 0},
            "environment": {"hysteresis_samples": 1},
            "recovery": {"silent_after_s": 86400},
        }
    )
    dt, dc, result = cpu_best(
        1, lambda: decide(CycleInput(state=state, config=cfg, now=datetime.now(UTC)))
    )
    timings["decide_s"], timings["decide_cpu_s"] = dt, dc
    timings["decide_ops"] = len(result.operations)
    if profile == "optimizer":
        profiled(
            lambda: FleetState.from_read(fleet_read(snap), nodes_read(nodes)),
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", choices=("optimizer", "setup", "vms"), default=None)
    ap.add_argument("--database", help="reuse this seeded database (kept at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the database it seeds")
    args = ap.parse_args()
    timings: dict[str, float] = {
        "loadavg_start": float(Path("/proc/loadavg").read_text().split()[0])
    }
    name = args.database or f"edgebench_wholeread_{args.edges}_{uuid.uuid4().hex[:6]}"
    procs = []
    try:
        if args.database:
            from tests.helpers.database import database_url

            url = database_url(name)
        else:
            url = asyncio.run(create_database(name))
            for svc in ("setup", "vms", "optimizer"):
                migrations.upgrade(f"services.{svc}", url)
            t = time.perf_counter()
            asyncio.run(seed(url, args.edges))
            timings["seed_s"] = time.perf_counter() - t
        in_process(url, args.repeat, args.profile, timings)
        with tempfile.TemporaryDirectory() as tmp:
            setup_port, vms_port = free_port(), free_port()
            common = dict(EDGE_MIGRATE_ON_START="false", EDGE_LOG_LEVEL="WARNING")
            procs.append(
                start_service(
                    "setup",
                    env=service_env(url, SETUP_NOTIFY_MASTER="false", **common),
                    port=setup_port,
                    tmp_path=Path(tmp),
                    timeout=120,
                )
            )
            procs.append(
                start_service(
                    "vms",
                    env=service_env(url, VMS_STALE_AFTER_S="3600", **common),
                    port=vms_port,
                    tmp_path=Path(tmp),
                    timeout=120,
                )
            )
            with (
                httpx.Client(base_url=f"http://127.0.0.1:{setup_port}", headers=SERVICE) as setup,
                httpx.Client(base_url=f"http://127.0.0.1:{vms_port}", headers=SERVICE) as vms,
            ):
                setup.timeout = vms.timeout = httpx.Timeout(300)
                snapshot_columns = {"columns": ",".join(columnar.SNAPSHOT_READ)}
                dt, snap = best(
                    args.repeat,
                    lambda: (
                        setup.get("/fleet/snapshot", headers=ARROW, params=snapshot_columns).content
                    ),
                )
                timings["http_setup_s"] = dt
                dt, nodes = best(
                    args.repeat,
                    lambda: (
                        vms.get(
                            "/nodes/state",
                            headers=ARROW,
                            params={"include_silent": "false", "columns": ",".join(NODES_READ)},
                        ).content
                    ),
                )
                timings["http_vms_s"] = dt
        optimizer_side(snap, nodes, args.repeat, args.profile, timings)
    finally:
        for p in reversed(procs):
            p.stop()
        if not (args.database or args.keep):
            asyncio.run(drop_database(name))
        elif not args.database:
            print(f"kept database {name}")
    timings["loadavg_end"] = float(Path("/proc/loadavg").read_text().split()[0])
    print(f"\n=== whole read, {args.edges:,} edges, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for key, value in timings.items():
        print(f"  {key:<22} {value:10.3f}")


if __name__ == "__main__":
    main()
