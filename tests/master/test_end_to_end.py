"""The issue's "done when", with real processes: a docker-registry, setup, the master and an edge
agent. Upload through setup, stored and pushed (checked with skopeo), deployed and running on the
agent, reported running in setup; version 02 switched in with no gap; the workload killed and
restarted, the restart counted; the master SIGKILLed mid-way and restarted without duplicates;
undeployed and gone; the AI removed with its image and artifact."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.agent.helpers import Agent, kill_leftovers, workload_processes
from tests.helpers.env import OPERATOR, free_port, service_env
from tests.helpers.processes import Proc, start_service
from tests.helpers.registry import SkopeoError, skopeo_inspect, start_registry
from tests.master.helpers import eventually, package_files, write_folder


class Stack:
    def __init__(self, database_url: str, tmp_path):
        self.tmp = tmp_path
        self.db = database_url
        self.registry = start_registry(tmp_path / "registry")
        self.setup_port, self.master_port = free_port(), free_port()
        self.setup_url = f"http://127.0.0.1:{self.setup_port}"
        self.master_url = f"http://127.0.0.1:{self.master_port}"
        self.package_dir = tmp_path / "packages"
        self.artifact_dir = tmp_path / "artifacts"
        nobody = (
            f"http://127.0.0.1:{free_port()}"  # the optimizer is not running: events are dropped
        )
        common = dict(
            EDGE_SETUP_URL=self.setup_url,
            EDGE_MASTER_URL=self.master_url,
            EDGE_OPTIMIZER_URL=nobody,
        )
        self.setup_env = service_env(database_url, **common)
        self.master_env = service_env(
            database_url,
            **common,
            MASTER_REGISTRY_URL=self.registry.url,
            MASTER_ARTIFACT_DIR=str(self.artifact_dir),
            MASTER_PACKAGE_DIR=str(self.package_dir),
            MASTER_RECONCILE_SECONDS="2",
            MASTER_VMS_PUBLIC_URL="http://127.0.0.1:6432",
        )
        self.setup_proc: Proc | None = None
        self.master_proc: Proc | None = None
        self.agent: Agent | None = None
        self.setup = httpx.Client(base_url=self.setup_url, headers=OPERATOR, timeout=30)
        self.master = httpx.Client(base_url=self.master_url, headers=OPERATOR, timeout=30)

    def start(self) -> Stack:
        self.setup_proc = start_service(
            "setup", env=self.setup_env, port=self.setup_port, tmp_path=self.tmp
        )
        self.start_master()
        self.agent = Agent(self.tmp, self.master_url, node="edge-01").start()
        return self

    def start_master(self) -> None:
        self.master_proc = start_service(
            "master", env=self.master_env, port=self.master_port, tmp_path=self.tmp
        )

    def close(self) -> None:
        self.setup.close()
        self.master.close()
        if self.agent is not None:
            self.agent.close()
            kill_leftovers(self.agent.workdir)
        for proc in (self.master_proc, self.setup_proc):
            if proc is not None:
                proc.stop()
        self.registry.stop()

    # --- looks ---------------------------------------------------------------------------
    def ai(self, ai_id: int) -> dict:
        return self.setup.get(f"/ai-packages/{ai_id}").json()

    def deployment(self, dep_id: int) -> dict:
        return self.setup.get(f"/deployments/{dep_id}").json()

    def workloads(self) -> list[dict]:
        return self.agent.client.get("/workloads").json()["workloads"]

    def upload(self, version: str) -> dict:
        r = self.setup.post(
            "/request_upload_edgeAi",
            data={"filename": "monitoring", "version": version, "ai_class": "01"},
        )
        assert r.status_code == 200 and r.json()["code"] == "0000", r.text
        aid = r.json()["aid"]
        return eventually(
            lambda: (a := self.ai(aid))["status"] in ("ready", "failed") and a,
            what=f"AI {aid} built",
        )


@pytest.fixture
def stack(db, tmp_path):
    s = Stack(db, tmp_path).start()
    yield s
    s.close()


def ticks(path) -> list[tuple[str, float]]:
    out = []
    for line in path.read_text().splitlines():
        version, _, ts = line.partition(" ")
        out.append((version, float(ts)))
    return out


def test_upload_deploy_switch_restart_undeploy_through_real_processes(stack: Stack):
    # The fleet: one cluster run by edge agents, one edge whose agent is ours.
    cluster = stack.setup.post("/clusters", json={"name": "lan", "runtime": "agent"}).json()
    edge = stack.setup.post(
        "/edges",
        json={
            "name": "EdgeCCTV01",
            "nid": "0x01",
            "type": 1,
            "isSupportAnnalysis": "YES",
            "cluster_id": cluster["id"],
            "agent_url": stack.agent.url,
            "node_name": "edge-01",
            "url": "rtsp://user:pass@127.0.0.1/axis-media/media.amp",
        },
    ).json()
    assert "id" in edge, edge

    # Upload version 01 the field's way: the folder named filename sits in the package directory.
    write_folder(stack.package_dir / "monitoring", package_files("monitoring", "01", "01"))
    v1 = stack.upload("01")
    assert v1["status"] == "ready", v1
    assert v1["image_ref"] == f"{stack.registry.host}/monitoring-01:01"
    assert (stack.artifact_dir / "sha256" / v1["package_digest"].split(":")[1]).is_file()
    inspected = skopeo_inspect(v1["image_ref"])
    assert inspected["Digest"] == v1["image_digest"]
    labels = inspected["Labels"]
    assert labels and "01" in labels.values() and v1["package_digest"] in labels.values(), labels

    # Deploy it (the workload appends its version to a file: the witness of "no gap" later).
    tick_file = stack.tmp / "ticks.log"
    dep = stack.setup.post(
        "/deployments",
        json={"edge_id": edge["id"], "ai_id": v1["id"], "params": {"TICK_FILE": str(tick_file)}},
    ).json()
    eventually(
        lambda: any(
            w["name"] == "monitoring-01" and w["state"] == "running" for w in stack.workloads()
        ),
        what="monitoring-01 running on the agent",
    )
    d = eventually(
        lambda: (d := stack.deployment(dep["id"]))["observed"] == "running" and d,
        what="observed running in setup",
    )
    assert d["observed_generation"] == d["generation"]
    log = stack.agent.client.get("/workloads/monitoring-01/logs").json()["lines"]
    assert any("start 01 nid 0x01 vms-in-config True" in line for line in log), log

    # Version 02 in a versioned folder beside the first; switch the deployment to it.
    write_folder(stack.package_dir / "monitoring-01-02", package_files("monitoring", "02", "01"))
    v2 = stack.upload("02")
    assert (
        v2["status"] == "ready" and skopeo_inspect(v2["image_ref"])["Digest"] == v2["image_digest"]
    )
    r = stack.setup.patch(f"/deployments/{dep['id']}", json={"ai_id": v2["id"]})
    assert r.status_code == 200, r.text
    # Kill the master while it converges: the restarted one finishes the job, no duplicate.
    time.sleep(0.3)
    stack.master_proc.kill()
    stack.start_master()
    eventually(
        lambda: any(
            w["version"] == "02" and w["state"] == "running" and not w["previous"]
            for w in stack.workloads()
        ),
        timeout=60,
        what="version 02 running alone",
    )
    d = eventually(
        lambda: (
            (d := stack.deployment(dep["id"]))["observed"] == "running"
            and d["observed_generation"] == d["generation"]
            and d
        ),
        what="v02 observed running",
    )
    assert [w["name"] for w in stack.workloads()] == ["monitoring-01"]
    eventually(
        lambda: len(workload_processes(stack.agent.workdir, "monitoring-01")) == 1,
        what="one process left",
    )
    # No gap: version 02 ticked before version 01's last tick.
    seen = ticks(tick_file)
    last_v1 = max(t for v, t in seen if v == "v01")
    first_v2 = min(t for v, t in seen if v == "v02")
    assert first_v2 < last_v1, (first_v2, last_v1)

    # Kill the workload's process: the agent restarts it, setup counts the restart.
    (w,) = stack.workloads()
    os.kill(w["pid"], signal.SIGKILL)
    d = eventually(
        lambda: (
            (d := stack.deployment(dep["id"]))["restarts"] >= 1 and d["observed"] == "running" and d
        ),
        timeout=40,
        what="restart counted in setup",
    )
    (w2,) = stack.workloads()
    assert w2["pid"] != w["pid"] and w2["restarts"] >= 1

    # Undeploy through the master's field route: gone from the agent, "removed" in setup.
    r = stack.master.post(
        "/undeploy_aiFromDevice", data={"aid": str(v2["id"]), "eid": str(edge["id"])}
    )
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    eventually(lambda: stack.workloads() == [], what="workload gone from the agent")
    eventually(
        lambda: stack.deployment(dep["id"])["observed"] == "removed",
        what="observed removed in setup",
    )
    eventually(lambda: workload_processes(stack.agent.workdir) == [], what="no process left")

    # Remove version 01 through setup: image deleted from the registry, artifact deleted.
    r = stack.setup.post("/request_remove_edgeAi", data={"aid": str(v1["id"])})
    assert r.json()["code"] == "0000", r.text

    def image_gone() -> bool:
        try:
            skopeo_inspect(v1["image_ref"])
            return False
        except SkopeoError:
            return True

    eventually(image_gone, what="v01 image deleted")
    eventually(
        lambda: not (stack.artifact_dir / "sha256" / v1["package_digest"].split(":")[1]).exists(),
        what="artifact deleted",
    )
    assert (stack.artifact_dir / "sha256" / v2["package_digest"].split(":")[1]).is_file()

    status = stack.master.get("/status").json()
    assert status["reconcile"]["last"]["state"] == "ok", status
    for proc in (stack.master_proc, stack.setup_proc):
        text = proc.log_text()
        assert "test-service-token" not in text and "pass@" not in text
