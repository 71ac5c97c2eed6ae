"""Whole-read cycles of two checkouts' optimizers, in turn, on one seeded database: each round
starts a checkout's setup, VMS and optimizer (OPTIMIZER_FULL_REFRESH_EVERY=1: every resync reads
whole), lets it run its first cycle, times --cycles resyncs and stops it; the order alternates
(A B, B A, ...) so that both see the same load. Seed the database with
``bench.reconcile.wholeread --keep`` (it prints the name).

    .venv/bin/python -m bench.reconcile.whole_cycles --database NAME \\
        --checkouts main=/work/main,branch=. --rounds 4 --cycles 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import httpx

from bench.reconcile.run import OPTIMIZER_ENV, first_cycle
from tests.helpers.database import database_url
from tests.helpers.env import OPERATOR, free_port, service_env
from tests.helpers.processes import Proc, edgectl, wait_http


def start(repo: Path, name: str, env: dict[str, str], tmp: Path) -> tuple[Proc, int]:
    """A service of the checkout at ``repo`` (its code: the process runs there); a port taken
    meanwhile by another process is tried again."""
    for _ in range(3):
        port = free_port()
        proc = Proc(
            edgectl("serve", name, "--port", str(port)),
            env=env,
            log_path=tmp / f"{repo.name}-{name}-{port}.log",
            cwd=repo,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", timeout=120, proc=proc)
            return proc, port
        except RuntimeError:
            continue
    raise RuntimeError(f"{name} of {repo} did not start")


def run_checkout(repo: Path, url: str, cycles: int, tmp: Path) -> list[dict[str, float]]:
    procs: list[Proc] = []
    try:
        common = dict(EDGE_MIGRATE_ON_START="false", EDGE_LOG_LEVEL="WARNING")
        env = service_env(url, SETUP_NOTIFY_MASTER="false", **common)
        setup, setup_port = start(repo, "setup", env, tmp)
        procs.append(setup)
        env = service_env(url, VMS_STALE_AFTER_S="3600", VMS_NOTIFY_OPTIMIZER="false", **common)
        vms, vms_port = start(repo, "vms", env, tmp)
        procs.append(vms)
        env = service_env(
            url,
            EDGE_SETUP_URL=f"http://127.0.0.1:{setup_port}",
            EDGE_VMS_URL=f"http://127.0.0.1:{vms_port}",
            **OPTIMIZER_ENV,
            OPTIMIZER_FULL_REFRESH_EVERY="1",
            **common,
        )
        opt, opt_port = start(repo, "optimizer", env, tmp)
        procs.append(opt)
        out = []
        with httpx.Client(
            base_url=f"http://127.0.0.1:{opt_port}", headers=OPERATOR, timeout=600
        ) as client:
            first_cycle(client)
            for _ in range(cycles):
                load = float(Path("/proc/loadavg").read_text().split()[0])
                summary = client.post("/cycle").json()
                assert summary["refresh"]["kind"] == "full", summary["refresh"]
                t = summary["timings_ms"]
                out.append({**t, "loadavg": load, "operations": summary["operations"]})
        return out
    finally:
        for p in reversed(procs):
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", required=True)
    ap.add_argument("--checkouts", default="main=/work/main,branch=.")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--cycles", type=int, default=3)
    args = ap.parse_args()
    checkouts = {
        name: Path(path).resolve()
        for name, path in (item.split("=", 1) for item in args.checkouts.split(","))
    }
    url = database_url(args.database)
    found: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(checkouts) if r % 2 == 0 else list(reversed(checkouts))
            for name in order:
                for t in run_checkout(checkouts[name], url, args.cycles, Path(tmp)):
                    found[name].append(t)
                    print(
                        f"{name:<8} round {r}: total {t['total']:7.0f} ms  fetch "
                        f"{t['fetch']:6.0f}  load {t['load']:4.0f}  decide {t['decide']:5.0f}  "
                        f"ops {t['operations']:.0f}  loadavg {t['loadavg']:.2f}",
                        flush=True,
                    )
    for name, ts in found.items():
        print(
            f"{name:<8} median total {statistics.median(t['total'] for t in ts):7.0f} ms, fetch "
            f"{statistics.median(t['fetch'] for t in ts):6.0f}, decide "
            f"{statistics.median(t['decide'] for t in ts):5.0f}; best total "
            f"{min(t['total'] for t in ts):7.0f} (n={len(ts)}, load average "
            f"{min(t['loadavg'] for t in ts):.1f}-{max(t['loadavg'] for t in ts):.1f})"
        )


if __name__ == "__main__":
    main()
