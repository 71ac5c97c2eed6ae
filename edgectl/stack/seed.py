"""The demo fleet `edgectl up` seeds once (idempotent: what exists is left as it is).

A cluster on the agent-pull runtime (edges behind NAT: no agent URL, the agents listen on nothing
and pull their desired set on MQTT notices; with ``pull=False`` the agent runtime, the master
calling each agent's URL), edge-01 and edge-02 with GPS, the weather AI and the monitoring
SUNNY/RAINY packages (the YOLO worker too when the edge extra is installed), the weather AI and
the SUNNY monitoring deployed on both edges; edge-01's weather flips every period, edge-02's
stays SUNNY, so the optimizer is seen swapping variants on edge-01. With the story (story.py) the
monitoring AIs report its simulated load, the edges' camera is the demo camera, and the YOLO worker
runs on both edges.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, TypedDict

from edge_ai.common.http import CallFailed, EdgeSyncClient
from edge_ai.packages.build import build_all
from edge_common.vocabulary import DesiredState
from edgectl.stack.story import Story

log = logging.getLogger("edgectl.seed")

CLUSTER = "demo"
SITE2_CLUSTER = "demo-2"  # edge-02's cluster with --sites 2 (served by the second master)


class DemoEdge(TypedDict):
    name: str
    nid: str
    gps: dict[str, float]


EDGES: list[DemoEdge] = [
    # Two cameras about 1 km apart in Seoul (Sangam-dong).
    {"name": "edge-01", "nid": "0x01", "gps": {"latitude": 37.5790, "longitude": 126.8890}},
    {"name": "edge-02", "nid": "0x02", "gps": {"latitude": 37.5775, "longitude": 126.8990}},
]


class SeedError(RuntimeError):
    """The demo fleet could not be seeded."""


def _call(http: EdgeSyncClient, method: str, url: str, *, what: str, **kw: Any) -> Any:
    """The JSON answer of one call ({} when empty); anything else a SeedError naming ``what``."""
    try:
        return http.json(method, url, **kw) or {}
    except CallFailed as exc:
        raise SeedError(f"{what}: {exc.detail}") from exc


def seed(
    setup: str,
    master: str,
    headers: dict[str, str],
    *,
    agent_urls: list[str | None],
    data_dir: Path,
    weather_period_s: int,
    story: Story | None = None,
    camera_url: str | None = None,
    sites: int = 1,
    pull: bool = True,
) -> None:
    """``pull``: the cluster runs agent-pull and ``agent_urls`` are None (nothing calls the
    agents); else each agent's URL."""
    with EdgeSyncClient("stack", "", headers=headers, timeout=60) as http:
        runtime = "agent-pull" if pull else "agent"
        cluster_id = _cluster(http, setup, runtime)
        # Two sites: edge-02 is in site 2's cluster (moved there if an earlier run put it in
        # the first one).
        site2 = _cluster(http, setup, runtime, SITE2_CLUSTER) if sites == 2 else cluster_id
        clusters = [cluster_id, site2]
        edge_ids = [
            _edge(
                http,
                setup,
                spec,
                edge_cluster,
                agent_url,
                data_dir / "agents" / spec["name"] / "edge-token",
                camera_url,
            )
            for spec, agent_url, edge_cluster in zip(EDGES, agent_urls, clusters, strict=False)
        ]
        ais = _packages(http, setup, master, data_dir / "packages")
        weather, sunny = ais[("weatherai", "00")], ais[("monitoring", "01")]
        _deploy(
            http,
            setup,
            edge_ids[0],
            weather,
            {"WEATHER_SEQUENCE": "0,2", "WEATHER_PERIOD": str(weather_period_s)},
        )
        _deploy(http, setup, edge_ids[1], weather, {"WEATHER_SEQUENCE": "0"})
        for spec, edge_id in zip(EDGES, edge_ids, strict=False):
            load = story.profile(spec["nid"]) if story else {}
            _deploy(http, setup, edge_id, sunny, load, keep=("MONITORING_",))
        if ("yoloworker", "10") in ais:
            # The demo camera's pictures (ultralytics' or drawn ones), looped.
            from edgectl.stack.story import demo_pictures

            assets = demo_pictures(data_dir)
            # With the story both edges analyse (edge-02 focuses, and helps edge-01).
            for edge_id in edge_ids if story else edge_ids[:1]:
                _deploy(
                    http,
                    setup,
                    edge_id,
                    ais[("yoloworker", "10")],
                    {
                        "YOLO_SOURCE": str(assets),
                        "YOLO_RATE": "1",
                        "YOLO_HELPED_MODE": "pause",
                        # The demo's random weights detect nothing real: a demo event on
                        # purpose every 20 s makes a clip (class "demo", said in the console).
                        "YOLO_CLIP_DEMO_EVERY_S": "20",
                        "YOLO_CLIP_PRE_S": "3",
                        "YOLO_CLIP_POST_S": "2",
                    },
                )


def _cluster(http: EdgeSyncClient, setup: str, runtime: str, name: str = CLUSTER) -> int:
    found = _call(http, "GET", f"{setup}/clusters", params={"name": name}, what="list clusters")[
        "items"
    ]
    for c in found:
        if c["name"] != name:
            continue
        if c["runtime"] != runtime:  # EDGE_UP_PULL changed since the data folder was made
            _call(
                http,
                "PATCH",
                f"{setup}/clusters/{c['id']}",
                json={"runtime": runtime},
                what="cluster runtime",
            )
            log.info("cluster %s now runs %s", name, runtime)
        return c["id"]
    return _call(
        http,
        "POST",
        f"{setup}/clusters",
        json={"name": name, "runtime": runtime, "description": "edgectl up demo"},
        what="create cluster",
    )["id"]


