"""Fan-out: N simulated pull agents get an update notice and fetch their workload.

Real parts: a fresh database, setup and the master as processes (the master publishing notices to
MQTT), a private Mosquitto (/usr/sbin/mosquitto, a permissive config on a free loopback port: the
shipped ACL needs one broker user per agent, which changes nothing in the fan-out), one package
uploaded through the master. N edges on an agent-pull cluster are seeded with SQL; the simulated
agents are in-process: by default (``--agents-client lean``, bench.updates.lean_agent) each speaks
MQTT 3.1.1 and HTTP/1.1 on raw asyncio streams (one broker connection subscribed QoS 1 to its own
``edge/<nid>/desired``, a connection of its own to the master on its notice, its own token), which
costs the bench a fraction of the CPU; ``--agents-client aiomqtt``: aiomqtt clients and one shared
aiohttp session, as before (at 5,000 agents that process, not the master, was the bound). The
bench process's own CPU is printed beside the master's.

The change: a deployment of the package on every edge (one SQL insert) and one reconcile pass
(POST /reconcile): the master commits each edge's desired set and publishes its notice. Each agent,
on its notice, pulls ``GET /edges/me/desired`` and then the package ``GET /artifacts/{digest}``.
Notice-to-fetch is the agent's clock when the desired set arrived minus the notice's ``sent_at``
(the master's clock; same machine).

Baselines measured in the same run: the master's CPU while idle (before the change), and a
polling round (every agent asks for its desired set at once, no notice: what agents without
notices do every poll period), its latency and the master's CPU.

    .venv/bin/python -m bench.updates.fanout --agents 1000

``--masters 2``: a second master process serves the same site (``MASTER_BOARD_SHARED``: the
first leads and writes the board to Postgres, the second serves it from its LISTEN/NOTIFY copy).
After the fan-out, the same polling rounds are timed with every agent asking the first master,
then with the agents split over both: fetches a second with 1 and with 2 processes, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import aiomqtt
import asyncpg
import httpx
import psutil

from bench.updates.lean_agent import run_lean_agent
from shared import migrations
from shared.contracts.updates import UpdateNotice, notice_topic
from shared.edge_tokens import issue_edge_token
from tests.helpers.database import asyncpg_url, create_database, drop_database
from tests.helpers.env import OPERATOR, SERVICE, SIGNER, free_port, service_env
from tests.helpers.processes import Proc, start_service
from tests.master.helpers import package_files, targz

MOSQUITTO = "/usr/sbin/mosquitto"
# Idle connections in the agents' shared pool are dropped before uvicorn's keep-alive timeout
# (5 s) closes them: a request on a connection the master is closing meanwhile is reset.
KEEPALIVE_S = 2.0

SEED = """
INSERT INTO setup.edges (id, name, nid, cluster_id, type, address, supports_analysis,
                         description, status, created_at, updated_at)
SELECT g, 'edge-' || g, '0x' || to_hex(g), $CLUSTER, 1, '', false, '', 'active', now(), now()
  FROM generate_series(1, $N) g;
SELECT setval(pg_get_serial_sequence('setup.edges', 'id'), $N);
"""

DEPLOY = """
INSERT INTO setup.deployments (id, edge_id, ai_id, filename, desired, params, allow_multiple,
                               generation, observed, observed_generation, restarts,
                               requested_by, created_at, updated_at)
SELECT g, g, $AI, 'monitoring', 'running', '{}', false, 1, 'pending', 0, 0, 'operator', now(),
       now()
  FROM generate_series(1, $N) g;
SELECT setval(pg_get_serial_sequence('setup.deployments', 'id'), $N);
"""


@dataclass
class Agent:
    nid: str
    token: str
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    notice_sent_at: float | None = None
    spread_s: float | None = None
    digest: str | None = None  # the package its desired set names
    notice_at: float | None = None
    asked_at: float | None = None  # when it asked for its desired set (after its spread)
    desired_at: float | None = None
    etag: str | None = None
    artifact_at: float | None = None
    error: str | None = None


class CpuSampler:
    """The master's CPU: seconds used over a window, and the highest 0.5 s sample."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> CpuSampler:
        t = self.proc.cpu_times()
        self.cpu0, self.t0 = t.user + t.system, time.monotonic()
        self.proc.cpu_percent(None)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, self.proc.cpu_percent(None))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        t = self.proc.cpu_times()
        self.cpu_s = t.user + t.system - self.cpu0
        self.wall_s = time.monotonic() - self.t0

    def line(self) -> str:
        return (
            f"{self.cpu_s:6.2f} CPU-s over {self.wall_s:5.1f} s "
            f"(avg {100 * self.cpu_s / max(self.wall_s, 1e-9):5.1f} %, peak {self.peak:5.1f} %)"
        )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def dist(values: list[float]) -> str:
    if not values:
        return "no values"
    return (
        f"p50 {1000 * statistics.median(values):7.0f} ms  p99 {1000 * pct(values, 0.99):7.0f} ms"
        f"  max {1000 * max(values):7.0f} ms  (n={len(values)})"
    )


