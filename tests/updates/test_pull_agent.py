"""Edges behind NAT, end to end on real processes: setup, the master, a private Mosquitto with the
shipped auth and ACL, and an agent in pull mode that listens on no port. It converges from
notices alone, gets a new version as a verified binary patch, survives the broker restarting
mid-update, ignores a notice for another node and is refused with the wrong credentials."""

from __future__ import annotations

import os
import re
import subprocess

import httpx
import psutil
import pytest

from tests.agent.helpers import (
    AGENT_TEST_ENV,
    agent_env,
    kill_leftovers,
    wait_until,
    workload_processes,
)
from tests.helpers.env import OPERATOR, SERVICE, free_port, service_env
from tests.helpers.processes import Proc, edgectl, start_service
from tests.master.helpers import package_files, targz
from tests.updates.broker import MASTER_PASSWORD, agent_password

NID = "0x01"


@pytest.fixture
def platform(db, tmp_path, broker):
    setup_port, master_port = free_port(), free_port()
    urls = {"setup": f"http://127.0.0.1:{setup_port}", "master": f"http://127.0.0.1:{master_port}"}
    common = dict(
        EDGE_SETUP_URL=urls["setup"],
        EDGE_MASTER_URL=urls["master"],
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
    )
    setup = start_service(
        "setup", env=service_env(db, **common), port=setup_port, tmp_path=tmp_path
    )
    master_env = service_env(
        db,
        **common,
        MASTER_ARTIFACT_DIR=str(tmp_path / "artifacts"),
        MASTER_PACKAGE_DIR=str(tmp_path / "pk"),
        MASTER_RECONCILE_SECONDS="3600",  # only setup's triggers and the agent's reports
        MASTER_NOTIFY_OPTIMIZER="false",
        MASTER_MQTT_URL=f"mqtt://127.0.0.1:{broker.port}",
        MASTER_MQTT_USERNAME="master",
        MASTER_MQTT_PASSWORD=MASTER_PASSWORD,
    )
    masters: list[Proc] = []

    def start_master() -> None:
        masters.append(start_service("master", port=master_port, tmp_path=tmp_path, env=master_env))

    def stop_master() -> None:
        masters[-1].stop()

    start_master()
    try:
        yield {
            **urls,
            "broker": broker,
            "artifacts": tmp_path / "artifacts",
            "start_master": start_master,
            "stop_master": stop_master,
        }
    finally:
        masters[-1].stop()
        setup.stop()


