"""The whole platform as processes for issue 11's end-to-end tests: setup, the master, the VMS,
the optimizer and one edge agent per edge, each running the real YOLO worker (random yolov8n
weights) as an uploaded AI package. A small HTTP server plays each edge's camera: its snapshot URL
(``http://user:pass@.../frame.jpg``, basic auth checked) serves ultralytics' bundled images."""

from __future__ import annotations

import base64
import itertools
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from shared.agent_keys import agent_key, derived_secret
from tests.agent.helpers import Agent, kill_leftovers, wait_until
from tests.helpers.env import OPERATOR, SERVICE, SERVICE_TOKEN, free_port, service_env
from tests.helpers.processes import Proc, start_service
from tests.master.helpers import targz

CAMERA_USER, CAMERA_PASSWORD = "viewer", "cam-pass-5ecret"

YOLO_MANIFEST = """filename: yoloworker
version: "01"
ai_class: "10"
description: the YOLO worker with random weights
command: [python, -m, edge_ai.yolo]
env:
  YOLO_MODEL: yolov8n.yaml
  YOLO_IMGSZ: "160"
  YOLO_RATE: "2"
  YOLO_MIN_CONF: "0.00001"
  YOLO_MAX_DETECTIONS: "5"
  YOLO_MAX_UPLOADS_PER_SECOND: "1"
  YOLO_HELPED_MODE: pause
  YOLO_OFFLINE: "1"
  EDGE_BACKOFF_MIN: "0.2"
  EDGE_BACKOFF_MAX: "1"
resources: {cpu: 1, memory_mb: 512}
hot_handoff: true
"""


def bundled_images() -> list[Path]:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    return [assets / "bus.jpg", assets / "zidane.jpg"]


