"""The optimizer with the real setup and VMS services (processes) on the test database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.optimizer.app import create_app
from tests.conftest import running_app
from tests.helpers.env import OPERATOR, SERVICE, free_port, service_env, settings_for
from tests.helpers.processes import start_service


@dataclass
class Stack:
    """setup and the VMS as real processes; the optimizer's URL is reserved for a process test."""

    db: str
    setup_url: str
    vms_url: str
    optimizer_port: int
    setup: httpx.Client = field(init=False)
    tokens: dict[str, str] = field(default_factory=dict)  # nid -> edge token
    cluster_id: int | None = None
    _env_clock: dict[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.setup = httpx.Client(base_url=self.setup_url, headers=SERVICE, timeout=30)

    # -- setup: registry and desired state ------------------------------------------------------

    def cluster(self, name: str = "c1") -> int:
        r = self.setup.post("/clusters", json={"name": name}, headers=OPERATOR)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def edge(
        self,
        name: str,
        nid: str,
        *,
        lat: float = 37.57,
        lon: float = 126.98,
        cluster_id: int | None = None,
        analysis: bool = True,
    ) -> dict[str, Any]:
        if cluster_id is None:
            if self.cluster_id is None:
                self.cluster_id = self.cluster()
            cluster_id = self.cluster_id
        r = self.setup.post(
            "/edges",
            headers=OPERATOR,
            json={
                "name": name,
                "type": 1,
                "gps": {"latitude": str(lat), "longitude": str(lon)},
                "address": "test",
                "ip": "127.0.0.1",
                "isSupportAnnalysis": "YES" if analysis else "NO",
                "url": "rtsp://user:pass@127.0.0.1/stream",
                "description": "optimizer test edge",
                "nid": nid,
                "cluster_id": cluster_id,
            },
        )
        assert r.status_code == 201, r.text
        edge = r.json()
        self.tokens[nid] = edge["token"]
        return edge

    def package(
        self, filename: str, version: str, ai_class: str, *, ready: bool = True
    ) -> dict[str, Any]:
        r = self.setup.post(
            "/ai-packages",
            headers=OPERATOR,
            json={"filename": filename, "version": version, "ai_class": ai_class},
        )
        assert r.status_code == 201, r.text
        pkg = r.json()
        if ready:
            r = self.setup.patch(f"/ai-packages/{pkg['id']}", json={"status": "ready"})
            assert r.status_code == 200, r.text
            pkg = r.json()
        return pkg

    def deploy(self, edge: dict, pkg: dict, params: dict | None = None) -> dict[str, Any]:
        r = self.setup.post(
            "/deployments",
            headers=OPERATOR,
            json={"edge_id": edge["id"], "ai_id": pkg["id"], "params": params or {}},
        )
        assert r.status_code == 201, r.text
        return r.json()

    def deployment(self, deployment_id: int) -> dict[str, Any]:
        r = self.setup.get(f"/deployments/{deployment_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def running_on(self, edge: dict) -> list[dict[str, Any]]:
        r = self.setup.get("/deployments", params={"edge_id": edge["id"], "desired": "running"})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def observe(
        self,
        deployment: dict | int,
        observed: str = "running",
        *,
        restarts: int = 0,
        reason: str | None = None,
    ) -> None:
        """What the master would report: the deployment's current generation is (not) running."""
        d = self.deployment(deployment if isinstance(deployment, int) else deployment["id"])
        r = self.setup.post(
            "/deployments/observed",
            json={
                "reports": [
                    {
                        "id": d["id"],
                        "observed": observed,
                        "reason": reason,
                        "generation": d["generation"],
                        "restarts": restarts,
                    }
                ]
            },
        )
        assert r.status_code == 200, r.text

    def edge_row(self, edge: dict) -> dict[str, Any]:
        return self.setup.get(f"/edges/{edge['id']}").json()

    # -- the VMS: what edges report -------------------------------------------------------------

    def _vms(self, nid: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.vms_url,
            headers={"Authorization": f"Bearer {self.tokens[nid]}"},
            timeout=30,
        )

    def conditions(self, nid: str, code: str, samples: int) -> None:
        """``samples`` environment results, one a second after the previous ones (the VMS
        ignores older)."""
        records = []
        for _ in range(samples):
            ts = self._env_clock[nid] = self._env_clock.get(
                nid, datetime.now(UTC) - timedelta(seconds=200)
            ) + timedelta(seconds=1)
            records.append(
                {
                    "kind": "environment",
                    "data": {
                        "nid": nid,
                        "date": ts.strftime("%Y%m%d"),
                        "time": ts.strftime("%H%M%S"),
                        "result": code,
                    },
                }
            )
        with self._vms(nid) as c:
            r = c.post("/batch", json={"records": records})
            assert r.status_code == 200 and not r.json().get("rejected"), r.text

    def usage(self, nid: str, cpu: float, memory: float, samples: int = 1) -> None:
        now = datetime.now(UTC)
        records = [
            {
                "kind": "usage",
                "data": {
                    "nid": nid,
                    "cpu": cpu,
                    "memory": memory,
                    "func": "SUNNY",
                    "ts": (now - timedelta(seconds=samples - i)).isoformat(),
                },
            }
            for i in range(samples)
        ]
        with self._vms(nid) as c:
            r = c.post("/batch", json={"records": records})
            assert r.status_code == 200 and not r.json().get("rejected"), r.text

    def detections(
        self,
        nid: str,
        *,
        detected: int = 10,
        below: int = 0,
        frames: int = 10,
        sent_up: int = 0,
        counts: dict[str, int] | None = None,
        seconds: int = 1,
    ) -> None:
        now = datetime.now(UTC)
        records = [
            {
                "kind": "detections",
                "data": {
                    "nid": nid,
                    "ts": (now - timedelta(seconds=seconds - i)).isoformat(),
                    "model": "yolov8n",
                    "model_version": "01",
                    "fps": 10,
                    "frames": frames,
                    "conf_threshold": 0.5,
                    "counts": counts or {"car": detected},
                    "detections": [{"class": "car", "confidence": 0.9, "box": [0, 0, 1, 1]}]
                    * detected,
                    "below_threshold": below,
                    "frames_sent_up": sent_up,
                },
            }
            for i in range(seconds)
        ]
        with self._vms(nid) as c:
            r = c.post("/batch", json={"records": records})
            assert r.status_code == 200 and not r.json().get("rejected"), r.text

    def close(self) -> None:
        self.setup.close()


@pytest.fixture
def stack(db: str, tmp_path) -> Iterator[Stack]:
    setup_port, vms_port, optimizer_port = free_port(), free_port(), free_port()
    setup_env = service_env(db, SETUP_NOTIFY_MASTER="false", EDGE_MIGRATE_ON_START="false")
    vms_env = service_env(
        db,
        EDGE_MIGRATE_ON_START="false",
        EDGE_SETUP_URL=f"http://127.0.0.1:{setup_port}",
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{optimizer_port}",
        VMS_NOTIFY_OPTIMIZER="true",
        VMS_NODES_MISS_REFRESH_S="0",
        VMS_GROUP_COMMIT_WINDOW_MS="1",
        VMS_STALE_AFTER_S="600",
        VMS_EVENT_CLASSES="person",
    )
    with ThreadPoolExecutor(2) as pool:
        f_setup = pool.submit(
            start_service, "setup", env=setup_env, port=setup_port, tmp_path=tmp_path
        )
        f_vms = pool.submit(start_service, "vms", env=vms_env, port=vms_port, tmp_path=tmp_path)
        procs = []
        for f in (f_setup, f_vms):
            with contextlib.suppress(Exception):
                procs.append(f.result())
    try:
        if len(procs) != 2:
            f_setup.result(), f_vms.result()  # raise the start failure
        s = Stack(
            db, f"http://127.0.0.1:{setup_port}", f"http://127.0.0.1:{vms_port}", optimizer_port
        )
        yield s
        s.close()
    finally:
        for p in procs:
            p.stop()


@contextlib.asynccontextmanager
async def optimizer(stack: Stack, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    """The optimizer in-process; cycles are driven by POST /cycle (no scheduler) unless asked."""
    overrides.setdefault("run_scheduler", False)
    app = create_app(
        settings_for(
            "optimizer", stack.db, setup_url=stack.setup_url, vms_url=stack.vms_url, **overrides
        )
    )
    async with running_app(app) as client:
        client.headers.update(OPERATOR)
        client.app = app  # type: ignore[attr-defined]
        yield client


async def cycle(client: httpx.AsyncClient, **body) -> dict[str, Any]:
    r = await client.post("/cycle", json=body or None)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert not summary.get("rejected"), summary
    return summary


async def decisions(client: httpx.AsyncClient, **params) -> list[dict[str, Any]]:
    r = await client.get("/decisions", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]