def start_broker(tmp: Path) -> tuple[Proc, int]:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 10000\nlog_type error\nlog_type warning\nlog_dest stdout\nuser root\n"
    )
    proc = Proc(
        [MOSQUITTO, "-c", str(conf)], env={"PATH": "/usr/bin:/bin"}, log_path=tmp / "mq.log"
    )
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("mosquitto did not start")


async def agent_loop(
    a: Agent, port: int, http: aiohttp.ClientSession, connect_gate: asyncio.Semaphore
) -> None:
    topic = notice_topic(a.nid)
    headers = {"Authorization": f"Bearer {a.token}"}
    async with connect_gate:
        client = aiomqtt.Client("127.0.0.1", port, identifier=f"agent-{a.nid}", keepalive=60)
        await client.__aenter__()
        await client.subscribe(topic, qos=1)
    a.connected.set()
    try:
        async for message in client.messages:
            a.notice_at = time.time()
            notice = UpdateNotice.model_validate_json(bytes(message.payload or b""))
            a.notice_sent_at = notice.sent_at
            a.spread_s = notice.spread_s
            # As the agent does (edge_ai.agent.puller): a random share of the notice's spread.
            await asyncio.sleep(random.uniform(0.0, notice.spread_s))
            a.asked_at = time.time()
            try:
                async with http.get("/edges/me/desired", headers=headers) as r:
                    r.raise_for_status()
                    desired = await r.json()
                    a.etag = r.headers.get("ETag")
                a.desired_at = time.time()
                digest = a.digest = desired["workloads"][0]["package_digest"]
                async with http.get(f"/artifacts/{digest}", headers=headers) as r:
                    r.raise_for_status()
                    await r.read()
                a.artifact_at = time.time()
            except (aiohttp.ClientError, TimeoutError, KeyError, IndexError) as exc:
                a.error = f"{type(exc).__name__}: {exc}"
            return
    finally:
        await client.__aexit__(None, None, None)


async def poll_round(
    agents: list[Agent], http: aiohttp.ClientSession, *, conditional: bool = False
) -> list[float]:
    """Every agent asks at once; ``conditional``: with the ETag it has (unchanged: a 304)."""

    async def one(a: Agent) -> float | None:
        t = time.perf_counter()
        headers = {"Authorization": f"Bearer {a.token}"}
        if conditional and a.etag:
            headers["If-None-Match"] = a.etag
        try:
            async with http.get("/edges/me/desired", headers=headers) as r:
                if r.status != 304:
                    r.raise_for_status()
                await r.read()
        except (aiohttp.ClientError, TimeoutError):
            return None  # counted as failed: (n=...) below the agents' number
        return time.perf_counter() - t

    answered = await asyncio.gather(*(one(a) for a in agents))
    return [t for t in answered if t is not None]


