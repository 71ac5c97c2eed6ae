"""Two sites, with real processes: setup, two masters (each with its own database, artifact store
and Debian ``docker-registry``), one edge agent per site. Deployments land on the right site; an
AI used by both sites is in both registries; one master killed leaves the other site converging
and its own site catches up when it returns; the field's routes act on the right site; a master
claiming another's cluster is refused; a cluster with no master stays pending; a site registry
refusing a push blocks only that site, with the reason, and nothing half-deployed."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from shared import migrations
from shared.agent_keys import agent_key, derived_secret
from shared.edge_tokens import issue_edge_token
from tests.agent.helpers import Agent, kill_leftovers
from tests.helpers.database import create_database, drop_database
from tests.helpers.env import (
    OPERATOR,
    SERVICE_TOKEN,
    SIGNER,
    free_port,
    service_credential,
    service_env,
)
from tests.helpers.processes import Proc, start_service
from tests.helpers.registry import SkopeoError, skopeo_inspect, start_registry
from tests.master.helpers import eventually, package_files, write_folder

MASTER = {"Authorization": f"Bearer {service_credential('master')}"}


def agent_auth(nid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent_key(derived_secret(SERVICE_TOKEN), nid)}"}


class Site:
    """One site: a master (its own database and store), a registry, one edge agent."""

    def __init__(self, name: str, nid: str, tmp, db_url: str, setup_url: str, default_url: str):
        self.name, self.nid, self.tmp = name, nid, tmp / name
        self.tmp.mkdir()
        self.registry = start_registry(self.tmp / "registry")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = self.tmp / "artifacts"
        self.packages = self.tmp / "packages"
        self.env = service_env(
            db_url,
            EDGE_SETUP_URL=setup_url,
            EDGE_MASTER_URL=default_url,
            EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",  # none: events are dropped
            MASTER_NAME=f"master-{name}",
            MASTER_CLUSTERS=name,
            MASTER_PUBLIC_URL=self.url,
            MASTER_REGISTRY_URL=self.registry.url,
            MASTER_ARTIFACT_DIR=str(self.artifacts),
            MASTER_PACKAGE_DIR=str(self.packages),
            MASTER_RECONCILE_SECONDS="1",
            MASTER_HEARTBEAT_SECONDS="0.5",
        )
        self.proc: Proc | None = None
        self.master = httpx.Client(base_url=self.url, headers=OPERATOR, timeout=30)
        self.agent = Agent(
            self.tmp,
            self.url,  # a site's agent fetches packages from its site's master
            node=f"edge-{name}",
            extra_env={
                "AGENT_KEY": agent_key(derived_secret(SERVICE_TOKEN), nid),
                "AGENT_EDGE_TOKEN": issue_edge_token(nid, SIGNER),
            },
        )
        self.agent.client.headers.update(agent_auth(nid))

    def start_master(self) -> None:
        self.proc = start_service("master", env=self.env, port=self.port, tmp_path=self.tmp)

    def restart_registry(self, *, readonly: bool) -> None:
        self.registry.stop()
        self.registry = start_registry(
            self.tmp / "registry", readonly=readonly, port=self.registry.port
        )

    def workloads(self) -> dict[str, dict]:
        return {w["name"]: w for w in self.agent.client.get("/workloads").json()["workloads"]}

    def passes(self) -> int:
        return self.master.get("/status").json()["reconcile"]["passes"]

    def close(self) -> None:
        self.master.close()
        self.agent.close()
        kill_leftovers(self.agent.workdir)
        if self.proc is not None:
            self.proc.stop()
        self.registry.stop()


class TwoSites:
    def __init__(self, db: str, db_b: str, tmp):
        self.tmp = tmp
        self.setup_port = free_port()
        self.setup_url = f"http://127.0.0.1:{self.setup_port}"
        a_port_holder = Site("site-a", "0x01", tmp, db, self.setup_url, "")
        default = a_port_holder.url  # site A's master is the default one (builds, field uploads)
        a_port_holder.env["EDGE_MASTER_URL"] = default
        self.a = a_port_holder
        self.b = Site("site-b", "0x02", tmp, db_b, self.setup_url, default)
        self.setup_proc = start_service(
            "setup",
            env=service_env(
                db,
                EDGE_SETUP_URL=self.setup_url,
                EDGE_MASTER_URL=default,
                SETUP_MASTER_SILENT_AFTER_S="3",
            ),
            port=self.setup_port,
            tmp_path=tmp,
        )
        self.setup = httpx.Client(base_url=self.setup_url, headers=OPERATOR, timeout=30)

    def cluster(self, name: str) -> dict:
        return next(c for c in self.setup.get("/clusters").json()["items"] if c["name"] == name)

    def deployment(self, dep_id: int) -> dict:
        return self.setup.get(f"/deployments/{dep_id}").json()

    def upload(self, filename: str, version: str) -> dict:
        r = self.setup.post(
            "/request_upload_edgeAi",
            data={"filename": filename, "version": version, "ai_class": "01"},
        )
        assert r.status_code == 200 and r.json()["code"] == "0000", r.text
        aid = r.json()["aid"]
        return eventually(
            lambda: (
                (a := self.setup.get(f"/ai-packages/{aid}").json())["status"] in ("ready", "failed")
                and a
            ),
            what=f"AI {aid} built",
        )

    def deploy(self, edge_id: int, ai_id: int) -> dict:
        r = self.setup.post("/deployments", json={"edge_id": edge_id, "ai_id": ai_id})
        assert r.status_code == 201, r.text
        return r.json()

    def close(self) -> None:
        self.setup.close()
        for site in (self.b, self.a):
            site.close()
        self.setup_proc.stop()


@pytest.fixture
def second_database():
    """Site B's master keeps its own database (its build and upload records)."""
    name = f"edgetest_b_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(name))
    migrations.upgrade("services.master", url)
    yield url
    asyncio.run(drop_database(name))


