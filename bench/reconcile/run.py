"""Decision-cycle benchmark: the optimizer over 10,000 and 100,000 edges, beside the field's way.

For each size: a fresh database, setup's registry and the VMS's current-state table seeded with
bulk SQL (random positions, conditions, versions, loads; about 1 % of edges mismatched, overloaded
or unsure, as in a steady fleet), setup and the VMS as real processes, the optimizer as a process.

Figures:
- sources: GET /fleet/snapshot and GET /nodes/state whole (a cold cycle's read) and with ?since=
  after a churn of --churn of the nodes and deployments (a steady cycle's read), each in JSON
  (the baseline) and in the Arrow form (Accept: application/vnd.apache.arrow.stream), timed in
  turn in the same run; the whole ones also in the Arrow form with only the columns the optimizer
  reads (``columns=``, as it asks);
- in memory: parse + index of the whole answers (JSON, and Arrow read column by column), folding
  the incremental answers into the mirror, and the pure decide (the policies, no I/O) on the
  seeded state (acting on its mismatches);
- the optimizer's own whole-fleet cycles, fetch to recorded, with the runner's breakdown:
  cold (whole read at start, acting on the seeded mismatches), then steady ones (0 operations)
  reading incrementally after a churn of --churn, after every node reported (100 % of the VMS
  rows changed, --churn of the deployments), and a steady one reading whole
  (OPTIMIZER_FULL_REFRESH_EVERY=4: every 4th resync); the optimizer reads Arrow (its default),
  and a second one reading JSON (OPTIMIZER_SOURCE_FORMAT=json, every resync whole) is started
  after it: its second cycle, a whole read with nothing to do, is the JSON baseline of "steady,
  whole read";
- change-to-decision: an environment result posted to the VMS -> the VMS's event -> the optimizer
  -> the changed desired deployment visible in setup (p50/p90 over --changes changes);
- baseline, the field's way: per edge, GET the edge, its deployments, each deployment's AI and the
  node's state, one HTTP call at a time; timed on --baseline-edges edges and extrapolated
  (clearly labelled).

    .venv/bin/python -m bench.reconcile.run --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
import psutil

from edge_common.vocabulary import DesiredState
from services.optimizer.engine.cycle import decide
from services.optimizer.model.config import PoliciesConfig
from services.optimizer.model.context import CycleInput
from services.optimizer.model.state import FleetState
from services.optimizer.sources.columnar import fleet_read, nodes_read
from shared import migrations
from shared.contracts.columnar import ARROW_STREAM, NODES_READ, SNAPSHOT_READ
from shared.edge_tokens import issue_edge_token
from tests.helpers.database import asyncpg_url, create_database, drop_database
from tests.helpers.env import OPERATOR, SERVICE, SIGNER, free_port, service_env
from tests.helpers.processes import start_service

CONDITIONS = ["SUNNY", "CLOUDY", "RAINY", "SNOWY", "FOGGY", "NIGHT"]
CODES = {"SUNNY": "0", "CLOUDY": "1", "RAINY": "2", "SNOWY": "3", "FOGGY": "4", "NIGHT": "5"}

SEED = """
INSERT INTO setup.clusters (id, name, description, runtime, namespace, created_at, updated_at)
SELECT c, 'cluster-' || c, '', 'agent', 'edge-ai', now(), now() FROM generate_series(1, 10) c;
INSERT INTO setup.ai_packages
       (id, filename, version, version_key, ai_class, description, status, created_at, updated_at)
VALUES
 (1, 'monitoring', '01', '00000001.00000000.00000000.00000000', '01', '', 'ready', now(), now()),
 (2, 'monitoring', '01', '00000001.00000000.00000000.00000000', '02', '', 'ready', now(), now()),
 (3, 'monitoring', '02', '00000002.00000000.00000000.00000000', '01', '', 'ready', now(), now()),
 (4, 'monitoring', '02', '00000002.00000000.00000000.00000000', '02', '', 'ready', now(), now()),
 (5, 'weatherai', '01', '00000001.00000000.00000000.00000000', '00', '', 'ready', now(), now());
