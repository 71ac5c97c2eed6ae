"""Ingest benchmark: the VMS's /usage and /batch against a no-op endpoint and a naive
one-commit-per-record one.

    .venv/bin/python bench/ingest/run.py [--duration 10] [--workers 2] [--connections 64]

Creates its own database on the local Postgres (EDGE_BENCH_ADMIN_URL, default
postgresql://postgres@127.0.0.1:5432/postgres), migrates the VMS schema, then for each target
starts the server (uvicorn, same settings for all), warms it up, drives it with wrk for
``--duration`` seconds and reads wrk's figures. ``copy`` is /batch's baseline: no server, no
HTTP, the leanest bulk write there is (asyncpg's ``copy_records_to_table`` of ready-made rows
into the same table), from ``--workers`` processes with ``--batch-connections`` connections in
all and ``--batch-size`` rows a COPY. Afterwards it counts, per target, the rows in vms.usage:
every acknowledged record must be there. Prints one table side by side.

Beside the rates it prints the CPU time each stored record cost while the target ran: the
server's processes (for ``copy``: its client processes) and the Postgres backends serving them.
On a machine shared with other work the rates follow whatever share of the cores each target
got; the CPU a record costs moves much less, and on a saturated machine the rates' ratio tends
to the inverse ratio of these costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from services.vms.records import ROW_OF, UsageRecord  # noqa: E402
from services.vms.storage.writer import COLUMNS  # noqa: E402
from shared import migrations  # noqa: E402
from shared.edge_tokens import issue_edge_token  # noqa: E402

ADMIN_URL = os.environ.get("EDGE_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "edge_bench_ingest"
SECRET = "bench-edge-token-secret-0123456789"
OPERATOR = "bench-operator-token-0123456789"
SERVICE = "bench-service-token-0123456789"


@dataclass
class Result:
    name: str
    marker: str | None
    records_per_request: int
    requests: int = 0
    non_2xx: int = 0
    socket_errors: str = ""
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    found: int | None = None
    notes: list[str] = field(default_factory=list)
    server_cpu_s: float | None = None  # the server's (copy: the clients') processes
    postgres_cpu_s: float | None = None  # the backends serving them

    def cpu_us_per_record(self, seconds: float | None) -> str:
        if seconds is None or not self.acked_records:
            return "-"
        return f"{seconds / self.acked_records * 1e6:.2f}"

    @property
    def acked_records(self) -> int:
        return (self.requests - self.non_2xx) * self.records_per_request

    @property
    def records_per_s(self) -> float:
        return self.acked_records / self.seconds if self.seconds else 0.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def db_url(name: str) -> str:
    return (
        ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    )


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def lua_script(path: str, tokens: list[str], body: str) -> str:
    toks = ", ".join(json.dumps(t) for t in tokens)
    return f"""
local tokens = {{{toks}}}
local body = {json.dumps(body)}
local i = 0
request = function()
  i = i + 1
  local headers = {{}}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]
  return wrk.format("POST", "{path}", headers, body)
end
"""


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    return float(m[1]) * _UNITS[m[2]] if m else float("nan")


def run_wrk(
    url: str, script: Path, *, connections: int, duration: int, result: Result | None
) -> str:
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60).stdout
    if result is not None:
        if m := re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out):
            result.requests = int(m[1])
            result.seconds = _ms(m[2] + m[3]) / 1000
        if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
            result.non_2xx = int(m[1])
        if m := re.search(r"Socket errors: (.*)", out):
            result.socket_errors = m[1].strip()
        if m := re.search(r"^\s+50%\s+(\S+)", out, re.M):
            result.p50_ms = _ms(m[1])
        if m := re.search(r"^\s+99%\s+(\S+)", out, re.M):
            result.p99_ms = _ms(m[1])
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of ``pids`` so far (those still running)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def backend_pids() -> list[int]:
    """The Postgres backends connected to the bench's database, by their process titles
    ("postgres: USER DB HOST ..."): found without a connection of their own."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        title = proc.info["cmdline"] or []
        if title and title[0].startswith("postgres:") and f" {DB_NAME} " in " ".join(title) + " ":
            found.append(proc.pid)
    return found


