"""From the optimizer's decision to the changed behaviour on the edge, with real processes.

Setup, the master, the VMS, the optimizer and two edge agents run as processes (tests/collab's
Platform, on a fresh database); each edge runs the real YOLO worker (random yolov8n weights on
ultralytics' bundled images) uploaded as an AI package. Each round times, from the moment the
decision is asked for (``POST /cycle``, or the detection posted to the VMS for focus):

- routing: the first low-confidence frame of edge-01 in the VMS inbox;
- hand-off: edge-02's running worker told to help (``help_for`` in its live settings), its first
  frame read from edge-01's camera, and its first detection stored under 0x01 (hot: the worker
  that already runs takes the camera as a second source; no process starts);
- focus: edge-02's worker in its focus profile (the VMS's detection event -> the optimizer).

Each is undone between rounds (route withdrawn, hand-back, TTL). Printed beside the field's way,
a 30 s poll of the routing (uniform wait: p50 15 s, p99 29.7 s). With few rounds the p99 is close
to the worst round.

    .venv/bin/python -m bench.collab.run --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from edge_common.vocabulary import Param
from tests.collab.stack import Platform
from tests.helpers.database import create_database, drop_database

YOLO = "yoloworker-10"
FIELD_POLL_S = 30.0


def until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise TimeoutError(what)


def worker(p: Platform, nid: str) -> dict[str, Any]:
    """The edge's YOLO worker as its agent reports it ({} before it is created)."""
    return p.workload(nid) or {}


def inbox_count(p: Platform, nid: str) -> int:
    return len(p.vms.get("/analysis", params={"nid": nid, "limit": 1000}).json()["items"])


def log_count(p: Platform, nid: str, text: str) -> int:
    """Occurrences in the worker's whole log file (the agent's ring keeps only the last lines)."""
    path = p.agents[nid].workdir / "logs" / f"{YOLO}.log"
    return path.read_text(errors="replace").count(text) if path.exists() else 0