async def fan_out(
    n: int,
    db_url: str,
    ai_id: int,
    master: str,
    master_pid: int,
    port: int,
    master_urls: list[str],
    client: str,
) -> None:
    agents = [Agent(f"0x{i:x}", issue_edge_token(f"0x{i:x}", SIGNER)) for i in range(1, n + 1)]
    master_port = int(master.rsplit(":", 1)[1])
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
    async with aiohttp.ClientSession(master, connector=connector, timeout=timeout) as http:
        gate = asyncio.Semaphore(50)
        t = time.perf_counter()
        if client == "lean":
            loops = [run_lean_agent(a, port, master_port, gate) for a in agents]
        else:
            loops = [agent_loop(a, port, http, gate) for a in agents]
        tasks = [asyncio.create_task(loop) for loop in loops]
        await asyncio.wait_for(asyncio.gather(*(a.connected.wait() for a in agents)), 300)
        print(f"{n} agents connected and subscribed in {time.perf_counter() - t:.1f} s")

        with CpuSampler(master_pid) as idle:
            await asyncio.sleep(5)
        print(f"baseline: master idle, {n} agents connected      {idle.line()}")

        conn = await asyncpg.connect(asyncpg_url(db_url))
        try:
            await conn.execute(DEPLOY.replace("$N", str(n)).replace("$AI", str(ai_id)))
        finally:
            await conn.close()
        with CpuSampler(master_pid) as busy, CpuSampler(os.getpid()) as agents_cpu:
            triggered = time.time()
            async with http.post("/reconcile", headers=OPERATOR) as r:
                r.raise_for_status()
            _, pending = await asyncio.wait(tasks, timeout=600)
        for task in pending:
            task.cancel()
        errors = [a.error for a in agents if a.error]
        got = [a for a in agents if a.desired_at is not None and a.notice_sent_at is not None]
        print(f"\nnotice fan-out: {len(got)} of {n} agents fetched their desired set")
        if errors:
            print(f"  {len(errors)} errors, e.g. {errors[0]}")
        art = [a for a in got if a.artifact_at is not None]
        rows = (
            ("notice delivery    (sent_at -> notice at agent)", [a.notice_at for a in got], got),
            ("notice-to-fetch    (sent_at -> desired set)", [a.desired_at for a in got], got),
            ("notice-to-package  (sent_at -> package fetched)", [a.artifact_at for a in art], art),
        )
        for label, times, who in rows:
            gaps = [t - a.notice_sent_at for t, a in zip(times, who, strict=True)]
            print(f"  {label:<50}{dist(gaps)}")
        asked = [a.desired_at - a.asked_at for a in got if a.asked_at and a.desired_at]
        print(f"  {'desired-set request (asked -> answered)':<50}{dist(asked)}")
        last = max((a.artifact_at or a.desired_at or 0) for a in got) if got else triggered
        sent = [a.notice_sent_at for a in got if a.notice_sent_at is not None]
        first_sent, last_sent = min(sent, default=triggered), max(sent, default=triggered)
        print(
            f"  change -> first notice published {first_sent - triggered:5.2f} s, last "
            f"{last_sent - triggered:5.2f} s; change -> last agent served {last - triggered:5.2f} s"
        )
        print(f"  master CPU during it: {busy.line()}")
        print(f"  the {n} simulated agents' process: {agents_cpu.line()}")
        spreads = sorted({a.spread_s for a in got if a.spread_s is not None})
        print(f"  the notices' spread_s: {', '.join(f'{s:g}' for s in spreads)} s")
        print(
            "  goal: notice-to-fetch p50 < 1 s, p99 < 2 s (agents spread their fetch over the "
            "notice's spread_s: pull edges / MASTER_PULL_FETCHES_PER_S)"
        )

        with CpuSampler(master_pid) as polling, CpuSampler(os.getpid()) as agents_cpu:
            latencies = await poll_round(agents, http)
        print(f"\nbaseline: a polling round ({n} GET /edges/me/desired at once, no notice)")
        print(f"  request latency                                   {dist(latencies)}")
        print(f"  master CPU during it: {polling.line()}")
        print(f"  the {n} simulated agents' process: {agents_cpu.line()}")
        with CpuSampler(master_pid) as polling, CpuSampler(os.getpid()) as agents_cpu:
            latencies = await poll_round(agents, http, conditional=True)
        print(f"\nthe same round with If-None-Match (nothing changed: {n} x 304)")
        print(f"  request latency                                   {dist(latencies)}")
        print(f"  master CPU during it: {polling.line()}")
        print(f"  the {n} simulated agents' process: {agents_cpu.line()}")
    if len(master_urls) > 1:
        await throughput(agents, master_urls)
    if shutil.which("wrk"):
        await wrk_throughput(agents, master_urls, ["/edges/me/desired"])
        digest = next((a.digest for a in agents if a.digest), None)
        if digest:  # what the notice's spread plans for: an agent's desired set and package
            await wrk_throughput(
                agents, master_urls[:1], ["/edges/me/desired", f"/artifacts/{digest}"]
            )