def weights(seed: int, size: int = 2 * 1024 * 1024) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(256)) * (size // 256)


def retrained(base: bytes, seed: int) -> bytes:
    """2 % of the bytes changed, in a few places: a fine-tune of some tensors."""
    out = bytearray(base)
    step = len(out) // 4
    for k in range(4):
        start = k * step + seed * 1000
        out[start : start + len(out) // 200] = os.urandom(len(out) // 200)
    return bytes(out)


def upload(master: httpx.Client, version: str, model: bytes) -> dict:
    files = package_files(version=version)
    files["model.bin"] = model
    r = master.post(
        f"/ai-packages?filename=monitoring&version={version}&ai_class=01",
        content=targz(files),
        headers={**OPERATOR, "Content-Type": "application/gzip"},
    )
    assert r.status_code == 202, r.text
    ai = master.post(f"/ai-packages/{r.json()['ai']['id']}/build?wait=true", headers=SERVICE)
    assert ai.json()["ai"]["status"] == "ready", ai.text
    return ai.json()["ai"]


def upload_weights(master: httpx.Client, base_ai: dict, version: str, model: bytes) -> dict:
    r = master.post(
        f"/ai-packages/{base_ai['id']}/versions",
        data={"version": version, "title": "nightly fine-tune", "description": "2 % of tensors"},
        files={"file": ("model.bin", model)},
        headers=OPERATOR,
    )
    assert r.status_code == 202, r.text
    ai = master.post(f"/ai-packages/{r.json()['ai']['id']}/build?wait=true", headers=SERVICE)
    assert ai.json()["ai"]["status"] == "ready", ai.text
    return ai.json()["ai"]


def start_pull_agent(tmp_path, platform, token: str, *, password: str | None = None, name="a"):
    broker = platform["broker"]
    env = agent_env(
        **AGENT_TEST_ENV,
        AGENT_MODE="pull",
        AGENT_EDGE_TOKEN=token,
        AGENT_MQTT_URL=f"mqtt://127.0.0.1:{broker.port}",
        AGENT_MQTT_USERNAME=NID,
        AGENT_MQTT_PASSWORD=password or agent_password(NID),
        AGENT_REPORT_S="2",
        AGENT_POLL_S="3600",  # notices only: the safety-net poll never comes in a test
    )
    env.pop("AGENT_KEY")  # a pull agent is called by nobody: it holds no agent key
    workdir = tmp_path / f"agent-{name}"
    proc = Proc(
        edgectl(
            "agent",
            "--node",
            "edge-01",
            "--workdir",
            str(workdir),
            "--master-url",
            platform["master"],
        ),
        env=env,
        log_path=tmp_path / f"agent-{name}.log",
    )
    return proc, workdir.resolve()


def listening_sockets(pid: int) -> list:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    agent_python = [p for p in procs if "edgectl.main" in " ".join(p.cmdline())]
    return [
        c
        for p in agent_python
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


def running_version(setup: httpx.Client, edge_id: int, version: str, ai_id: int) -> dict | bool:
    """The deployment runs ``ai_id`` at its current generation, as setup has it observed."""
    items = setup.get(f"/deployments?edge_id={edge_id}").json()["items"]
    if not items:
        return False
    d = items[0]
    current = d["ai_id"] == ai_id and d["observed_generation"] == d["generation"]
    return d["observed"] == "running" and current and d


def metric(master: httpx.Client, name: str, labels: str = "") -> float:
    text = master.get("/metrics", headers=SERVICE).text
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_an_agent_behind_nat_converges_from_notices_and_updates_by_patch(tmp_path, platform):
    setup = httpx.Client(base_url=platform["setup"], headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=platform["master"], timeout=120)
    broker = platform["broker"]
    cluster = setup.post("/clusters", json={"name": "nat", "runtime": "agent-pull"}).json()
    assert cluster["runtime"] == "agent-pull", cluster
    r = setup.post("/edges", json={"name": "edge-01", "nid": NID, "cluster_id": cluster["id"]})
    assert r.status_code == 201, r.text
    edge, token = r.json(), r.json()["token"]
    base = weights(1)
    v1 = upload(master, "01", base)
    # The master has done a pass (nothing desired yet): an edge with nothing gets an empty set.
    master.post("/reconcile?wait=true", headers=SERVICE)
    proc, workdir = start_pull_agent(tmp_path, platform, token)
    try:
        wait_until(lambda: "listening for update notices" in proc.log_text(), what="subscribed")
        # No inbound port: the agent listens on nothing, only connects out.
        assert listening_sockets(proc.pid) == []
        r = setup.post("/deployments", json={"edge_id": edge["id"], "ai_id": v1["id"]})
        assert r.status_code == 201, r.text
        dep = r.json()
        # setup tells the master, the master publishes a notice, the agent pulls and reports.
        wait_until(
            lambda: running_version(setup, edge["id"], "01", v1["id"]),
            timeout=60,
            what="v01 running, observed in setup",
        )
        (p1,) = workload_processes(workdir, "monitoring-01")
        assert p1.environ()["EDGE_TOKEN"] == token  # the edge's own token, from its agent
        assert metric(master, "master_update_downloads_total", '{kind="full"}') == 1
        # The set the agent pulled, with its tag as the ETag; the agent's next ask for an
        # unchanged set (If-None-Match) is a bare 304.
        as_edge = {"Authorization": f"Bearer {token}"}
        r = master.get("/edges/me/desired", headers=as_edge)
        assert r.status_code == 200 and r.headers["etag"] == f'"{r.json()["tag"]}"'
        assert [w["version"] for w in r.json()["workloads"]] == ["01"]
        again = master.get(
            "/edges/me/desired", headers={**as_edge, "If-None-Match": r.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == r.headers["etag"]
        stale = master.get("/edges/me/desired", headers={**as_edge, "If-None-Match": '"old"'})
        assert stale.status_code == 200 and stale.content == r.content
        refused = master.get("/edges/me/desired", headers=OPERATOR)  # not an edge: the route's 403
        assert refused.status_code == 403 and "edge" in refused.json()["error"]["message"]

        # v02: 2 % of the weights retrained. Fetched as a patch, verified, run.
        v2 = upload(master, "02", retrained(base, 1))
        assert setup.patch(f"/deployments/{dep['id']}", json={"ai_id": v2["id"]}).status_code == 200
        wait_until(
            lambda: running_version(setup, edge["id"], "02", v2["id"]),
            timeout=60,
            what="v02 running",
        )
        assert metric(master, "master_update_downloads_total", '{kind="delta"}') == 1
        delta_bytes = metric(master, "master_update_bytes_total", '{kind="delta"}')
        assert 0 < delta_bytes < 0.1 * v2["package_size"], (delta_bytes, v2["package_size"])
        assert "as a" in proc.log_text() and "-byte patch from" in proc.log_text()
        # The notice-to-running latency was measured.
        assert metric(master, "master_update_notice_to_running_seconds_count") >= 1

        # The broker restarts mid-update: stopped, the change made, started again. The master
        # republishes once it is back; the retained notice reaches the reconnected agent.
        broker.stop()
        # v03 comes from a training pipeline: only the changed weights file and the manifest
        # fields, over REST; the new package is v02's with that file replaced.
        model3 = retrained(base, 2)
        v3 = upload_weights(master, v2, "03", model3)
        assert v3["description"].startswith("nightly fine-tune")
        assert setup.patch(f"/deployments/{dep['id']}", json={"ai_id": v3["id"]}).status_code == 200
        broker.start()
        wait_until(
            lambda: running_version(setup, edge["id"], "03", v3["id"]),
            timeout=90,
            what="v03 running after the broker restart",
        )
        (p3,) = workload_processes(workdir, "monitoring-01")
        assert p3.environ()["EDGE_AI_VERSION"] == "03"
        with open(os.path.join(p3.cwd(), "model.bin"), "rb") as f:
            assert f.read() == model3  # the patched package holds exactly the uploaded weights
        assert metric(master, "master_update_downloads_total", '{kind="delta"}') == 2

        # Bad input to the training upload: named fields, nothing recorded.
        for data, field in (
            ({"version": "03"}, "version"),  # v03 exists now with another package
            ({"version": "04", "path": "../escape"}, "path"),
        ):
            r = master.post(
                f"/ai-packages/{v3['id']}/versions",
                data=data,
                files={"file": ("model.bin", b"weights")},
                headers=OPERATOR,
            )
            assert r.status_code in (409, 422), r.text
            assert field in r.text
        assert listening_sockets(proc.pid) == []

        # A notice for another node on this agent's topic (the master may write any topic):
        # ignored, nothing changes.
        import paho.mqtt.publish as publish

        publish.single(
            f"edge/{NID}/desired",
            '{"nid": "0x02", "generation": 1, "tag": "x", "sent_at": 0}',
            qos=1,
            hostname="127.0.0.1",
            port=broker.port,
            auth={"username": "master", "password": MASTER_PASSWORD},
        )
        wait_until(lambda: "ignored a notice for node 0x02" in proc.log_text(), what="ignored")
        assert workload_processes(workdir, "monitoring-01")[0].pid == p3.pid
    finally:
        proc.stop()
        kill_leftovers(workdir)
        setup.close()
        master.close()


def test_an_agent_with_the_wrong_broker_password_is_refused_and_keeps_nothing_half_done(
    tmp_path, platform
):
    setup = httpx.Client(base_url=platform["setup"], headers=OPERATOR, timeout=30)
    cluster = setup.post("/clusters", json={"name": "nat", "runtime": "agent-pull"}).json()
    r = setup.post("/edges", json={"name": "edge-01", "nid": NID, "cluster_id": cluster["id"]})
    token = r.json()["token"]
    proc, workdir = start_pull_agent(tmp_path, platform, token, password="wrong-password")
    try:
        wait_until(
            lambda: "not authorized" in proc.log_text().lower(),
            timeout=30,
            what="the broker refusing the login",
        )
        assert "listening for update notices" not in proc.log_text()
        assert proc.alive()  # it keeps retrying, with backoff
        assert workload_processes(workdir) == []
    finally:
        proc.stop()
        kill_leftovers(workdir)
        setup.close()


def test_a_restarted_master_keeps_what_runs_for_a_deployment_waiting_for_a_rebuild(
    tmp_path, platform
):
    """The master restarts while a pull edge's AI is being rebuilt (a master killed mid-build):
    its first pass cannot name what that deployment runs, so it publishes nothing for the edge
    (its desired set answers 503) instead of a set without it; the agent keeps running it, and
    once the AI is ready again the set is the one the agent already runs."""
    setup = httpx.Client(base_url=platform["setup"], headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=platform["master"], timeout=120)
    cluster = setup.post("/clusters", json={"name": "nat", "runtime": "agent-pull"}).json()
    r = setup.post("/edges", json={"name": "edge-01", "nid": NID, "cluster_id": cluster["id"]})
    edge, token = r.json(), r.json()["token"]
    v1 = upload(master, "01", weights(1))
    master.post("/reconcile?wait=true", headers=SERVICE)
    proc, workdir = start_pull_agent(tmp_path, platform, token)
    as_edge = {"Authorization": f"Bearer {token}"}
    try:
        r = setup.post("/deployments", json={"edge_id": edge["id"], "ai_id": v1["id"]})
        assert r.status_code == 201, r.text
        wait_until(
            lambda: running_version(setup, edge["id"], "01", v1["id"]), timeout=60, what="v01"
        )
        (p1,) = workload_processes(workdir, "monitoring-01")
        before = master.get("/edges/me/desired", headers=as_edge).json()
        assert [w["name"] for w in before["workloads"]] == ["monitoring-01"]

        # The master stops mid-build: setup's row says "building" when it starts again.
        platform["stop_master"]()
        r = httpx.patch(
            f"{platform['setup']}/ai-packages/{v1['id']}",
            json={"status": "building"},
            headers=SERVICE,
        )
        assert r.status_code == 200 and r.json()["status"] == "building", r.text
        platform["start_master"]()
        # Its first pass finds the deployment waiting, restarts the build; the AI is ready again.
        wait_until(
            lambda: setup.get(f"/ai-packages/{v1['id']}").json()["status"] == "ready",
            timeout=60,
            what="the AI rebuilt",
        )
        master.post("/reconcile?wait=true", headers=SERVICE)
        after = master.get("/edges/me/desired", headers=as_edge)
        assert after.status_code == 200, after.text
        assert after.json()["tag"] == before["tag"]  # the same set as before the restart
        wait_until(
            lambda: running_version(setup, edge["id"], "01", v1["id"]), timeout=60, what="v01"
        )
        # The agent never got a set without its AI: the same process ran all along.
        assert workload_processes(workdir, "monitoring-01")[0].pid == p1.pid
        assert ": 0 workload(s)" not in proc.log_text()
    finally:
        proc.stop()
        kill_leftovers(workdir)
        setup.close()
        master.close()


def test_a_bad_broker_url_stops_the_agent_at_start_with_one_line(tmp_path):
    env = agent_env(
        **AGENT_TEST_ENV,
        AGENT_MODE="pull",
        AGENT_NID=NID,
        AGENT_EDGE_TOKEN="not-checked-before-the-broker-url",
        AGENT_MQTT_URL="http://127.0.0.1:1883",
    )
    for url, why in (
        ("http://127.0.0.1:1883", "starts with mqtt:// or mqtts://"),
        ("mqtt://127.0.0.1:99999", "port"),
        ("mqtt://", "names no host"),
    ):
        env["AGENT_MQTT_URL"] = url
        result = subprocess.run(
            edgectl("agent", "--node", "edge-01", "--workdir", str(tmp_path / "agent")),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "AGENT_MQTT_URL" in lines[0] and why in lines[0], lines
        assert "not-checked-before" not in result.stderr  # no secret in the message