class Server:
    def __init__(self, app: str, env: dict[str, str], workers: int, log: Path, ready_path: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")  # noqa: SIM115 (open for the server's life; closed in stop)
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
        ]
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{app} exited; see {log}")
            try:
                if httpx.get(self.url + ready_path, timeout=1).status_code == 200:
                    time.sleep(1.0)  # let every worker finish its start-up
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{app} not ready; see {log}")

    def pids(self) -> list[int]:
        """The server's processes: uvicorn and its workers."""
        try:
            main = psutil.Process(self.proc.pid)
            return [main.pid, *(p.pid for p in main.children(recursive=True))]
        except psutil.Error:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def usage_body(marker: str) -> str:
    return json.dumps(
        {
            "code": "0000",
            "message": marker,
            "username": "edge-master-01-1129",
            "cpu": "12.5",
            "memory": 43.1,
            "func": "SUNNY",
        }
    )


def batch_body(marker: str, size: int) -> str:
    record = {"kind": "usage", "data": json.loads(usage_body(marker))}
    return json.dumps({"records": [record] * size})


async def create_partitions(url: str) -> None:
    from datetime import timedelta

    from services.vms.storage.partitions import ensure_days

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        today = datetime.now(UTC).date()
        await ensure_days(conn, [today, today + timedelta(days=1)])
    finally:
        await conn.close()