@pytest.fixture
def sites(db, second_database, tmp_path):
    s = TwoSites(db, second_database, tmp_path)
    try:
        yield s
    finally:
        s.close()


def running(site: Site, name: str, version: str | None = None) -> bool:
    w = site.workloads().get(name)
    return bool(w and w["state"] == "running" and (version is None or w["version"] == version))


def in_registry(image: str) -> str | None:
    try:
        return skopeo_inspect(image)["Digest"]
    except SkopeoError:
        return None


def test_two_sites_each_converged_by_its_master(sites: TwoSites):
    a, b, setup = sites.a, sites.b, sites.setup
    # The fleet: one cluster per site, and one no master serves.
    ids = {}
    for name in ("site-a", "site-b", "orphan"):
        r = setup.post("/clusters", json={"name": name, "runtime": "agent"})
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    for site in (a, b):
        site.agent.start()
        site.start_master()

    # Each master registered itself with its cluster; setup shows who serves what, and when.
    for site in (a, b):
        c = sites.cluster(site.name)
        assert c["master_name"] == f"master-{site.name}" and c["master_state"] == "live", c
        assert c["master_last_seen_at"]
    assert sites.cluster("orphan")["master_state"] == "none"
    masters = {m["name"]: m for m in setup.get("/masters").json()["items"]}
    assert masters["master-site-b"]["clusters"] == ["site-b"]
    assert masters["master-site-b"]["url"] == b.url and masters["master-site-b"]["port"] == str(
        b.port
    )
    assert masters["master-site-a"]["state"] == "live"

    edges = {}
    for site, cluster in ((a, "site-a"), (b, "site-b")):
        r = setup.post(
            "/edges",
            json={
                "name": f"edge-{site.name}",
                "nid": site.nid,
                "cluster_id": ids[cluster],
                "agent_url": site.agent.url,
                "node_name": f"edge-{site.name}",
            },
        )
        assert r.status_code == 201, r.text
        edges[site.name] = r.json()["id"]
    r = setup.post(
        "/edges",
        json={
            "name": "edge-orphan",
            "nid": "0x03",
            "cluster_id": ids["orphan"],
            "agent_url": f"http://127.0.0.1:{free_port()}",
        },
    )
    edges["orphan"] = r.json()["id"]

    # A master claiming a cluster another live master serves: 409, nothing written.
    claim = {"name": "intruder", "url": "http://127.0.0.1:9", "clusters": ["site-a", "site-b"]}
    r = httpx.post(f"{sites.setup_url}/masters/register", json=claim, headers=MASTER)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["field"] == "clusters" and "master-site-a" in r.text
    r = httpx.post(
        f"{sites.setup_url}/masters/register",
        json={**claim, "clusters": ["nowhere"]},
        headers=MASTER,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "clusters", r.text
    assert "intruder" not in {m["name"] for m in setup.get("/masters").json()["items"]}
    assert sites.cluster("site-b")["master_name"] == "master-site-b"

    # Built once (by the default master, site A's), deployed on both sites.
    write_folder(a.packages / "monitoring", package_files("monitoring", "01", "01"))
    v1 = sites.upload("monitoring", "01")
    assert v1["status"] == "ready", v1
    dep_a = sites.deploy(edges["site-a"], v1["id"])
    dep_b = sites.deploy(edges["site-b"], v1["id"])
    for site in (a, b):
        eventually(lambda site=site: running(site, "monitoring-01", "01"), what=f"{site.name} runs")
    for dep in (dep_a, dep_b):
        eventually(
            lambda dep=dep: sites.deployment(dep["id"])["observed"] == "running",
            what="observed running",
        )
    # In both registries, the same image (same package, same digest); site B's agent fetched the
    # archive from site B's master, which copied it by digest.
    assert in_registry(f"{a.registry.host}/monitoring-01:01") == v1["image_digest"]
    assert in_registry(f"{b.registry.host}/monitoring-01:01") == v1["image_digest"]
    assert (b.artifacts / "sha256" / v1["package_digest"].split(":")[1]).is_file()
    # Each master reconciles only its own cluster's edges.
    status_b = b.master.get("/status").json()
    assert status_b["site"]["serving"] == ["site-b"]
    assert set(status_b["reconcile"]["last"]["edges"]) == {str(edges["site-b"])}
    assert a.master.get("/status").json()["site"]["serving"] == ["site-a"]

    # A cluster no master serves: its deployment waits, whatever the masters do meanwhile.
    dep_o = sites.deploy(edges["orphan"], v1["id"])
    seen = {site.name: site.passes() for site in (a, b)}
    for site in (a, b):
        eventually(lambda site=site: site.passes() >= seen[site.name] + 2, what="two passes")
    orphan = sites.deployment(dep_o["id"])
    assert orphan["observed"] == "pending" and orphan["observed_at"] is None, orphan
    setup.delete(f"/deployments/{dep_o['id']}")

    # The field's routes act on the site of the edge they name.
    r = setup.post("/request_undeploy_aiFromDevice", data={"aid": v1["id"], "eid": edges["site-b"]})
    assert r.json()["code"] == "0000", r.text
    eventually(lambda: "monitoring-01" not in b.workloads(), what="undeployed on site B")
    assert running(a, "monitoring-01")
    r = setup.post("/request_deploy_aiToDevice", data={"aid": v1["id"], "eid": edges["site-b"]})
    assert r.json()["code"] == "0000", r.text
    eventually(lambda: running(b, "monitoring-01", "01"), what="deployed again on site B")
    dep_b = {"id": r.json()["deployments"][0]}

    # Site B's master dies: setup marks it silent, site A keeps converging alone.
    assert b.proc is not None
    b.proc.kill()
    eventually(lambda: sites.cluster("site-b")["master_state"] == "silent", what="B silent")
    snap = setup.get("/fleet/snapshot").json()
    assert snap["silent_cluster_ids"] == [ids["site-b"]]
    silent = {e["name"]: e["master_silent"] for e in snap["edges"]}
    assert silent == {"edge-site-a": False, "edge-site-b": True, "edge-orphan": False}
    write_folder(a.packages / "monitoring-01-02", package_files("monitoring", "02", "01"))
    v2 = sites.upload("monitoring", "02")
    for dep in (dep_a, dep_b):
        r = setup.patch(f"/deployments/{dep['id']}", json={"ai_id": v2["id"]})
        assert r.status_code == 200, r.text
    eventually(lambda: running(a, "monitoring-01", "02"), what="site A on 02")
    assert b.workloads()["monitoring-01"]["version"] == "01"  # nobody converges site B now
    # Back: it catches up from desired state.
    b.start_master()
    eventually(lambda: running(b, "monitoring-01", "02"), timeout=60, what="site B caught up")
    assert sites.cluster("site-b")["master_state"] == "live"
    assert in_registry(f"{b.registry.host}/monitoring-01:02") == v2["image_digest"]

    # Site B's registry refuses pushes: an AI both sites use runs on site A; on site B its
    # deployment waits with the registry's refusal, and nothing of it runs there.
    b.restart_registry(readonly=True)
    write_folder(a.packages / "counter", package_files("counter", "01", "01"))
    counter = sites.upload("counter", "01")
    c_a = sites.deploy(edges["site-a"], counter["id"])
    c_b = sites.deploy(edges["site-b"], counter["id"])
    eventually(lambda: running(a, "counter-01", "01"), what="counter on site A")
    waiting = eventually(
        lambda: (
            (d := sites.deployment(c_b["id"]))["observed_reason"]
            and "refused" in d["observed_reason"]
            and d
        ),
        what="site B's refusal reported",
    )
    assert waiting["observed"] == "pending" and b.registry.host in waiting["observed_reason"]
    assert "counter-01" not in b.workloads() and running(b, "monitoring-01", "02")
    health = next(m for m in setup.get("/masters").json()["items"] if m["name"] == "master-site-b")[
        "health"
    ]
    assert str(counter["id"]) in health["site_problems"], health
    b.restart_registry(readonly=False)
    eventually(lambda: running(b, "counter-01", "01"), timeout=60, what="counter on site B")
    assert in_registry(f"{b.registry.host}/counter-01:01") == counter["image_digest"]

    # Removed: gone from both registries and both stores.
    for dep in (c_a, c_b):
        setup.delete(f"/deployments/{dep['id']}")
    eventually(
        lambda: "counter-01" not in a.workloads() and "counter-01" not in b.workloads(),
        what="counter undeployed",
    )
    eventually(
        lambda: setup.delete(f"/ai-packages/{counter['id']}").status_code == 200,
        what="counter removed (once its deployments are seen gone)",
    )
    hexd = counter["package_digest"].split(":")[1]
    for site in (a, b):
        eventually(
            lambda site=site: (
                in_registry(f"{site.registry.host}/counter-01:01") is None
                and not (site.artifacts / "sha256" / hexd).exists()
            ),
            what=f"counter gone from {site.name}",
        )
    _ = c_a