async def throughput(agents: list[Agent], urls: list[str], rounds: int = 3) -> None:
    """Fetches a second: polling rounds (every agent asks at once, no ETag) against the first
    master alone, then spread over all of them (agent i asks master i mod n); best of ``rounds``."""
    timeout = aiohttp.ClientTimeout(total=120)
    sessions = [
        aiohttp.ClientSession(
            u,
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S),
            timeout=timeout,
        )
        for u in urls
    ]
    try:
        print(f"\nfetch throughput, {len(agents)} agents polling at once, best of {rounds} rounds")
        for used in sorted({1, len(urls)}):
            best = 0.0
            for _ in range(rounds):
                t = time.perf_counter()
                answered = await asyncio.gather(
                    *(poll_round(agents[i::used], sessions[i]) for i in range(used))
                )
                served = sum(len(times) for times in answered)  # failed fetches not counted
                best = max(best, served / (time.perf_counter() - t))
            print(f"  {used} master process(es): {best:7.0f} fetches/s")
    finally:
        for session in sessions:
            await session.close()


# wrk's request hook: the requests go round WRK_PATHS (comma-separated), each round with the next
# agent's token (tokens.txt, one a line): an agent's fetches, agent after agent.
WRK_SCRIPT = """
local tokens, paths, i = {}, {}, 0
for line in io.lines(os.getenv("WRK_TOKENS")) do tokens[#tokens + 1] = line end
for p in string.gmatch(os.getenv("WRK_PATHS"), "[^,]+") do paths[#paths + 1] = p end
request = function()
  local agent = math.floor(i / #paths) % #tokens + 1
  local path = paths[i % #paths + 1]
  i = i + 1
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. tokens[agent]})
end
"""


async def wrk_throughput(
    agents: list[Agent], urls: list[str], paths: list[str], seconds: int = 5
) -> None:
    """The same fetches a second with ``wrk`` as the load (C, a thread and 64 connections a
    master): the Python agents above take about a core of the two themselves, which leaves the
    masters too little to show what a second process adds. Every agent's token in turn, each
    asking for ``paths`` (requests a second are printed, all paths counted)."""
    with tempfile.TemporaryDirectory() as tmp:
        tokens, script = Path(tmp) / "tokens.txt", Path(tmp) / "fetch.lua"
        tokens.write_text("\n".join(a.token for a in agents) + "\n")
        script.write_text(WRK_SCRIPT)
        env = {**os.environ, "WRK_TOKENS": str(tokens), "WRK_PATHS": ",".join(paths)}
        what = " + ".join(p.rsplit("/", 1)[0] + "/..." if "sha256" in p else p for p in paths)
        print(
            f"\nrequests a second with wrk ({seconds} s, 64 connections a master process): {what}"
        )
        for used in sorted({1, len(urls)}):
            procs = [
                await asyncio.create_subprocess_exec(
                    "wrk",
                    "-t1",
                    "-c64",
                    f"-d{seconds}s",
                    "-s",
                    str(script),
                    u,
                    stdout=asyncio.subprocess.PIPE,
                    env=env,
                )
                for u in urls[:used]
            ]
            outs = [(await p.communicate())[0].decode() for p in procs]
            rates = [float(m.group(1)) for o in outs if (m := WRK_RATE.search(o))]
            errors = sum(int(m.group(1)) for o in outs if (m := WRK_NON_2XX.search(o)))
            print(
                f"  {used} master process(es): {sum(rates):7.0f} requests/s"
                + (f" ({errors} answers not 2xx)" if errors else "")
            )