def stamp(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def routing_round(p: Platform) -> float:
    before = inbox_count(p, "0x01")
    p.policy("low_confidence", enabled=True, share_level=0.3, clear_level=0.2, window_s=0)
    t0 = time.monotonic()
    p.cycle()
    until(lambda: inbox_count(p, "0x01") > before, 30, "first frame up")
    took = time.monotonic() - t0
    p.policy("low_confidence", enabled=False)
    p.cycle()
    until(lambda: worker(p, "0x01")["live"] == {}, 30, "route withdrawn")
    return took


def handoff_round(p: Platform) -> tuple[float, float, float]:
    paused = log_count(p, "0x01", "profile normal -> helped")
    dropped = log_count(p, "0x02", "no longer helping 0x01")
    hits = p.cameras["0x01"].hits
    p.post_usage("0x01", 99, 50, samples=30)
    t0 = time.monotonic()
    p.cycle()
    until(lambda: worker(p, "0x02")["live"].get(Param.HELP_FOR) == ["0x01"], 60, "edge-02 told")
    started = time.monotonic() - t0
    until(lambda: log_count(p, "0x01", "profile normal -> helped") > paused, 30, "edge-01 helped")
    until(lambda: p.cameras["0x01"].hits > hits, 60, "helper's first camera frame")
    first_frame = time.monotonic() - t0
    frame_at = p.cameras["0x01"].hit_times[hits]
    # The helper's summaries: under 0x01, marked analysed_by 0x02, with frames, stamped after its
    # first camera frame.
    until(
        lambda: [
            s
            for s in p.summaries("0x01", 50)
            if s["frames"] > 0 and s["analysed_by"] == "0x02" and stamp(s["ts"]) > frame_at
        ],
        60,
        "helper's first detection under 0x01",
    )
    first_detection = time.monotonic() - t0
    p.post_usage("0x01", 5, 20, samples=60)
    p.cycle()
    until(lambda: log_count(p, "0x02", "no longer helping 0x01") > dropped, 60, "handed back")
    until(lambda: log_count(p, "0x01", "profile helped -> normal") > paused, 30, "edge-01 back")
    return started, first_frame, first_detection


def focus_round(p: Platform, ttl_s: float) -> float:
    on = log_count(p, "0x02", "profile normal -> focus")
    off = log_count(p, "0x02", "profile focus -> normal")
    t0 = time.monotonic()
    p.post_detection("0x01", {"person": 1})
    until(
        lambda: log_count(p, "0x02", "profile normal -> focus") > on,
        30,
        "focus in effect",
        interval=0.05,
    )
    took = time.monotonic() - t0
    until(lambda: log_count(p, "0x02", "profile focus -> normal") > off, ttl_s + 30, "focus over")
    return took


def line(name: str, values: list[float]) -> str:
    return (
        f"{name:<40} p50 {statistics.median(values):6.2f} s   p99 {percentile(values, 0.99):6.2f} s"
        f"   max {max(values):6.2f} s   (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--focus-ttl", type=float, default=8.0)
    args = parser.parse_args()
    name = f"bench_collab_{uuid.uuid4().hex[:8]}"
    db = asyncio.run(create_database(name))
    tmp = Path(tempfile.mkdtemp(prefix="bench-collab-"))
    p = Platform(db, tmp)
    results: dict[str, list[float]] = {
        k: [] for k in ("routing", "helper", "frame", "detection", "focus")
    }
    try:
        p.add_edge("edge-01", "0x01", 37.5000, 127.0)
        p.add_edge("edge-02", "0x02", 37.5040, 127.0)
        ai = p.upload_yolo()
        p.policy("low_confidence", enabled=False)
        p.policy("overload", window_s=0, recover_window_s=0)
        p.policy("focus", classes=["person"], radius_km=1.0, ttl_s=args.focus_ttl)
        for nid in ("0x01", "0x02"):
            p.deploy(nid, ai)
            p.post_usage(nid, 20, 30, samples=5)
        for nid in ("0x01", "0x02"):
            until(partial(p.running, nid), 180, f"worker on {nid}")
        until(
            lambda: [s for s in p.summaries("0x01") if s["frames"] > 0][2:], 180, "first summaries"
        )
        start_pids = {nid: worker(p, nid)["pid"] for nid in ("0x01", "0x02")}
        for i in range(args.rounds):
            results["routing"].append(routing_round(p))
            started, frame, detection = handoff_round(p)
            results["helper"].append(started)
            results["frame"].append(frame)
            results["detection"].append(detection)
            results["focus"].append(focus_round(p, args.focus_ttl))
            print(
                f"round {i + 1}: routing {results['routing'][-1]:.2f} s, "
                f"helper told {started:.2f} s, "
                f"first camera frame {frame:.2f} s, first detection {detection:.2f} s, "
                f"focus {results['focus'][-1]:.2f} s",
                flush=True,
            )
        pids = {nid: worker(p, nid)["pid"] for nid in ("0x01", "0x02")}
        restarts = {nid: worker(p, nid)["restarts"] for nid in ("0x01", "0x02")}
        started_pids = {nid: start_pids[nid] for nid in ("0x01", "0x02")}
        processes = {nid: len(p.workloads(nid)) for nid in ("0x01", "0x02")}
    finally:
        p.close()
        asyncio.run(drop_database(name))
    print()
    print("decision -> behaviour on the edge (real processes, this machine)")
    print(line("routing: first frame sent up", results["routing"]))
    print(line("hand-off: edge-02's worker told (live)", results["helper"]))
    print(line("hand-off: helper's first camera frame", results["frame"]))
    print(line("hand-off: helper's first detection", results["detection"]))
    print(line("focus: profile in effect", results["focus"]))
    print(
        f"{'the field (30 s poll)':<40} p50 {FIELD_POLL_S / 2:6.2f} s   "
        f"p99 {FIELD_POLL_S * 0.99:6.2f} s"
    )
    same = "same" if pids == started_pids else "CHANGED"
    print(
        f"workers: pids {started_pids} -> {pids} ({same}), restarts {restarts}, "
        f"workloads per edge at the end {processes}"
    )


if __name__ == "__main__":
    main()