def _write_token(path: Path, token: str) -> None:
    """The edge's token where its agent reads it (0600); the agent renews it there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)


def _edge(
    http: EdgeSyncClient,
    setup: str,
    spec: DemoEdge,
    cluster_id: int,
    agent_url: str | None,
    token_file: Path,
    camera_url: str | None = None,
) -> int:
    found = _call(http, "GET", f"{setup}/edges", params={"nid": spec["nid"]}, what="list edges")[
        "items"
    ]
    if found and camera_url:
        # The demo camera listens on a new port each start: its URL follows.
        _call(
            http,
            "PATCH",
            f"{setup}/edges/{found[0]['id']}",
            json={"url": camera_url},
            what=f"camera of {spec['name']}",
        )
    if found and found[0].get("agent_url") != agent_url:
        # EDGE_UP_PULL changed: a pull agent has no URL, a push agent its port's.
        _call(
            http,
            "PATCH",
            f"{setup}/edges/{found[0]['id']}",
            json={"agent_url": agent_url},
            what=f"agent URL of {spec['name']}",
        )
    if found:
        if not token_file.exists():  # a token is shown once: a lost one is replaced
            rotated = _call(
                http,
                "POST",
                f"{setup}/edges/{found[0]['id']}/token",
                what=f"token of {spec['name']}",
            )
            _write_token(token_file, rotated["token"])
        if found[0]["cluster_id"] != cluster_id:
            _call(
                http,
                "PATCH",
                f"{setup}/edges/{found[0]['id']}",
                json={"cluster_id": cluster_id},
                what=f"move {spec['name']} to cluster {cluster_id}",
            )
        return found[0]["id"]
    body = {
        **spec,
        "cluster_id": cluster_id,
        "type": 1,
        "address": "Sangam-dong, Mapo-gu, Seoul (demo)",
        "ip": "127.0.0.1",
        "isSupportAnnalysis": "YES",
        **({"agent_url": agent_url} if agent_url else {}),
        "node_name": spec["name"],
        "capacity": {"cpu": 4, "memory_mb": 8192, "gpu": 0},
        "description": "simulated edge (edgectl up)",
        **({"url": camera_url} if camera_url else {}),
    }
    created = _call(http, "POST", f"{setup}/edges", json=body, what=f"register {spec['name']}")
    _write_token(token_file, created["token"])
    log.info("registered %s (%s)", spec["name"], spec["nid"])
    return created["id"]


def _packages(
    http: EdgeSyncClient, setup: str, master: str, out: Path
) -> dict[tuple[str, str], int]:
    # The YOLO worker runs on the default install (onnxruntime, the demo ONNX model).
    wanted = ["weatherai", "monitoring-01", "monitoring-02", "yoloworker"]
    ids: dict[tuple[str, str], int] = {}
    for pkg in build_all(out, only=wanted):
        existing = _call(
            http,
            "GET",
            f"{setup}/ai-packages",
            params={"filename": pkg.filename, "ai_class": pkg.ai_class},
            what="list AIs",
        )["items"]
        match = [a for a in existing if a["version"] == pkg.version and a["status"] != "removed"]
        if match:
            ids[(pkg.filename, pkg.ai_class)] = match[0]["id"]
            continue
        with open(pkg.path, "rb") as f:
            accepted = _call(
                http,
                "POST",
                f"{master}/ai-packages",
                content=f,
                params={
                    "filename": pkg.filename,
                    "version": pkg.version,
                    "ai_class": pkg.ai_class,
                },
                headers={"content-type": "application/gzip"},
                what=f"upload {pkg.path.name}",
            )
        ids[(pkg.filename, pkg.ai_class)] = accepted["ai"]["id"]
        log.info("uploaded %s", pkg.path.name)
    _wait_ready(http, setup, list(ids.values()))
    return ids


def _wait_ready(http: EdgeSyncClient, setup: str, ai_ids: list[int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    pending = set(ai_ids)
    while pending and time.monotonic() < deadline:
        for ai_id in list(pending):
            ai = _call(http, "GET", f"{setup}/ai-packages/{ai_id}", what="read AI")
            if ai["status"] == "ready":
                pending.discard(ai_id)
            elif ai["status"] == "failed":
                raise SeedError(
                    f"AI {ai['filename']} {ai['version']} failed to build: {ai['failure_reason']}"
                )
        if pending:
            time.sleep(0.5)
    if pending:
        raise SeedError(f"AIs {sorted(pending)} not ready after {timeout:.0f}s")


def _deploy(
    http: EdgeSyncClient,
    setup: str,
    edge_id: int,
    ai_id: int,
    params: dict,
    keep: tuple[str, ...] = (),
) -> None:
    """Deploy once; a running deployment is left as it is, but for its params whose names start
    with ``keep`` (the story's load profile), which are brought to ``params``'s."""
    ai = _call(http, "GET", f"{setup}/ai-packages/{ai_id}", what="read AI")
    running = _call(
        http,
        "GET",
        f"{setup}/deployments",
        params={"edge_id": edge_id, "filename": ai["filename"], "desired": DesiredState.RUNNING},
        what="list deployments",
    )["items"]
    if running:
        # Already there (maybe swapped by the optimizer since): leave it, but for ``keep``.
        for dep in running:
            old = dep.get("params") or {}
            new = {k: v for k, v in old.items() if not k.startswith(keep)} if keep else old
            new.update({k: v for k, v in params.items() if keep and k.startswith(keep)})
            if new != old:
                _call(
                    http,
                    "PATCH",
                    f"{setup}/deployments/{dep['id']}",
                    json={"params": new},
                    what="update deployment",
                )
        return
    _call(
        http,
        "POST",
        f"{setup}/deployments",
        json={"edge_id": edge_id, "ai_id": ai_id, "params": params},
        what="deploy",
    )
