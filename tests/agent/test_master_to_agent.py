"""Setup, the master and a real agent, each a process: the master reaches the agent with that
agent's own key and mints no token; the agent fetches with the edge's own token and hands it to
the workload (issue 16 items 2 and 3)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.agent.helpers import Agent, kill_leftovers, wait_until, workload_processes
from tests.helpers.env import OPERATOR, SERVICE, free_port, master_env, service_env
from tests.helpers.processes import start_service
from tests.master.helpers import package_files, targz


@pytest.fixture
def platform(db, tmp_path):
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
    master = start_service(
        "master",
        port=master_port,
        tmp_path=tmp_path,
        env=master_env(db, tmp_path, **common),
    )
    try:
        yield {**urls, "setup_process": setup}
    finally:
        master.stop()
        setup.stop()


def test_the_workload_runs_with_the_edges_own_token_handed_over_by_its_agent(tmp_path, platform):
    setup = httpx.Client(base_url=platform["setup"], headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=platform["master"], timeout=120)
    agent_port = free_port()
    cluster = setup.post("/clusters", json={"name": "lan", "runtime": "agent"}).json()
    r = setup.post(
        "/edges",
        json={
            "name": "edge-01",
            "nid": "0x01",
            "cluster_id": cluster["id"],
            "agent_url": f"http://127.0.0.1:{agent_port}",
        },
    )
    assert r.status_code == 201, r.text
    edge, edge_token = r.json(), r.json()["token"]
    agent = Agent(
        tmp_path,
        platform["master"],
        node="edge-01",
        port=agent_port,
        extra_env={"AGENT_EDGE_TOKEN": edge_token},
    ).start()
    try:
        r = master.post(
            "/ai-packages?filename=monitoring&version=01&ai_class=01",
            content=targz(package_files()),
            headers={**OPERATOR, "Content-Type": "application/gzip"},
        )
        assert r.status_code == 202, r.text
        ai = master.post(
            f"/ai-packages/{r.json()['ai']['id']}/build?wait=true", headers=SERVICE
        ).json()["ai"]
        assert ai["status"] == "ready", ai
        assert (
            setup.post("/deployments", json={"edge_id": edge["id"], "ai_id": ai["id"]}).status_code
            == 201
        )
        summary = master.post("/reconcile?wait=true", headers=SERVICE).json()
        assert summary["state"] == "ok", summary
        (proc,) = wait_until(
            lambda: workload_processes(agent.workdir, "monitoring-01"), what="the workload"
        )
        # The edge's own token, from its agent: not one the master made up.
        assert proc.environ()["EDGE_TOKEN"] == edge_token
        assert proc.environ()["EDGE_NODE_ID"] == "0x01"
        observed = wait_until(
            lambda: (
                (d := setup.get(f"/deployments?edge_id={edge['id']}").json()["items"][0])[
                    "observed"
                ]
                in ("pending", "running")
                and d
            ),
            what="observed",
        )
        assert observed["observed"] in ("pending", "running")

        # A live-view request reaches the push agent over its API: the file its workers watch.
        view = agent.workdir / "live" / "view.json"
        asked = time.time()
        r = master.post(
            "/edges/0x01/live-view", json={"fps": 3, "width": 320, "ttl_s": 5}, headers=OPERATOR
        )
        assert r.status_code == 200 and r.json()["runtime"] == "agent", r.text
        wanted = json.loads(view.read_text())
        assert (wanted["fps"], wanted["width"], wanted["budget_bps"]) == (3, 320, 256_000)
        assert asked + 4 < wanted["until"] < time.time() + 5.5
        r = master.post("/edges/0x01/live-view", json={"ttl_s": 0}, headers=OPERATOR)
        assert r.status_code == 200 and json.loads(view.read_text())["until"] <= time.time()
        assert master.post("/edges/0x99/live-view", json={}, headers=OPERATOR).status_code == 404
        assert master.post("/edges/0x01/live-view", json={}, headers=SERVICE).status_code == 403

        # The token rotated: the agent's old one is refused by the master at once (pushed).
        setup.post(f"/edges/{edge['id']}/token")
        digest = ai["package_digest"]
        wait_until(
            lambda: (
                master.get(
                    f"/artifacts/{digest}", headers={"Authorization": f"Bearer {edge_token}"}
                ).status_code
                == 401
            ),
            timeout=5,
            what="the old token refused by the master",
        )
    finally:
        agent.close()
        kill_leftovers(agent.workdir)
        setup.close()
        master.close()


def test_an_edge_token_fetches_only_the_packages_deployed_on_its_edge(platform):
    """Issue 16 item 7: an edge reads only its own. Edge 0x01's token may not fetch the package
    of an AI deployed only on 0x02; a deployment made since the last reconcile pass is
    fetchable at once; a removed one no longer after the next pass."""
    setup = httpx.Client(base_url=platform["setup"], headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=platform["master"], timeout=120)
    try:
        cluster = setup.post("/clusters", json={"name": "lan", "runtime": "agent"}).json()
        edges, tokens = {}, {}
        for nid in ("0x01", "0x02"):
            r = setup.post(
                "/edges",
                json={
                    "name": f"edge-{nid}",
                    "nid": nid,
                    "cluster_id": cluster["id"],
                    "agent_url": f"http://127.0.0.1:{free_port()}",  # no agent: unreachable
                },
            )
            assert r.status_code == 201, r.text
            edges[nid], tokens[nid] = r.json(), {"Authorization": f"Bearer {r.json()['token']}"}
        r = master.post(
            "/ai-packages?filename=monitoring&version=01&ai_class=01",
            content=targz(package_files()),
            headers={**OPERATOR, "Content-Type": "application/gzip"},
        )
        assert r.status_code == 202, r.text
        ai = master.post(
            f"/ai-packages/{r.json()['ai']['id']}/build?wait=true", headers=SERVICE
        ).json()["ai"]
        assert ai["status"] == "ready", ai
        url = f"/artifacts/{ai['package_digest']}"
        r = setup.post("/deployments", json={"edge_id": edges["0x02"]["id"], "ai_id": ai["id"]})
        assert r.status_code == 201, r.text
        assert master.post("/reconcile?wait=true", headers=SERVICE).json()["state"] == "ok"

        assert master.get(url, headers=tokens["0x02"]).status_code == 200
        r = master.get(url, headers=tokens["0x01"])
        assert r.status_code == 403, r.headers  # was 200: any edge token fetched any package
        assert r.json()["error"]["field"] == "digest", r.json()
        assert master.get(url, headers=SERVICE).status_code == 200  # the services' shared token

        # Deployed on 0x01 now, no pass since: the master reads setup once more and serves it.
        r = setup.post("/deployments", json={"edge_id": edges["0x01"]["id"], "ai_id": ai["id"]})
        assert r.status_code == 201, r.text
        assert master.get(url, headers=tokens["0x01"]).status_code == 200

        # Removed from 0x01: refused again after the next pass.
        assert setup.delete(f"/deployments/{r.json()['id']}").status_code in (200, 202, 204)
        assert master.post("/reconcile?wait=true", headers=SERVICE).json()["state"] == "ok"
        assert master.get(url, headers=tokens["0x01"]).status_code == 403
        assert master.get(url, headers=tokens["0x02"]).status_code == 200

        # The view of the last pass answers without asking setup: with setup stopped, 0x02's
        # package is still served; 0x01's would need a fresh read, and is not served.
        platform["setup_process"].stop()
        assert master.get(url, headers=tokens["0x02"]).status_code == 200
        r = master.get(url, headers=tokens["0x01"])
        assert r.status_code == 503, (r.status_code, r.text)
    finally:
        setup.close()
        master.close()
