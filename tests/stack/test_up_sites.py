"""`edgectl up --sites 2` as a user runs it: two masters (each its own database and artifact
store), edge-01 in cluster demo served by the first,
edge-02 in cluster demo-2 served by the second, which copies the packages its edge runs; SIGTERM
leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid

import pytest

from tests.helpers.database import create_database, drop_database
from tests.helpers.env import free_port
from tests.stack.test_up import _descendants, _get, _stack_env, _wait


@pytest.fixture
def stack_database():
    """The stack on the test Postgres (EDGE_DATABASE_URL): no embedded one to start."""
    name = f"edgeup_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(name))
    yield url
    asyncio.run(drop_database(name))
    asyncio.run(drop_database(f"{name}_site2"))  # site 2's master's, beside it


@pytest.mark.timeout(300)
def test_up_with_two_sites(tmp_path, stack_database):
    data_dir = tmp_path / "data"
    env, ports = _stack_env(data_dir)
    ports["master-2"] = free_port()
    registry_ports = [free_port(), free_port()]
    env.update(
        EDGE_DATABASE_URL=stack_database,
        EDGE_UP_ANALYSIS="false",
        EDGE_UP_SITE2_MASTER_PORT=str(ports["master-2"]),
        EDGE_UP_REGISTRY_PORTS=json.dumps(registry_ports),
    )
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgectl.main", "up", "--plain", "--sites", "2"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    setup = f"http://127.0.0.1:{ports['setup']}"
    master2 = f"http://127.0.0.1:{ports['master-2']}"
    try:
        _wait("demo fleet seeded", lambda: "demo fleet seeded" in log.read_text(), 180, proc, log)
        token = json.loads((data_dir / "secrets.json").read_text())["EDGE_OPERATOR_TOKEN"]
        headers = {"Authorization": f"Bearer {token}"}

        def masters_of_clusters():
            answer = _get(f"{setup}/clusters", headers)
            found = {c["name"]: (c["master_name"], c["master_state"]) for c in answer["items"]}
            return found if found.get("demo-2") == ("site-2", "live") else None

        clusters = _wait("site 2's master registered", masters_of_clusters, 60, proc, log)
        assert clusters["demo"] == ("site-1", "live")
        edges = {e["name"]: e for e in _get(f"{setup}/edges", headers)["items"]}
        ids = {name: c for name, c in ((e, edges[e]["cluster_id"]) for e in edges)}
        assert ids["edge-01"] != ids["edge-02"]

        def edge02_running():
            deps = _get(f"{setup}/deployments?edge_id={edges['edge-02']['id']}", headers)
            states = [d["observed"] for d in deps["items"] if d["desired"] == "running"]
            return states and all(s == "running" for s in states)

        _wait("edge-02's AIs running (site 2)", edge02_running, 120, proc, log)
        status = _get(f"{master2}/status", headers)
        assert status["site"]["serving"] == ["demo-2"], status["site"]
        assert set(status["reconcile"]["last"]["edges"]) == {str(edges["edge-02"]["id"])}
        # Site 2's own store holds the packages its edge runs (copied by digest from site 1).
        assert list((data_dir / "master-2" / "artifacts" / "sha256").iterdir())
        # edge-02's agent fetches from its site's master.
        children = {" ".join(p.cmdline()): p for p in _descendants(proc.pid)}
        agent = next(cmd for cmd in children if "agent --node edge-02" in cmd)
        assert f"--master-url {master2}" in agent
        # No registries by default: the demo's packages install their dependencies with RUN,
        # which the engine-free layer builder refuses (per-site images: tests/multisite).
        assert "registry" not in " ".join(children)
    finally:
        kids = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert not [p for p in kids if p.is_running() and p.status() != "zombie"]
