"""Two master processes serving one site (MASTER_BOARD_SHARED): one leads (reconciles,
publishes), both serve the same desired sets from memory kept fresh by LISTEN/NOTIFY, a report
posted to either reaches setup, and when the leader is killed the other takes over. The agent
side is the two HTTP calls a pull agent makes (GET /edges/me/desired, POST /edges/me/observed)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.agent.helpers import wait_until
from tests.helpers.env import OPERATOR, SERVICE, free_port, service_env
from tests.helpers.processes import Proc, start_service
from tests.updates.test_pull_agent import upload, weights

NID = "0x01"


@pytest.fixture
def site(db, tmp_path):
    setup_port, port_a, port_b = free_port(), free_port(), free_port()
    urls = {
        "setup": f"http://127.0.0.1:{setup_port}",
        "a": f"http://127.0.0.1:{port_a}",
        "b": f"http://127.0.0.1:{port_b}",
    }
    common = dict(
        EDGE_SETUP_URL=urls["setup"],
        EDGE_MASTER_URL=urls["b"],  # setup's triggers land on the process that does not lead
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
    )
    procs: list[Proc] = [
        start_service("setup", env=service_env(db, **common), port=setup_port, tmp_path=tmp_path)
    ]

    def master_env(replica: str) -> dict[str, str]:
        return service_env(
            db,
            **common,
            MASTER_ARTIFACT_DIR=str(tmp_path / "artifacts"),  # one volume, as workers share
            MASTER_PACKAGE_DIR=str(tmp_path / "pk"),
            MASTER_RECONCILE_SECONDS="3600",  # only triggers: the notices carry every change
            MASTER_NOTIFY_OPTIMIZER="false",
            MASTER_BOARD_SHARED="true",
            MASTER_BOARD_RESYNC_S="3600",  # the safety net never runs: NOTIFY does it all
            MASTER_BOARD_LEASE_TTL_S="2",
            MASTER_BOARD_LEASE_RENEW_S="0.5",
            MASTER_REPLICA_ID=replica,
        )

    try:
        masters = {}
        masters["a"] = start_service("master", env=master_env("a"), port=port_a, tmp_path=tmp_path)
        procs.append(masters["a"])
        masters["b"] = start_service("master", env=master_env("b"), port=port_b, tmp_path=tmp_path)
        procs.append(masters["b"])
        yield {**urls, "procs": masters}
    finally:
        for p in reversed(procs):
            p.stop()


def board(client: httpx.Client) -> dict:
    return client.get("/status", headers=SERVICE).json()["board"]


def desired(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/edges/me/desired", headers={"Authorization": f"Bearer {token}"})


def serves(client: httpx.Client, token: str, versions: list[str]) -> httpx.Response | None:
    r = desired(client, token)
    if r.status_code == 200 and [w["version"] for w in r.json()["workloads"]] == versions:
        return r
    return None


def test_two_master_processes_serve_one_board_and_the_other_takes_over(site):
    setup = httpx.Client(base_url=site["setup"], headers=OPERATOR, timeout=30)
    a = httpx.Client(base_url=site["a"], timeout=120)
    b = httpx.Client(base_url=site["b"], timeout=120)
    # a started first and leads; b serves.
    assert board(a)["leads"] and board(a)["leader"]["holder"] == "a"
    on_b = board(b)
    assert (on_b["shared"], on_b["replica"], on_b["leads"]) == (True, "b", False)
    assert on_b["leader"]["holder"] == "a" and not on_b["leader"]["this_replica"]

    cluster = setup.post("/clusters", json={"name": "nat", "runtime": "agent-pull"}).json()
    r = setup.post("/edges", json={"name": "edge-01", "nid": NID, "cluster_id": cluster["id"]})
    assert r.status_code == 201, r.text
    edge, token = r.json(), r.json()["token"]
    v1 = upload(a, "01", weights(1, 256 * 1024))
    v2 = upload(a, "02", weights(2, 256 * 1024))
    # POST /reconcile on the process that does not lead: the leader runs the pass.
    r = b.post("/reconcile", headers=SERVICE)
    assert r.status_code == 202 and r.json()["leader"]["holder"] == "a", r.text
    wait_until(lambda: a.get("/status", headers=SERVICE).json()["reconcile"]["passes"] >= 1)
    assert b.get("/status", headers=SERVICE).json()["reconcile"]["passes"] == 0

    # A change through setup (its trigger reaches b, which does not lead) reaches both.
    dep = setup.post("/deployments", json={"edge_id": edge["id"], "ai_id": v1["id"]}).json()
    from_a = wait_until(lambda: serves(a, token, ["01"]), what="v01 on a")
    started = time.monotonic()
    from_b = wait_until(lambda: serves(b, token, ["01"]), timeout=5, what="v01 on b")
    print(f"b served the set {time.monotonic() - started:.3f} s after a")
    assert from_b.content == from_a.content and from_b.headers["etag"] == from_a.headers["etag"]
    # The ETag a got from either is a 304 on the other.
    again = b.get(
        "/edges/me/desired",
        headers={"Authorization": f"Bearer {token}", "If-None-Match": from_a.headers["etag"]},
    )
    assert again.status_code == 304 and again.headers["etag"] == from_a.headers["etag"]

    # The agent reports to b: setup hears it through the leader.
    (wl,) = from_b.json()["workloads"]
    report = {
        "applied_tag": from_b.json()["tag"],
        "workloads": [
            {
                "name": wl["name"],
                "state": "running",
                "deployment_id": dep["id"],
                "generation": wl["generation"],
                "version": "01",
            }
        ],
    }
    r = b.post("/edges/me/observed", json=report, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["tag"] == from_b.json()["tag"], r.text
    wait_until(
        lambda: setup.get(f"/deployments/{dep['id']}").json()["observed"] == "running",
        what="the report to b, running in setup",
    )

    # The leader dies without a word: b takes over within the lease's 2 s and reconciles.
    site["procs"]["a"].kill()
    wait_until(lambda: board(b)["leads"], timeout=10, what="b leads")
    assert board(b)["leader"]["holder"] == "b"
    r = setup.patch(f"/deployments/{dep['id']}", json={"ai_id": v2["id"]})
    assert r.status_code == 200, r.text
    from_b = wait_until(lambda: serves(b, token, ["02"]), what="v02 from b, the new leader")
    assert from_b.json()["tag"] != from_a.json()["tag"]
    # The new leader hears the agent's reports itself now.
    (wl,) = from_b.json()["workloads"]
    report["applied_tag"] = from_b.json()["tag"]
    report["workloads"][0].update(generation=wl["generation"], version="02")
    r = b.post("/edges/me/observed", json=report, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    wait_until(
        lambda: (
            (d := setup.get(f"/deployments/{dep['id']}").json())["observed"] == "running"
            and d["observed_generation"] == d["generation"]
        ),
        what="v02 running in setup, through b",
    )
