"""Reconcile passes against setup (a real process), driven with POST /reconcile?wait=true: what is
reported for deployments that cannot run, and the optimizer's events."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from services.master.app import create_app
from tests.conftest import running_app
from tests.helpers.env import OPERATOR, SERVICE, free_port, settings_for
from tests.master.helpers import package_files, targz


class EventSink:
    """Stands where the optimizer listens: records the events POSTed to /events."""

    def __init__(self):
        self.events: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.events.append(
                    {
                        "path": self.path,
                        "auth": self.headers.get("Authorization"),
                        **json.loads(body),
                    }
                )
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sink():
    s = EventSink()
    yield s
    s.close()


@pytest.fixture
async def master(db, setup_service, tmp_path, sink):
    settings = settings_for(
        "master",
        db,
        setup_url=setup_service,
        optimizer_url=sink.url,
        artifact_dir=tmp_path / "artifacts",
        package_dir=tmp_path / "packages",
        reconcile_on_start=False,
        reconcile_seconds=3600,
    )
    async with running_app(create_app(settings)) as client:
        client.setup = httpx.AsyncClient(base_url=setup_service, headers=OPERATOR)  # type: ignore[attr-defined]
        yield client
        await client.setup.aclose()  # type: ignore[attr-defined]


async def edge(
    master,
    runtime: str,
    *,
    agent_url: str | None = None,
    name: str = "EdgeCCTV01",
    nid: str = "0x01",
) -> dict:
    cluster = (
        await master.setup.post("/clusters", json={"name": f"c-{name}", "runtime": runtime})
    ).json()
    r = await master.setup.post(
        "/edges",
        json={"name": name, "nid": nid, "cluster_id": cluster["id"], "agent_url": agent_url},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def until(check, timeout: float = 10):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := check()):
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)
    return value


async def reconcile(master) -> dict:
    r = await master.post("/reconcile?wait=true", headers=SERVICE)
    assert r.status_code == 200, r.text
    return r.json()


async def deployment(master, dep_id: int) -> dict:
    return (await master.setup.get(f"/deployments/{dep_id}")).json()


async def test_deployment_waits_for_its_ai_then_fails_with_it_and_the_optimizer_hears(master, sink):
    e = await edge(master, "agent", agent_url=f"http://127.0.0.1:{free_port()}")
    ai = (
        await master.setup.post(
            "/ai-packages", json={"filename": "ghost", "version": "01", "ai_class": "01"}
        )
    ).json()
    dep = (
        await master.setup.post("/deployments", json={"edge_id": e["id"], "ai_id": ai["id"]})
    ).json()

    await reconcile(master)
    d = await deployment(master, dep["id"])
    assert d["observed"] == "pending" and "is uploaded" in (d["observed_reason"] or ""), d

    # No package anywhere: the build fails and says so; the deployment fails with it.
    r = await master.post(f"/ai-packages/{ai['id']}/build?wait=true", headers=SERVICE)
    assert r.json()["ai"]["status"] == "failed" and "no package" in r.json()["ai"]["failure_reason"]
    await reconcile(master)
    d = await deployment(master, dep["id"])
    assert d["observed"] == "failed" and "failed to build" in d["observed_reason"], d
    # Sent in the background (the outbox): the event arrives just after the pass.
    failed = await until(lambda: [ev for ev in sink.events if ev["type"] == "deployment_failed"])
    assert failed[0]["deployment_id"] == dep["id"] and failed[0]["edge_id"] == e["id"]
    assert failed[0]["auth"].startswith("Bearer ") and failed[0]["path"] == "/events"
    # Reported once: the next pass finds setup already saying so.
    summary = await reconcile(master)
    assert (
        summary["reported"] == 0
        and len([ev for ev in sink.events if ev["type"] == "deployment_failed"]) == 1
    )


async def test_events_for_the_optimizer_are_counted_and_drained_when_the_master_stops(
    db, setup_service, tmp_path, sink
):
    """The optimizer's events leave through a tracked outbox: counted on /metrics, and what is
    queued when the master stops still goes out."""
    settings = settings_for(
        "master",
        db,
        setup_url=setup_service,
        optimizer_url=sink.url,
        artifact_dir=tmp_path / "artifacts",
        package_dir=tmp_path / "packages",
        reconcile_on_start=False,
        reconcile_seconds=3600,
    )
    app = create_app(settings)
    async with running_app(app) as client:
        r = await client.post("/ai-packages", content=targz(package_files()), headers=OPERATOR)
        ai_id = r.json()["ai"]["id"]
        await client.post(f"/ai-packages/{ai_id}/build?wait=true", headers=SERVICE)
        # the master stops at once, the event just queued
    assert [ev["ai_id"] for ev in sink.events if ev["type"] == "ai_ready"] == [ai_id]
    sent = app.state.metrics_registry.get_sample_value(
        "master_outbox_deliveries_total",
        {"target": "optimizer", "kind": "ai_ready", "outcome": "sent"},
    )
    assert sent == 1


async def test_unreachable_agent_and_unconfigured_runtime_are_reported_with_reasons(master, sink):
    r = await master.post("/ai-packages", content=targz(package_files()), headers=OPERATOR)
    ai_id = r.json()["ai"]["id"]
    built = (await master.post(f"/ai-packages/{ai_id}/build?wait=true", headers=SERVICE)).json()[
        "ai"
    ]
    assert built["status"] == "ready"
    await until(lambda: any(ev == {**ev, "type": "ai_ready", "ai_id": ai_id} for ev in sink.events))

    down = await edge(
        master, "agent", agent_url=f"http://127.0.0.1:{free_port()}", name="down", nid="0x02"
    )
    docker = await edge(master, "docker", name="dock", nid="0x03")
    d1 = (
        await master.setup.post("/deployments", json={"edge_id": down["id"], "ai_id": ai_id})
    ).json()
    d2 = (
        await master.setup.post(
            "/deployments",
            json={"edge_id": docker["id"], "ai_id": ai_id, "params": {"bad-name": 1}},
        )
    ).json()
    summary = await reconcile(master)
    assert summary["state"] == "ok"
    a = await deployment(master, d1["id"])
    assert a["observed"] == "pending" and "edge unreachable" in a["observed_reason"], a
    assert summary["edges"][str(down["id"])]["reachable"] is False
    b = await deployment(master, d2["id"])
    assert b["observed"] == "failed" and "params.bad-name" in b["observed_reason"], b

    d3 = (await master.setup.patch(f"/deployments/{d2['id']}", json={"params": {"GOOD": 1}})).json()
    await reconcile(master)
    b = await deployment(master, d3["id"])
    assert b["observed"] == "pending" and "MASTER_DOCKER_HOST" in b["observed_reason"], b

    status = (await master.get("/status", headers=OPERATOR)).json()
    assert status["reconcile"]["passes"] == 2 and status["registry"] is None


async def test_reconcile_needs_a_token_and_setup_down_is_a_failed_pass_not_a_crash(
    master, db, tmp_path
):
    assert (await master.post("/reconcile")).status_code == 401
    assert (await master.post("/reconcile", headers=SERVICE)).status_code == 202
    settings = settings_for(
        "master",
        db,
        setup_url=f"http://127.0.0.1:{free_port()}",
        artifact_dir=tmp_path / "a2",
        package_dir=tmp_path / "p2",
        reconcile_on_start=False,
        notify_optimizer=False,
    )
    async with running_app(create_app(settings)) as lonely:
        summary = (await lonely.post("/reconcile?wait=true", headers=SERVICE)).json()
        assert summary["state"] == "error" and "setup unreachable" in summary["error"]
        assert (await lonely.get("/healthz")).status_code == 200
        summary = (await lonely.post("/reconcile?wait=true", headers=SERVICE)).json()
        assert summary["pass"] == 2


class DriftedSetup:
    """Answers GET /fleet/snapshot as a setup whose snapshot no longer matches the contract (and
    GET /clusters, read first, with one cluster)."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                drifted = {
                    "edges": [{"id": "one", "name": "EdgeCCTV01"}],
                    "ai_packages": [],
                    "deployments": [],
                }
                clusters = {"items": [{"id": 1, "name": "lab"}]}
                body = json.dumps(clusters if self.path.startswith("/clusters") else drifted)
                body = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_a_snapshot_that_drifted_from_its_contract_stops_the_pass_naming_it(db, tmp_path):
    drifted = DriftedSetup()
    settings = settings_for(
        "master",
        db,
        setup_url=drifted.url,
        artifact_dir=tmp_path / "a",
        package_dir=tmp_path / "p",
        reconcile_on_start=False,
        notify_optimizer=False,
    )
    try:
        async with running_app(create_app(settings)) as lonely:
            summary = (await lonely.post("/reconcile?wait=true", headers=SERVICE)).json()
    finally:
        drifted.close()
    assert summary["state"] == "error", summary
    assert "does not match its contract" in summary["error"] and "edges" in summary["error"]