async def count_markers(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch("SELECT message, count(*) AS n FROM vms.usage GROUP BY message")
        return {r["message"]: r["n"] for r in rows}
    finally:
        await conn.close()


def _copy_rows(marker: str, size: int) -> list[tuple]:
    """``size`` ready-made vms.usage rows (the columns of services.vms.records.UsageRecord)."""
    now = datetime.now(UTC)
    data = json.loads(usage_body(marker))
    record = UsageRecord(
        "0x0000",
        now,
        now,
        float(data["cpu"]),
        float(data["memory"]),
        data["func"],
        data["username"],
        data["code"],
        data["message"],
        True,
        True,
    )
    return [ROW_OF["usage"](record)] * size


async def _copy_for(
    dsn: str, marker: str, size: int, connections: int, seconds: float
) -> tuple[int, float]:
    """COPY ``size`` rows at a time on ``connections`` connections for ``seconds``: rows stored
    and the CPU seconds of the backends that stored them."""
    rows = _copy_rows(marker, size)
    columns = list(COLUMNS["usage"])
    stored = 0
    deadline = time.monotonic() + seconds

    async def one() -> float:
        """Its backend's CPU seconds while it copied."""
        nonlocal stored
        conn = await asyncpg.connect(dsn)
        try:
            backend = [conn.get_server_pid()]
            before = cpu_seconds(backend)
            while time.monotonic() < deadline:
                await conn.copy_records_to_table(
                    "usage", records=rows, columns=columns, schema_name="vms"
                )
                stored += size
            return cpu_seconds(backend) - before
        finally:
            await conn.close()

    backends = await asyncio.gather(*(one() for _ in range(connections)))
    return stored, sum(backends)


def _copy_process(args: tuple[str, str, int, int, float]) -> tuple[int, float, float, float]:
    """Rows stored, seconds, this client's CPU seconds and its backends'."""
    started, cpu = time.perf_counter(), time.process_time()
    stored, backends = asyncio.run(_copy_for(*args))
    return stored, time.perf_counter() - started, time.process_time() - cpu, backends


def run_copy(url: str, marker: str, *, size: int, connections: int, workers: int, seconds: float):
    """The raw COPY baseline from ``workers`` processes (like the servers' worker processes)."""
    from concurrent.futures import ProcessPoolExecutor

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    per = [connections // workers + (1 if i < connections % workers else 0) for i in range(workers)]
    jobs = [(dsn, marker, size, n, seconds) for n in per if n]
    with ProcessPoolExecutor(len(jobs)) as pool:
        done = list(pool.map(_copy_process, jobs))
    return (
        sum(d[0] for d in done),
        max(d[1] for d in done),
        sum(d[2] for d in done),
        sum(d[3] for d in done),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per target")
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of warm-up per target (not counted)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="uvicorn worker processes, every server (default: one a core)",
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="wrk connections for single-record targets"
    )
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=500, help="records per /batch request")
    parser.add_argument(
        "--nodes", type=int, default=200, help="distinct edge tokens (nodes) the load rotates over"
    )
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--only", default="noop,naive,naive-raw,usage,batch,copy", help="comma list of targets"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{DB_NAME}"'))
    url = db_url(DB_NAME)
    migrations.upgrade("services.vms", url)
    asyncio.run(create_partitions(url))  # the baselines insert into the same partitioned table

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    tokens = [issue_edge_token(f"0x{i:04x}", SECRET) for i in range(args.nodes)]
    env = dict(os.environ)
    env.update(
        EDGE_ENV="production",
        EDGE_DATABASE_URL=url,
        EDGE_OPERATOR_TOKEN=OPERATOR,
        EDGE_SERVICE_TOKEN=SERVICE,
        EDGE_EDGE_TOKEN_SECRET=SECRET,
        # The baselines verify HMAC edge tokens: the VMS takes the same ones, in the legacy window
        # (its principal cache makes the signature's cost a once-per-token one either way).
        EDGE_LEGACY_CREDENTIALS_UNTIL="2999-12-31",
        EDGE_FETCH_PUBLIC_KEYS="false",
        EDGE_MIGRATE_ON_START="false",
        EDGE_LOG_LEVEL="WARNING",
        EDGE_LOG_FORMAT="text",
        # No setup in the bench: edge tokens are trusted (setup signed them), nothing is fetched.
        EDGE_SETUP_URL=f"http://127.0.0.1:{free_port()}",
        VMS_NODES_MISS_REFRESH_S="3600",
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
        PYTHONPATH=str(REPO),
    )
    only = set(args.only.split(","))
    results: list[Result] = []

    def target(
        server: Server, name: str, path: str, body_of, per_request: int, connections: int
    ) -> None:
        if name not in only:
            return
        marker = f"bench-{name}" if name != "noop" else None
        result = Result(name, marker, per_request)
        warm = work / f"{name}-warm.lua"
        warm.write_text(lua_script(path, tokens, body_of(f"warm-{name}")))
        run_wrk(server.url, warm, connections=connections, duration=args.warmup, result=None)
        script = work / f"{name}.lua"
        script.write_text(lua_script(path, tokens, body_of(marker or "noop")))
        print(f"  {name}: {args.duration}s of wrk, {connections} connections ...", flush=True)
        server_pids = server.pids()
        server_cpu = cpu_seconds(server_pids)
        backends = {pid: cpu_seconds([pid]) for pid in backend_pids()}
        out = run_wrk(
            server.url, script, connections=connections, duration=args.duration, result=result
        )
        result.server_cpu_s = cpu_seconds(server_pids) - server_cpu
        # A backend the server's pool opened during the run counts whole.
        result.postgres_cpu_s = sum(
            cpu_seconds([pid]) - backends.get(pid, 0.0) for pid in backend_pids()
        )
        (work / f"{name}.wrk.txt").write_text(out)
        results.append(result)

    print(
        f"bench/ingest: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}; logs and wrk output in {work}",
        flush=True,
    )
    try:
        if only & {"noop", "naive", "naive-raw"}:
            base = Server(
                "bench.ingest.baseline_app:create_app",
                env,
                args.workers,
                work / "baseline.log",
                "/openapi.json",
            )
            try:
                target(base, "noop", "/noop", usage_body, 1, args.connections)
                target(base, "naive", "/naive", usage_body, 1, args.connections)
                target(base, "naive-raw", "/naive-raw", usage_body, 1, args.connections)
            finally:
                base.stop()
        if only & {"usage", "batch"}:
            vms = Server(
                "services.vms.app:create_app", env, args.workers, work / "vms.log", "/readyz"
            )
            try:
                target(vms, "usage", "/usage", usage_body, 1, args.connections)
                target(
                    vms,
                    "batch",
                    "/batch",
                    lambda m: batch_body(m, args.batch_size),
                    args.batch_size,
                    args.batch_connections,
                )
            finally:
                vms.stop()
        if "copy" in only:
            print(
                f"  copy: {args.duration}s of raw asyncpg COPY, {args.batch_connections} "
                f"connections, {args.batch_size} rows a COPY ...",
                flush=True,
            )
            run_copy(
                url,
                "warm-copy",
                size=args.batch_size,
                connections=args.batch_connections,
                workers=args.workers,
                seconds=args.warmup,
            )
            copied = Result("copy", "bench-copy", args.batch_size)
            stored, copied.seconds, copied.server_cpu_s, copied.postgres_cpu_s = run_copy(
                url,
                "bench-copy",
                size=args.batch_size,
                connections=args.batch_connections,
                workers=args.workers,
                seconds=args.duration,
            )
            copied.requests = stored // args.batch_size
            results.append(copied)
        found = asyncio.run(count_markers(url))
        for r in results:
            if r.marker:
                r.found = found.get(r.marker, 0)
    finally:
        if not args.keep_db:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))

    print_table(results, args, os.getloadavg()[0])
    lost = [r for r in results if r.found is not None and r.found < r.acked_records]
    return 1 if lost else 0