CREATE TEMP TABLE seed AS
SELECT g,
       (ARRAY['SUNNY','CLOUDY','RAINY','SNOWY','FOGGY','NIGHT'])[1 + floor(random() * 6)::int]
         AS condition,
       random() < 0.9 AS old_version
  FROM generate_series(1, $N) g;
INSERT INTO setup.edges (id, name, nid, cluster_id, type, latitude, longitude, address,
                         supports_analysis, description, status, created_at, updated_at)
SELECT g, 'edge-' || g, '0x' || to_hex(g), 1 + g % 10, 1, 37.3 + random() * 0.5,
       126.8 + random() * 0.5, '', random() < 0.7, '', 'active', now(), now()
  FROM seed;
-- Each edge: the monitoring variant of its condition (1 % the wrong one), 90 % on version 01;
-- and the weather AI.
INSERT INTO setup.deployments (id, edge_id, ai_id, filename, desired, params, allow_multiple,
                               generation, observed, observed_at, observed_generation, restarts,
                               requested_by, created_at, updated_at)
SELECT g, g,
       CASE WHEN (condition IN ('SUNNY', 'CLOUDY')) <> (g % 100 = 0) THEN 1 ELSE 2 END
         + CASE WHEN old_version THEN 0 ELSE 2 END,
       'monitoring', 'running', '{}', false, 1, 'running', now(), 1, 0, 'operator', now(), now()
  FROM seed;
INSERT INTO setup.deployments (id, edge_id, ai_id, filename, desired, params, allow_multiple,
                               generation, observed, observed_at, observed_generation, restarts,
                               requested_by, created_at, updated_at)
SELECT $N + g, g, 5, 'weatherai', 'running', '{}', false, 1, 'running', now(), 1, 0, 'operator',
       now(), now()
  FROM seed;
INSERT INTO vms.node_state (nid, known, authenticated, condition, condition_code, streak,
                            condition_since, environment_at, usage_at, cpu, memory, func, cpu_avg,
                            memory_avg, detections_at, detections, low_confidence_share,
                            last_seen, updated_at)
SELECT '0x' || to_hex(g), true, true, condition, '0', 5 + floor(random() * 100)::int,
       now() - interval '1 hour', now() - interval '10 seconds',
       now(), 0, 0, 'SUNNY',
       CASE WHEN g % 100 = 1 THEN 95 ELSE random() * 70 END, random() * 80,
       now(), '{"frames": 10, "frames_sent_up": 0}'::jsonb,
       CASE WHEN g % 100 = 2 THEN 0.6 ELSE random() * 0.2 END, now(), now()
  FROM seed;
SELECT setval(pg_get_serial_sequence('setup.clusters', 'id'), 10);
SELECT setval(pg_get_serial_sequence('setup.ai_packages', 'id'), 5);
SELECT setval(pg_get_serial_sequence('setup.edges', 'id'), $N);
SELECT setval(pg_get_serial_sequence('setup.deployments', 'id'), 2 * $N);
"""


async def seed(url: str, n: int) -> None:
    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        await conn.execute(SEED.replace("$N", str(n)))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# The optimizer process of the benches: cycles only when asked (POST /cycle), every policy acting
# on the first sample, the edges never silent, time enough for a whole read of a million.
OPTIMIZER_ENV = dict(
    OPTIMIZER_RESYNC_SECONDS="3600",
    OPTIMIZER_ENVIRONMENT__HYSTERESIS_SAMPLES="1",
    OPTIMIZER_OVERLOAD__WINDOW_S="0",
    OPTIMIZER_LOW_CONFIDENCE__WINDOW_S="0",
    OPTIMIZER_RECOVERY__SILENT_AFTER_S="86400",
    OPTIMIZER_SOURCE_TIMEOUT_S="300",
    OPTIMIZER_DEBOUNCE_MS="2",
)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


ARROW = {"Accept": ARROW_STREAM}


def timed_get(
    client: httpx.Client, path: str, headers: dict[str, str] | None = None, **params
) -> tuple[float, bytes]:
    t = time.perf_counter()
    r = client.get(path, params=params or None, headers=headers)
    r.raise_for_status()
    return time.perf_counter() - t, r.content


def best_of(n: int, reads: dict[str, Callable[[], tuple[float, bytes]]]) -> dict[str, tuple]:
    """Each read ``n`` times, in turn (JSON and Arrow side by side under the same load): the
    fastest time and the body."""
    best: dict[str, tuple] = {}
    for _ in range(n):
        for key, read in reads.items():
            dt, body = read()
            if key not in best or dt < best[key][0]:
                best[key] = (dt, body)
    return best


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the service's uvicorn), MB."""
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 1e6


