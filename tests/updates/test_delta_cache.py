"""The master's patch cache stays bounded: over MASTER_DELTA_CACHE_MAX_BYTES the least recently
served patches go, a patch unused for MASTER_DELTA_CACHE_MAX_AGE_S goes, the one just built stays,
and a pruned patch is built again (the same bytes) when an edge asks for it. Real setup and master
processes; patches fetched over HTTP."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.helpers.env import OPERATOR, free_port, service_env
from tests.helpers.processes import start_service
from tests.updates.test_pull_agent import upload

WEIGHTS = 2 * 1024 * 1024
CHANGE = 20_000  # random bytes per version: each patch is about this big
MAX_BYTES = 50_000  # two patches fit, three do not


@pytest.fixture
def urls(db, tmp_path):
    setup_port, master_port = free_port(), free_port()
    common = dict(
        EDGE_SETUP_URL=f"http://127.0.0.1:{setup_port}",
        EDGE_MASTER_URL=f"http://127.0.0.1:{master_port}",
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
    )
    setup = start_service(
        "setup", env=service_env(db, **common), port=setup_port, tmp_path=tmp_path
    )
    master = start_service(
        "master",
        port=master_port,
        tmp_path=tmp_path,
        env=service_env(
            db,
            **common,
            MASTER_ARTIFACT_DIR=str(tmp_path / "artifacts"),
            MASTER_PACKAGE_DIR=str(tmp_path / "pk"),
            MASTER_RECONCILE_SECONDS="3600",
            MASTER_NOTIFY_OPTIMIZER="false",
            MASTER_DELTA_CACHE_MAX_BYTES=str(MAX_BYTES),
            MASTER_DELTA_CACHE_MAX_AGE_S="3600",
        ),
    )
    try:
        yield common["EDGE_SETUP_URL"], common["EDGE_MASTER_URL"]
    finally:
        master.stop()
        setup.stop()


def cached(tmp_path) -> dict[str, int]:
    folder = tmp_path / "artifacts" / "deltas"
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def test_the_patch_cache_is_pruned_by_size_and_age(tmp_path, urls):
    setup = httpx.Client(base_url=urls[0], headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=urls[1], timeout=120)
    model = bytearray(os.urandom(WEIGHTS))
    ais = []
    for k in range(4):  # v01..v04, each with another CHANGE bytes retrained
        if k:
            start = k * WEIGHTS // 5
            model[start : start + CHANGE] = os.urandom(CHANGE)
        ais.append(upload(master, f"0{k + 1}", bytes(model)))
    digests = [ai["package_digest"] for ai in ais]
    # An edge fetches only what is deployed on it: one edge per version a patch leads to.
    cluster = setup.post("/clusters", json={"name": "nat", "runtime": "agent-pull"}).json()
    tokens = {}
    for j in (1, 2, 3):
        body = {"name": f"edge-{j}", "nid": f"0x1{j}", "cluster_id": cluster["id"]}
        edge = setup.post("/edges", json=body).json()
        r = setup.post("/deployments", json={"edge_id": edge["id"], "ai_id": ais[j]["id"]})
        assert r.status_code == 201, r.text
        tokens[j] = edge["token"]

    def delta(i: int, j: int) -> bytes:
        r = master.get(
            f"/artifacts/{digests[j]}/delta",
            params={"from": digests[i]},
            headers={"Authorization": f"Bearer {tokens[j]}"},
        )
        assert r.status_code == 200, r.text
        return r.content

    def name(i: int, j: int) -> str:
        return f"{digests[i].removeprefix('sha256:')}-{digests[j].removeprefix('sha256:')}.hdiff"

    a = delta(0, 1)
    delta(1, 2)
    assert set(cached(tmp_path)) == {name(0, 1), name(1, 2)}  # two fit
    time.sleep(0.05)
    assert delta(0, 1) == a  # served from the cache: now the most recently used
    delta(2, 3)
    # Three do not fit: the least recently served (1->2) went; the size is within the bound.
    assert set(cached(tmp_path)) == {name(0, 1), name(2, 3)}
    assert sum(cached(tmp_path).values()) <= MAX_BYTES

    # 0->1 unused for two hours (its mtime says when it was last served): the next build
    # removes it though the size would allow it.
    old = time.time() - 7200
    os.utime(tmp_path / "artifacts" / "deltas" / name(0, 1), (old, old))
    delta(1, 2)  # built again
    assert set(cached(tmp_path)) == {name(2, 3), name(1, 2)}
    assert delta(0, 1) == a  # a pruned patch is built again, the same bytes
    master.close()
    setup.close()