def print_table(results: list[Result], args, load_after: float) -> None:
    by = {r.name: r for r in results}
    print()
    print(
        f"{'target':<9} {'records/s':>11} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'non-2xx':>8} {'acked':>9} {'in table':>9} {'cpu us/rec':>10} {'pg us/rec':>9}"
        "  socket errors"
    )
    for r in results:
        found = "-" if r.found is None else str(r.found)
        reqs = r.requests / r.seconds if r.seconds else 0
        p50, p99 = (f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}") if r.name != "copy" else ("-", "-")
        print(
            f"{r.name:<9} {r.records_per_s:>11,.0f} {reqs:>9,.0f} {p50:>8} "
            f"{p99:>8} {r.non_2xx:>8} "
            f"{r.acked_records:>9} {found:>9} {r.cpu_us_per_record(r.server_cpu_s):>10} "
            f"{r.cpu_us_per_record(r.postgres_cpu_s):>9}  {r.socket_errors or '-'}"
        )
    print()
    if "usage" in by and "noop" in by and by["noop"].records_per_s:
        print(
            f"/usage vs no-op ceiling: {by['usage'].records_per_s / by['noop'].records_per_s:6.1%}"
            "   (target >= 60%)"
        )
    if "usage" in by and "naive" in by and by["naive"].records_per_s:
        print(
            "/usage vs naive baseline: "
            f"{by['usage'].records_per_s / by['naive'].records_per_s:6.2f}x"
            "  (target >= 5x)"
        )
    if "usage" in by and "naive-raw" in by and by["naive-raw"].records_per_s:
        print(
            "/usage vs naive-raw (asyncpg, autocommit): "
            f"{by['usage'].records_per_s / by['naive-raw'].records_per_s:6.2f}x"
        )
    if "batch" in by:
        print(
            f"/batch: {by['batch'].records_per_s:,.0f} records/s in requests of {args.batch_size}"
        )
    if "batch" in by and "copy" in by and by["copy"].records_per_s:
        print(
            f"/batch vs raw asyncpg COPY ({by['copy'].records_per_s:,.0f} records/s): "
            f"{by['batch'].records_per_s / by['copy'].records_per_s:6.1%}   (target >= 50%)"
        )
        batch, copy = by["batch"], by["copy"]
        costs = [
            ((r.server_cpu_s or 0.0) + (r.postgres_cpu_s or 0.0)) / r.acked_records
            if r.acked_records
            else 0.0
            for r in (batch, copy)
        ]
        if all(costs):
            print(
                f"CPU a record, server and Postgres: /batch {costs[0] * 1e6:.2f} us, "
                f"raw COPY {costs[1] * 1e6:.2f} us: COPY's cost / /batch's = "
                f"{costs[1] / costs[0]:6.1%}"
            )
    for r in results:
        if r.found is not None:
            verdict = (
                "all acknowledged records found"
                if r.found >= r.acked_records
                else "RECORDS MISSING"
            )
            print(f"{r.name}: {r.acked_records} acknowledged, {r.found} in vms.usage: {verdict}")
    print(
        f"workers {args.workers}, wrk 1 thread, {args.connections} connections "
        f"({args.batch_connections} for /batch), "
        f"{args.duration}s per target; load average after: {load_after:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