WRK_RATE = re.compile(r"Requests/sec:\s+([0-9.]+)")
WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument(
        "--masters", type=int, default=1, choices=(1, 2), help="master processes for the site"
    )
    ap.add_argument(
        "--fetches-per-s",
        type=float,
        default=None,
        help="the master's MASTER_PULL_FETCHES_PER_S (the notices' spread is pull edges / it); "
        "default: the master's own default",
    )
    ap.add_argument(
        "--agents-client",
        choices=("lean", "aiomqtt"),
        default="lean",
        help="the simulated agents: MQTT and HTTP on raw asyncio streams (lean, bench.updates."
        "lean_agent) or aiomqtt clients and an aiohttp session (CPU-heavy: at 5,000 agents "
        "the bench process itself is the bound)",
    )
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.agents + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the broker inherits it too
    if want < 2 * args.agents + 256:
        raise SystemExit(f"open files limited to {want}: too few for {args.agents} agents")

    name = f"edgebench_fanout_{uuid.uuid4().hex[:6]}"
    db_url = asyncio.run(create_database(name))
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            for svc in ("setup", "master"):
                migrations.upgrade(f"services.{svc}", db_url)
            broker, port = start_broker(tmp)
            procs.append(broker)
            setup_port, master_port = free_port(), free_port()
            common = dict(
                EDGE_MIGRATE_ON_START="false",
                EDGE_LOG_LEVEL="WARNING",
                EDGE_SETUP_URL=f"http://127.0.0.1:{setup_port}",
                EDGE_MASTER_URL=f"http://127.0.0.1:{master_port}",
                EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
            )
            procs.append(
                start_service(
                    "setup",
                    env=service_env(db_url, SETUP_NOTIFY_MASTER="false", **common),
                    port=setup_port,
                    tmp_path=tmp,
                    timeout=120,
                )
            )
            master_env = service_env(
                db_url,
                MASTER_ARTIFACT_DIR=str(tmp / "artifacts"),
                MASTER_PACKAGE_DIR=str(tmp / "pk"),
                MASTER_RECONCILE_SECONDS="3600",
                MASTER_RECONCILE_ON_START="false",
                MASTER_NOTIFY_OPTIMIZER="false",
                MASTER_MQTT_URL=f"mqtt://127.0.0.1:{port}",
                MASTER_BOARD_SHARED="true" if args.masters > 1 else "false",
                **common,
            )
            if args.fetches_per_s is not None:
                master_env["MASTER_PULL_FETCHES_PER_S"] = str(args.fetches_per_s)
            master = start_service(
                "master", env=master_env, port=master_port, tmp_path=tmp, timeout=120
            )
            procs.append(master)  # started first: it leads
            master_urls = [common["EDGE_MASTER_URL"]]
            for _ in range(args.masters - 1):
                other_port = free_port()
                procs.append(
                    start_service(
                        "master", env=master_env, port=other_port, tmp_path=tmp, timeout=120
                    )
                )
                master_urls.append(f"http://127.0.0.1:{other_port}")
            setup = httpx.Client(base_url=common["EDGE_SETUP_URL"], headers=OPERATOR, timeout=60)
            mhttp = httpx.Client(base_url=common["EDGE_MASTER_URL"], timeout=120)
            cluster = setup.post("/clusters", json={"name": "nat", "runtime": "agent-pull"})
            cluster.raise_for_status()
            r = mhttp.post(
                "/ai-packages?filename=monitoring&version=01&ai_class=01",
                content=targz(package_files(version="01")),
                headers={**OPERATOR, "Content-Type": "application/gzip"},
            )
            r.raise_for_status()
            ai_id = r.json()["ai"]["id"]
            r = mhttp.post(f"/ai-packages/{ai_id}/build?wait=true", headers=SERVICE)
            assert r.json()["ai"]["status"] == "ready", r.text
            size = r.json()["ai"]["package_size"]

            async def seed() -> None:
                conn = await asyncpg.connect(asyncpg_url(db_url))
                try:
                    sql = SEED.replace("$N", str(args.agents))
                    await conn.execute(sql.replace("$CLUSTER", str(cluster.json()["id"])))
                finally:
                    await conn.close()

            asyncio.run(seed())
            mhttp.post("/reconcile?wait=true", headers=OPERATOR).raise_for_status()
            print(
                f"=== fan-out to {args.agents} pull agents; package {size} bytes; "
                f"{psutil.cpu_count()} CPUs; Mosquitto (permissive config); "
                f"agents: {args.agents_client}"
            )
            asyncio.run(
                fan_out(
                    args.agents,
                    db_url,
                    ai_id,
                    common["EDGE_MASTER_URL"],
                    master.pid,
                    port,
                    master_urls,
                    args.agents_client,
                )
            )
            last = mhttp.get("/status", headers=OPERATOR).json()["reconcile"]["last"]
            print(
                f"\nthe master's reconcile pass that made the {args.agents} notices: "
                f"{last.get('duration_s')} s"
            )
        finally:
            for p in reversed(procs):
                p.stop()
            asyncio.run(drop_database(name))


if __name__ == "__main__":
    main()