async def test_a_build_left_half_way_is_finished_by_the_next_pass(master, tmp_path):
    """A master killed mid-build leaves the AI "uploaded"/"building" in setup: the pass restarts
    it."""
    from tests.master.helpers import write_folder

    write_folder(
        tmp_path / "packages" / "weatherai", package_files("weatherai", "01", "00", condition=None)
    )
    ai = (
        await master.setup.post(
            "/ai-packages", json={"filename": "weatherai", "version": "01", "ai_class": "00"}
        )
    ).json()
    await master.setup.patch(f"/ai-packages/{ai['id']}", json={"status": "building"})
    await reconcile(master)
    r = await master.post(
        f"/ai-packages/{ai['id']}/build?wait=true", headers=SERVICE
    )  # joins the running build
    assert r.json()["ai"]["status"] == "ready"
    got = (await master.get(f"/ai-packages/{ai['id']}", headers=OPERATOR)).json()
    assert got["build"]["attempts"] == 1  # one build, not two


async def test_deployments_applied_and_removed_through_the_master_are_recorded_in_setup(master):
    r = await master.post("/ai-packages", content=targz(package_files()), headers=OPERATOR)
    ai_id = r.json()["ai"]["id"]
    await master.post(f"/ai-packages/{ai_id}/build?wait=true", headers=SERVICE)
    e = await edge(master, "agent", agent_url=f"http://127.0.0.1:{free_port()}")
    r = await master.post(
        "/deployments",
        json={"edge_id": e["id"], "ai_id": ai_id, "params": {"X": "1"}},
        headers=OPERATOR,
    )
    assert r.status_code == 201, r.text
    dep = r.json()
    assert (await deployment(master, dep["id"]))["desired"] == "running"
    r = await master.post("/deployments", json={"ai_id": ai_id}, headers=OPERATOR)
    assert r.status_code == 422 and "edge_id" in r.json()["error"]["message"]
    r = await master.post("/deployments", json={"edge_id": e["id"], "ai_id": 999}, headers=OPERATOR)
    assert r.status_code == 404
    assert (
        await master.post("/deployments", json={"edge_id": e["id"], "ai_id": ai_id})
    ).status_code == 401
    r = await master.delete(f"/deployments/{dep['id']}", headers=OPERATOR)
    assert r.status_code == 200 and r.json()["desired"] == "removed"
    # One write path: setup, having recorded each change, asks for the pass (here it does not:
    # SETUP_NOTIFY_MASTER=false); the master's pass-through starts none of its own.
    await asyncio.sleep(0.5)
    status = (await master.get("/status", headers=OPERATOR)).json()
    assert status["reconcile"]["passes"] == 0, status["reconcile"]
    # The edge is unreachable: the removal is not confirmed until its agent says the workload is
    # gone.
    await reconcile(master)
    assert (await deployment(master, dep["id"]))["observed"] != "removed"