async def churn(url: str, share: float, node_share: float | None = None) -> None:
    """What happens between two resyncs of a live fleet: nodes report (their state row is
    rewritten) and the master reports deployments (observed_at moves)."""
    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        await conn.execute(
            "UPDATE vms.node_state SET updated_at = now(), last_seen = now(), streak = streak + 1, "
            "cpu_avg = cpu_avg * 0.99 WHERE random() < $1",
            node_share if node_share is not None else share,
        )
        await conn.execute(
            "UPDATE setup.deployments SET updated_at = now(), observed_at = now()"
            " WHERE random() < $1",
            share,
        )
    finally:
        await conn.close()


def wait_cycle(opt: httpx.Client, since: str | None, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = opt.get("/control").json().get("last_cycle")
        if last and last.get("cycle_id") != since and "timings_ms" in last:
            return last
        time.sleep(0.05)
    raise TimeoutError("no cycle finished")


def first_cycle(opt: httpx.Client, timeout: float = 300) -> dict:
    """The first cycle an optimizer ran (at start), or, while the last one's lease runs out,
    the first one it ran through POST /cycle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = opt.get("/control").json().get("last_cycle")
        if last and "timings_ms" in last:
            return last
        if last and last.get("skipped"):
            time.sleep(1)
            r = opt.post("/cycle")
            if r.status_code == 200 and "timings_ms" in r.json():
                return r.json()
        time.sleep(0.05)
    raise TimeoutError("no cycle finished")


def baseline(setup: httpx.Client, vms: httpx.Client, n_edges: int, sample: int) -> float:
    """The field's way: one HTTP look-up after another for each edge, then a comparison."""
    t = time.perf_counter()
    for edge_id in range(1, sample + 1):
        edge = setup.get(f"/edges/{edge_id}").json()
        deps = setup.get(
            "/deployments", params={"edge_id": edge_id, "desired": DesiredState.RUNNING}
        ).json()["items"]
        state = vms.get(
            "/nodes/state", params={"nids": edge["nid"], "include_silent": "false"}
        ).json()["items"]
        for d in deps:
            ai = setup.get(f"/ai-packages/{d['ai_id']}").json()
            _ = state and ai["ai_class"] != state[0].get("condition")
    return (time.perf_counter() - t) / sample * n_edges


def run_size(n: int, changes: int, baseline_edges: int, churn_share: float, tmp: Path) -> dict:
    name = f"edgebench_reconcile_{n}_{uuid.uuid4().hex[:6]}"
    url = asyncio.run(create_database(name))
    procs = []
    out: dict = {"edges": n, "loadavg": Path("/proc/loadavg").read_text().split()[:3]}
    try:
        for svc in ("setup", "vms", "optimizer"):
            migrations.upgrade(f"services.{svc}", url)
        t = time.perf_counter()
        asyncio.run(seed(url, n))
        out["seed_s"] = time.perf_counter() - t
        setup_port, vms_port, opt_port = free_port(), free_port(), free_port()
        common = dict(
            EDGE_MIGRATE_ON_START="false",
            EDGE_LOG_LEVEL="WARNING",
            EDGE_SETUP_URL=f"http://127.0.0.1:{setup_port}",
            EDGE_VMS_URL=f"http://127.0.0.1:{vms_port}",
            EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{opt_port}",
        )
        procs.append(
            start_service(
                "setup",
                env=service_env(url, SETUP_NOTIFY_MASTER="false", **common),
                port=setup_port,
                tmp_path=tmp,
                timeout=120,
            )
        )
        procs.append(
            start_service(
                "vms",
                env=service_env(
                    url,
                    VMS_NOTIFY_OPTIMIZER="true",
                    VMS_STALE_AFTER_S="3600",
                    VMS_GROUP_COMMIT_WINDOW_MS="1",
                    **common,
                ),
                port=vms_port,
                tmp_path=tmp,
                timeout=120,
            )
        )
        setup = httpx.Client(
            base_url=f"http://127.0.0.1:{setup_port}", headers=SERVICE, timeout=300
        )
        vms = httpx.Client(base_url=f"http://127.0.0.1:{vms_port}", headers=SERVICE, timeout=300)

        time.sleep(
            6
        )  # the seeded rows are older than the 5 s overlap of the incremental reads below
        whole = best_of(
            3,
            {
                "snapshot": lambda: timed_get(setup, "/fleet/snapshot"),
                "snapshot_arrow": lambda: timed_get(setup, "/fleet/snapshot", ARROW),
                "nodes": lambda: timed_get(vms, "/nodes/state", include_silent="false"),
                "nodes_arrow": lambda: timed_get(
                    vms, "/nodes/state", ARROW, include_silent="false"
                ),
                # What the optimizer asks for: only the columns it reads.
                "snapshot_read": lambda: timed_get(
                    setup, "/fleet/snapshot", ARROW, columns=",".join(SNAPSHOT_READ)
                ),
                "nodes_read": lambda: timed_get(
                    vms,
                    "/nodes/state",
                    ARROW,
                    include_silent="false",
                    columns=",".join(NODES_READ),
                ),
            },
        )
        for key, (dt, body) in whole.items():
            out[f"{key}_s"], out[f"{key}_mb"] = dt, len(body) / 1e6
        snap_body, nodes_body = whole["snapshot"][1], whole["nodes"][1]

        t = time.perf_counter()
        snapshot, nodes_answer = orjson.loads(snap_body), orjson.loads(nodes_body)
        state = FleetState.from_wire(snapshot, nodes_answer["items"])
        out["parse_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        arrow_state = FleetState.from_read(
            fleet_read(whole["snapshot_arrow"][1]), nodes_read(whole["nodes_arrow"][1])
        )
        out["parse_build_arrow_s"] = time.perf_counter() - t
        assert len(arrow_state.deployments) == len(state.deployments)
        assert len(arrow_state.nodes) == len(state.nodes)
        del arrow_state, whole

        # A steady cycle's read: what changed since the last answers (minus the 5 s overlap).
        time.sleep(6)
        asyncio.run(churn(url, churn_share))
        snap_since = (
            datetime.fromisoformat(snapshot["generated_at"]) - timedelta(seconds=5)
        ).isoformat()
        nodes_since = (
            datetime.fromisoformat(nodes_answer["generated_at"]) - timedelta(seconds=5)
        ).isoformat()
        inc = best_of(
            3,
            {
                "inc_snapshot": lambda: timed_get(setup, "/fleet/snapshot", since=snap_since),
                "inc_snapshot_arrow": lambda: timed_get(
                    setup, "/fleet/snapshot", ARROW, since=snap_since
                ),
                "inc_nodes": lambda: timed_get(
                    vms, "/nodes/state", include_silent="false", since=nodes_since
                ),
                "inc_nodes_arrow": lambda: timed_get(
                    vms, "/nodes/state", ARROW, include_silent="false", since=nodes_since
                ),
            },
        )
        for key, (dt, body) in inc.items():
            out[f"{key}_s"], out[f"{key}_mb"] = dt, len(body) / 1e6
        isnap_body, inodes_body = inc["inc_snapshot"][1], inc["inc_nodes"][1]
        t = time.perf_counter()
        delta, delta_nodes = orjson.loads(isnap_body), orjson.loads(inodes_body)["items"]
        counts = state.apply_changes(delta, delta_nodes)
        out["apply_s"], out["apply_counts"] = time.perf_counter() - t, counts

        cfg = PoliciesConfig().merged(
            {
                "overload": {"window_s": 0},
                "low_confidence": {"window_s": 0},
                "environment": {"hysteresis_samples": 1},
                "recovery": {"silent_after_s": 86400},
            }
        )
        t = time.perf_counter()
        result = decide(CycleInput(state=state, config=cfg, now=datetime.now(UTC)))
        out["decide_s"] = time.perf_counter() - t
        out["decide_ops"] = len(result.operations)
        del state, snapshot, nodes_answer, snap_body, nodes_body

        # The optimizer as a process: its first resync runs at start (cold: whole read, acts), then
        # resyncs through POST /cycle; a whole read every 4th.
        optimizer_env = {**OPTIMIZER_ENV, "OPTIMIZER_FULL_REFRESH_EVERY": "4"}
        procs.append(
            start_service(
                "optimizer",
                env=service_env(url, **optimizer_env, **common),
                port=opt_port,
                tmp_path=tmp,
                timeout=120,
            )
        )
        opt = httpx.Client(base_url=f"http://127.0.0.1:{opt_port}", headers=OPERATOR, timeout=600)

        def resync() -> dict:
            r = opt.post("/cycle")
            r.raise_for_status()
            return r.json()

        out["cold"] = wait_cycle(opt, None)
        out["after_acting"] = resync()  # incremental: reads back its own writes
        time.sleep(1)
        asyncio.run(churn(url, churn_share))
        out["steady"] = resync()
        asyncio.run(churn(url, churn_share, node_share=1.0))
        out["steady_all_nodes"] = resync()
        out["steady_whole"] = resync()  # the 4th resync: a whole read
        out["churn"] = churn_share
        out["rss_mb"] = rss_mb(procs[-1].pid)

        # Change to decision: SUNNY edges (monitoring class 01, weather not shared) turn RAINY.
        conn_rows = asyncio.run(_sunny_edges(url, changes))
        latencies = []
        for _edge_id, nid, dep_id, ai_id in conn_rows:
            ts = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            body = {
                "nid": nid,
                "date": ts.strftime("%Y%m%d"),
                "time": ts.strftime("%H%M%S"),
                "result": CODES["RAINY"],
            }
            headers = {"Authorization": f"Bearer {issue_edge_token(nid, SIGNER)}"}
            t = time.perf_counter()
            r = vms.post("/save_edgeData", json=body, headers=headers)
            assert r.status_code == 200, r.text
            while time.perf_counter() - t < 30:
                if setup.get(f"/deployments/{dep_id}").json()["ai_id"] != ai_id:
                    latencies.append(time.perf_counter() - t)
                    break
                time.sleep(0.005)
        out["change_latencies"] = latencies
        out["baseline_s"] = baseline(setup, vms, n, min(baseline_edges, n))
        out["baseline_sample"] = min(baseline_edges, n)
        opt.close()

        # The JSON baseline of a whole-read cycle: an optimizer reading JSON (every resync whole),
        # its second cycle.
        procs.pop().stop()
        json_port = free_port()
        procs.append(
            start_service(
                "optimizer",
                env=service_env(
                    url,
                    OPTIMIZER_SOURCE_FORMAT="json",
                    **{**optimizer_env, "OPTIMIZER_FULL_REFRESH_EVERY": "1", **common},
                ),
                port=json_port,
                tmp_path=tmp,
                timeout=120,
            )
        )
        with httpx.Client(
            base_url=f"http://127.0.0.1:{json_port}", headers=OPERATOR, timeout=600
        ) as json_opt:
            first_cycle(json_opt)
            r = json_opt.post("/cycle")  # a whole read (every resync reads whole)
            r.raise_for_status()
            out["whole_json"] = r.json()
        out["rss_json_mb"] = rss_mb(procs[-1].pid)
        out["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        for client in (setup, vms):
            client.close()
    finally:
        for p in reversed(procs):
            p.stop()
        asyncio.run(drop_database(name))
    return out


async def _sunny_edges(url: str, k: int) -> list[tuple]:
    conn = await asyncpg.connect(asyncpg_url(url))
    try:
        rows = await conn.fetch(
            """SELECT e.id, e.nid, d.id AS dep, d.ai_id FROM setup.edges e
                 JOIN setup.deployments d
                   ON d.edge_id = e.id AND d.filename = 'monitoring' AND d.desired = 'running'
                 JOIN vms.node_state n ON n.nid = e.nid
                WHERE n.condition = 'SUNNY' AND d.ai_id IN (1, 3) AND (d.params::text = '{}')
                ORDER BY e.id DESC LIMIT $1""",
            k,
        )
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


CYCLES = (
    ("cold", "cold (whole read, acts)"),
    ("after_acting", "next (reads its writes)"),
    ("steady", "steady, churn"),
    ("steady_all_nodes", "steady, all nodes reported"),
    ("steady_whole", "steady, whole read"),
    ("whole_json", "whole read, JSON (baseline)"),
)


def report(r: dict) -> None:
    n, churn_pct = r["edges"], r["churn"] * 100
    print(f"\n=== {n:,} edges ({2 * n:,} deployments), seeded in {r['seed_s']:.1f} s")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average at start {' '.join(r['loadavg'])}, "
        f"at end {' '.join(r['loadavg_end'])}"
    )
    for label, key, what in (
        ("sources, whole        ", "snapshot", "GET /fleet/snapshot"),
        ("                      ", "nodes", "GET /nodes/state   "),
        ("sources, ?since=      ", "inc_snapshot", "GET /fleet/snapshot"),
        ("                      ", "inc_nodes", "GET /nodes/state   "),
    ):
        print(
            f"{label}{what}   JSON {ms(r[key + '_s'])} ({r[key + '_mb']:7.2f} MB)   "
            f"Arrow {ms(r[key + '_arrow_s'])} ({r[key + '_arrow_mb']:7.2f} MB)"
        )
    print(
        f"                      Arrow, the optimizer's columns: snapshot "
        f"{ms(r['snapshot_read_s'])} ({r['snapshot_read_mb']:.2f} MB), node states "
        f"{ms(r['nodes_read_s'])} ({r['nodes_read_mb']:.2f} MB)"
    )
    print(f"  (?since= after a {churn_pct:g} % churn)")
    print(
        f"in memory             parse + index (whole) JSON {ms(r['parse_build_s'])}   "
        f"Arrow {ms(r['parse_build_arrow_s'])}"
    )
    c = r["apply_counts"]
    print(
        f"                      fold changes in       {ms(r['apply_s'])}  "
        f"({c['deployments']} deployments, {c['nodes']} nodes)"
    )
    print(
        f"                      decide (6 policies)   {ms(r['decide_s'])}  "
        f"({r['decide_ops']} operations, seeded state)"
    )
    print("optimizer whole-fleet cycles (fetch to recorded):")
    for key, label in CYCLES:
        cy = r[key]
        t = cy["timings_ms"]
        ref = cy.get("refresh") or {}
        read = ref.get("kind", "?") + (
            f": {ref.get('deployments', 0)} deps, {ref.get('nodes', 0)} nodes"
            if ref.get("kind") == "incremental"
            else ""
        )
        print(
            f"  {label:<27} total {t['total']:8.1f} ms  ops {cy['operations']:6d}  "
            f"[fetch {t['fetch']:.0f}, load {t['load']:.0f}, decide {t['decide']:.0f}, "
            f"write {t['write']:.0f}, record {t['record']:.0f}]  ({read})"
        )
    print(
        f"optimizer RSS: {r['rss_mb']:.0f} MB (Arrow, after its cycles), "
        f"{r['rss_json_mb']:.0f} MB (JSON, after one whole read)"
    )
    lat = sorted(r["change_latencies"])
    if lat:
        p90 = lat[min(len(lat) - 1, int(len(lat) * 0.9))]
        print(
            f"change -> decision in setup   p50 {ms(statistics.median(lat))}  p90 {ms(p90)}  "
            f"(n={len(lat)})"
        )
    print(
        f"BASELINE (field's way, per-edge HTTP look-ups): {r['baseline_s']:.1f} s per full pass "
        f"(EXTRAPOLATED from {r['baseline_sample']} edges)"
    )
    steady = r["steady"]["timings_ms"]["total"] / 1000
    print(
        f"speed-up of a steady whole-fleet cycle over the baseline: x{r['baseline_s'] / steady:.0f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--baseline-edges", type=int, default=500)
    ap.add_argument(
        "--churn",
        type=float,
        default=0.01,
        help="share of nodes and deployments changed between two resyncs",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            report(run_size(n, args.changes, args.baseline_edges, args.churn, Path(tmp)))


if __name__ == "__main__":
    main()