class Camera:
    """A camera's snapshot URL: each GET answers the next bundled image, with basic auth."""

    def __init__(self) -> None:
        images = [p.read_bytes() for p in bundled_images()]
        cycle = itertools.cycle(images)
        expected = "Basic " + base64.b64encode(f"{CAMERA_USER}:{CAMERA_PASSWORD}".encode()).decode()
        self.hits = 0
        self.hit_times: list[float] = []  # wall clock of each frame served
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                camera.hit_times.append(time.time())
                camera.hits += 1
                body = next(cycle)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{CAMERA_USER}:{CAMERA_PASSWORD}@127.0.0.1:{self.httpd.server_address[1]}/frame.jpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Platform:
    def __init__(self, db: str, tmp: Path):
        self.tmp = tmp
        ports = {name: free_port() for name in ("setup", "master", "vms", "optimizer")}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        common = dict(
            EDGE_SETUP_URL=self.urls["setup"],
            EDGE_MASTER_URL=self.urls["master"],
            EDGE_OPTIMIZER_URL=self.urls["optimizer"],
            EDGE_VMS_URL=self.urls["vms"],
        )
        self.procs: list[Proc] = []
        self.agents: dict[str, Agent] = {}
        self.cameras: dict[str, Camera] = {}
        self.procs.append(
            start_service("setup", env=service_env(db, **common), port=ports["setup"], tmp_path=tmp)
        )
        self.procs.append(
            start_service(
                "vms",
                port=ports["vms"],
                tmp_path=tmp,
                env=service_env(
                    db,
                    **common,
                    VMS_NOTIFY_OPTIMIZER="true",
                    VMS_GROUP_COMMIT_WINDOW_MS="2",
                    VMS_STALE_AFTER_S="600",
                    VMS_NODES_MISS_REFRESH_S="0",
                    VMS_HANDOFF_CACHE_S="1",
                    VMS_HANDOFF_MISS_CACHE_S="0.2",
                ),
            )
        )
        self.procs.append(
            start_service(
                "master",
                port=ports["master"],
                tmp_path=tmp,
                env=service_env(
                    db,
                    **common,
                    MASTER_ARTIFACT_DIR=str(tmp / "artifacts"),
                    MASTER_PACKAGE_DIR=str(tmp / "packages"),
                    MASTER_RECONCILE_SECONDS="5",
                    MASTER_VMS_PUBLIC_URL=self.urls["vms"],
                ),
            )
        )
        self.procs.append(
            start_service(
                "optimizer",
                port=ports["optimizer"],
                tmp_path=tmp,
                env=service_env(
                    db,
                    **common,
                    OPTIMIZER_RESYNC_SECONDS="3600",
                    OPTIMIZER_DEBOUNCE_MS="1",
                    OPTIMIZER_RECOVERY__ENABLED="false",
                    OPTIMIZER_VERSION__ENABLED="false",
                ),
            )
        )
        self.setup = httpx.Client(base_url=self.urls["setup"], headers=OPERATOR, timeout=60)
        self.master = httpx.Client(base_url=self.urls["master"], timeout=300)
        self.vms = httpx.Client(base_url=self.urls["vms"], headers=OPERATOR, timeout=30)
        self.optimizer = httpx.Client(base_url=self.urls["optimizer"], headers=OPERATOR, timeout=60)
        self.cluster = self.setup.post("/clusters", json={"name": "lan", "runtime": "agent"}).json()
        self.frames = tmp / "frames"
        self.frames.mkdir()
        for image in bundled_images():
            shutil.copy(image, self.frames / image.name)
        self.edges: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}

    # -- the fleet -------------------------------------------------------------------------------

    def add_edge(self, name: str, nid: str, lat: float, lon: float) -> dict[str, Any]:
        port = free_port()
        camera = self.cameras[nid] = Camera()
        r = self.setup.post(
            "/edges",
            json={
                "name": name,
                "nid": nid,
                "cluster_id": self.cluster["id"],
                "isSupportAnnalysis": "YES",
                "agent_url": f"http://127.0.0.1:{port}",
                "gps": {"latitude": lat, "longitude": lon},
                "url": camera.url,
            },
        )
        assert r.status_code == 201, r.text
        edge = self.edges[nid] = r.json()
        self.tokens[nid] = edge["token"]
        key = agent_key(
            derived_secret(SERVICE_TOKEN), nid
        )  # what the master presents to this agent
        agent = Agent(
            self.tmp,
            self.urls["master"],
            node=name,
            port=port,
            workdir=self.tmp / f"agent-{nid}",
            extra_env={"AGENT_EDGE_TOKEN": edge["token"], "AGENT_KEY": key},
        )
        agent.client.headers["Authorization"] = f"Bearer {key}"
        self.agents[nid] = agent.start()
        return edge

    def upload_yolo(self) -> dict[str, Any]:
        files: dict[str, str | bytes] = {
            "aipackage.yaml": YOLO_MANIFEST,
            "README.txt": "the program is edge_ai.yolo",
        }
        r = self.master.post(
            "/ai-packages?filename=yoloworker&version=01&ai_class=10",
            content=targz(files),
            headers={**OPERATOR, "Content-Type": "application/gzip"},
        )
        assert r.status_code == 202, r.text
        ai = self.master.post(
            f"/ai-packages/{r.json()['ai']['id']}/build?wait=true", headers=SERVICE
        ).json()["ai"]
        assert ai["status"] == "ready", ai
        return ai

    def deploy(self, nid: str, ai: dict[str, Any]) -> dict[str, Any]:
        r = self.setup.post(
            "/deployments",
            json={
                "edge_id": self.edges[nid]["id"],
                "ai_id": ai["id"],
                "params": {"YOLO_SOURCE": str(self.frames)},
            },
        )
        assert r.status_code == 201, r.text
        return r.json()

    # -- looks -----------------------------------------------------------------------------------

    def workloads(self, nid: str) -> list[dict[str, Any]]:
        return self.agents[nid].client.get("/workloads").json()["workloads"]

    def workload(self, nid: str, name: str = "yoloworker-10") -> dict[str, Any]:
        """The workload as the edge's agent reports it; {} while there is none."""
        return next((w for w in self.workloads(nid) if w["name"] == name), {})

    def running(self, nid: str, name: str = "yoloworker-10") -> dict[str, Any]:
        """The workload once it runs; {} before."""
        w = self.workload(nid, name)
        return w if w.get("state") == "running" else {}

    def logs(self, nid: str, name: str) -> str:
        r = self.agents[nid].client.get(f"/workloads/{name}/logs", params={"tail": 2000})
        return "\n".join(r.json()["lines"]) if r.status_code == 200 else ""

    def decisions(self, **params: Any) -> list[dict[str, Any]]:
        r = self.optimizer.get("/decisions", params={"limit": 200, **params})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def cycle(self) -> dict[str, Any]:
        r = self.optimizer.post("/cycle")
        assert r.status_code == 200, r.text
        return r.json()

    def policy(self, name: str, **values: Any) -> None:
        r = self.optimizer.patch(f"/policies/{name}", json=values)
        assert r.status_code == 200, r.text

    def post_usage(self, nid: str, cpu: float, memory: float, samples: int) -> None:
        """The edge's load as its monitoring AI would report it (a simulated load)."""
        now = time.time()
        records = [
            {
                "kind": "usage",
                "data": {
                    "code": "0000",
                    "message": "success",
                    "username": self.edges[nid]["name"],
                    "cpu": cpu,
                    "memory": memory,
                    "func": "SUNNY",
                    "nid": nid,
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - samples + i))
                    + ".000Z",
                },
            }
            for i in range(samples)
        ]
        r = httpx.post(
            f"{self.urls['vms']}/batch",
            json={"records": records},
            headers={"Authorization": f"Bearer {self.tokens[nid]}"},
            timeout=30,
        )
        assert r.status_code == 200 and not r.json().get("rejected"), r.text

    def post_detection(
        self,
        nid: str,
        counts: dict[str, int],
        *,
        token_of: str | None = None,
        analysed_by: str | None = None,
        expect: int | None = 200,
    ) -> httpx.Response:
        """A summary that saw ``counts`` (random weights see nothing above the threshold); posted
        with ``token_of``'s token (default the node's own), marked ``analysed_by``."""
        record: dict[str, Any] = {
            "nid": nid,
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z",
            "model": "yolov8n",
            "model_version": "01",
            "fps": 2,
            "frames": 2,
            "conf_threshold": 0.5,
            "counts": counts,
            "detections": [],
            "below_threshold": 0,
            "frames_sent_up": 0,
        }
        if analysed_by:
            record["analysed_by"] = analysed_by
        r = httpx.post(
            f"{self.urls['vms']}/detections",
            json=record,
            headers={"Authorization": f"Bearer {self.tokens[token_of or nid]}"},
            timeout=30,
        )
        assert expect is None or r.status_code == expect, r.text
        return r

    def summaries(self, nid: str, limit: int = 200) -> list[dict[str, Any]]:
        r = self.vms.get("/detections", params={"nid": nid, "limit": limit})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()
            kill_leftovers(agent.workdir)
        for camera in self.cameras.values():
            camera.close()
        for client in (self.setup, self.master, self.vms, self.optimizer):
            client.close()
        for proc in reversed(self.procs):
            proc.stop()


__all__ = ["Platform", "wait_until"]
