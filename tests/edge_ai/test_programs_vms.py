"""Each edge program as a real process against a real VMS process on the real Postgres.

The programs authenticate with edge tokens signed the way setup issues them; the VMS accepts
node ids it cannot look up (setup is not running here) and flags them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from edge_ai.weather.app import scheduled_code
from shared.edge_tokens import issue_edge_token
from tests.edge_ai.recorder import Recorder
from tests.helpers.env import OPERATOR, SIGNER, free_port, service_env
from tests.helpers.processes import (
    REPO,
    Proc,
    edge_program,
    edgectl,
    start_service,
    wait_http,
)

# Refuses every connection and name lookup that is not loopback, and says so on stderr: the
# YOLO worker must run with no network at all (no weights, fonts or telemetry fetched).
NO_NETWORK = """
import socket, sys
_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo
LOOPBACK = ("127.", "::1", "localhost")
def _host(address):
    return address[0] if isinstance(address, tuple) else str(address)
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _host(address).startswith(LOOPBACK):
        print(f"NETWORK ATTEMPT connect {address}", file=sys.stderr, flush=True)
        raise OSError("network disabled in this test")
    return _connect(self, address)
def getaddrinfo(host, *args, **kwargs):
    if host is not None and not str(host).startswith(LOOPBACK):
        print(f"NETWORK ATTEMPT lookup {host}", file=sys.stderr, flush=True)
        raise socket.gaierror("network disabled in this test")
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
"""

# As a fresh install without the edge extra: torch and ultralytics cannot be imported.
NO_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "ultralytics"):
            print(f"TORCH IMPORT {name}", file=sys.stderr, flush=True)
            raise ImportError(f"{name}: not installed in this test")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


async def rows(db: str, sql: str, *args):
    conn = await asyncpg.connect(db.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def wait_rows(
    db: str, sql: str, *args, count: int, proc: Proc | None = None, timeout: float = 90
):
    deadline = time.monotonic() + timeout
    while True:
        found = await rows(db, sql, *args)
        if len(found) >= count:
            return found
        if proc is not None and not proc.alive():
            raise AssertionError(
                f"program exited with {proc.popen.returncode}:\n{proc.log_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            tail = proc.log_text()[-3000:] if proc else ""
            raise AssertionError(f"{len(found)} of {count} rows after {timeout}s\n{tail}")
        import asyncio

        await asyncio.sleep(0.3)


def start_vms(db: str, tmp_path: Path, port: int) -> Proc:
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = service_env(
        db,
        VMS_UNKNOWN_NODES="flag",
        EDGE_SETUP_URL=nowhere,
        EDGE_OPTIMIZER_URL=nowhere,
        VMS_GROUP_COMMIT_WINDOW_MS="2",
    )
    return start_service("vms", env=env, port=port, tmp_path=tmp_path)


@pytest.fixture
def vms(db, tmp_path):
    port = free_port()
    proc = start_vms(db, tmp_path, port)
    holder = {"proc": proc, "port": port}
    yield holder
    holder["proc"].stop()


def edge_setup(
    tmp_path: Path, vms_port: int, nid: str, name: str, **env: str
) -> tuple[Path, dict[str, str]]:
    config = tmp_path / f"edgeconfig-{name}.xml"
    config.write_text(
        f"<Configuration><vms><IP>127.0.0.1</IP><Port>{vms_port}</Port><Path>usage</Path></vms>"
        f"<node><NID>{nid}</NID><Name>{name}</Name>"
        f"<Token>{issue_edge_token(nid, SIGNER)}</Token></node></Configuration>"
    )
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        # the host's zone differs from the field's: programs must still agree with the VMS
        "TZ": "UTC",
        "EDGE_BUFFER_DIR": str(tmp_path / f"buffer-{name}"),
        "EDGE_BACKOFF_MIN": "0.2",
        "EDGE_BACKOFF_MAX": "1",
        "EDGE_LOG_LEVEL": "INFO",
    }
    base.update(env)
    return config, base


def epoch(ts: datetime) -> float:
    return ts.replace(tzinfo=UTC).timestamp() if ts.tzinfo is None else ts.timestamp()


async def test_weather_results_flip_on_schedule(db, vms, tmp_path):
    config, env = edge_setup(tmp_path, vms["port"], "0x31", "edge-31")
    proc = Proc(
        edgectl("edge", "weather", "--config", str(config), "--sequence", "0,2", "--period", "2"),
        env=env,
        log_path=tmp_path / "weather.log",
    )
    try:
        found = await wait_rows(
            db,
            "SELECT ts, result, authenticated, known FROM "
            "vms.environment WHERE nid = $1 ORDER BY ts",
            "0x31",
            count=7,
            proc=proc,
        )
    finally:
        assert proc.stop() == 0, proc.log_text()
    results = [r["result"] for r in found]
    assert set(results) == {"0", "2"}
    for r in found:
        # The code posted for a second is the schedule's code for that second.
        assert r["result"] == scheduled_code(["0", "2"], 2, epoch(r["ts"])), found
        assert r["authenticated"] is True
    # Stamped at the time it was sent (the program writes the zone the VMS assumes, not the host's).
    assert all(abs(epoch(r["ts"]) - time.time()) < 120 for r in found), found
    # One record a second, each second once.
    seconds = [int(epoch(r["ts"])) for r in found]
    assert len(seconds) == len(set(seconds))


async def test_monitoring_posts_usage_with_its_variant(db, vms, tmp_path):
    config, env = edge_setup(tmp_path, vms["port"], "0x32", "edge-32", MONITORING_VARIANT="RAINY")
    proc = Proc(
        edge_program("edge_ai.monitoring", "--config", str(config)),
        env=env,
        log_path=tmp_path / "monitoring.log",
    )
    try:
        found = await wait_rows(
            db, "SELECT * FROM vms.usage WHERE nid = $1 ORDER BY ts", "0x32", count=3, proc=proc
        )
    finally:
        assert proc.stop() == 0, proc.log_text()
    for r in found:
        assert r["func"] == "RAINY" and r["username"] == "edge-32" and r["code"] == "0000"
        assert 0 <= r["cpu"] <= 100 * os.cpu_count() and 0 < r["memory"] <= 100
        assert r["authenticated"] is True
    # ts is the sample's own time (our extension), one a second.
    assert len({int(epoch(r["ts"])) for r in found}) == len(found)


async def test_monitoring_reports_a_simulated_load_profile(db, vms, tmp_path):
    """The demo's scripted load: the profile's values, not the box's, marked in the log."""
    config, env = edge_setup(
        tmp_path,
        vms["port"],
        "0x35",
        "edge-35",
        MONITORING_VARIANT="SUNNY",
        MONITORING_LOAD_PROFILE="0:77.5:33,100000:1:1",
        MONITORING_LOAD_PERIOD_S="200000",
    )
    proc = Proc(
        edge_program("edge_ai.monitoring", "--config", str(config)),
        env=env,
        log_path=tmp_path / "monitoring.log",
    )
    phase = time.time() % 200000
    try:
        found = await wait_rows(
            db, "SELECT * FROM vms.usage WHERE nid = $1 ORDER BY ts", "0x35", count=2, proc=proc
        )
    finally:
        assert proc.stop() == 0, proc.log_text()
    expected = (77.5, 33.0) if phase < 99990 else (1.0, 1.0)
    assert {(r["cpu"], r["memory"]) for r in found} == {expected}
    assert "SIMULATED load" in proc.log_text()
    bad = Proc(
        edge_program("edge_ai.monitoring", "--config", str(config)),
        env={**env, "MONITORING_LOAD_PROFILE": "0:120:3"},
        log_path=tmp_path / "bad.log",
    )
    assert bad.popen.wait(timeout=60) == 2
    assert "--load-profile" in bad.log_text()


def _node_detections(vms_port: int, nid: str) -> dict:
    r = httpx.get(f"http://127.0.0.1:{vms_port}/nodes/state", headers=OPERATOR, timeout=5)
    node = next((n for n in r.json()["items"] if n["nid"] == nid), None)
    return (node or {}).get("detections") or {}


async def test_yolo_worker_reports_a_dead_camera_and_refused_uploads(db, vms, tmp_path):
    """What keeps failing on the edge reaches the VMS's node state, where the optimizer reads it
    to fall back: a camera URL that does not answer (source_unavailable) and an analysis service
    that throttles every upload (analysis_unavailable, the 429 named)."""
    import ultralytics

    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(Path(ultralytics.__file__).parent / "assets" / "bus.jpg", frames / "bus.jpg")
    throttled = Recorder(free_port()).start()
    throttled.mode = "429"
    dead_camera = f"http://viewer:cam-pw-77@127.0.0.1:{free_port()}/frame.jpg"
    procs = {}
    for nid, source, extra in (
        ("0x36", dead_camera, {}),
        (
            "0x37",
            str(frames),
            {
                "EDGE_ANALYSIS_URL": f"{throttled.url}/analysis",
                "EDGE_ROUTE_LOW_CONFIDENCE": "true",
            },
        ),
    ):
        config, env = edge_setup(
            tmp_path,
            vms["port"],
            nid,
            f"edge-{nid}",
            YOLO_OFFLINE="1",
            YOLO_FAILURE_REPORT_S="1",
            **extra,
        )
        procs[nid] = Proc(
            edgectl(
                "edge",
                "yolo",
                "--config",
                str(config),
                "--source",
                source,
                "--model",
                "yolov8n.yaml",
                "--imgsz",
                "160",
                "--min-conf",
                "0.00001",
                "--max-detections",
                "5",
            ),
            env=env,
            log_path=tmp_path / f"yolo-{nid}.log",
        )
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            camera = _node_detections(vms["port"], "0x36")
            uploads = _node_detections(vms["port"], "0x37")
            if camera.get("source_unavailable") and uploads.get("analysis_unavailable"):
                break
            for proc in procs.values():
                assert proc.alive(), proc.log_text()[-3000:]
            time.sleep(0.5)
        else:
            raise AssertionError(f"not reported: {camera} {uploads}")
    finally:
        for proc in procs.values():
            assert proc.stop() == 0, proc.log_text()
        throttled.stop()
    assert "snapshot http://***:***@127.0.0.1" in camera["source_unavailable"]
    assert "cam-pw-77" not in json.dumps(camera) and "cam-pw-77" not in procs["0x36"].log_text()
    assert uploads["analysis_unavailable"].startswith("HTTP 429")
    assert "source_unavailable" not in uploads


async def test_yolo_worker_posts_summaries_and_routes_low_confidence_frames(db, vms, tmp_path):
    import ultralytics

    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(Path(ultralytics.__file__).parent / "assets" / name, frames / name)
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NO_NETWORK + NO_TORCH)
    analysis = Recorder(free_port()).start()
    api_port = free_port()
    config, env = edge_setup(
        tmp_path,
        vms["port"],
        "0x33",
        "edge-33",
        PYTHONPATH=f"{guard}:{REPO}",
        YOLO_OFFLINE="1",
        EDGE_ANALYSIS_URL=f"{analysis.url}/analysis",
        EDGE_ROUTE_LOW_CONFIDENCE="true",
        EDGE_API_PORT=str(api_port),
    )
    # The default model: the demo ONNX model (random weights) on onnxruntime, without torch; it
    # scores some boxes between --min-conf and --conf, so the routing path runs.
    proc = Proc(
        edgectl(
            "edge",
            "yolo",
            "--config",
            str(config),
            "--source",
            str(frames),
            "--rate",
            "2",
            "--max-detections",
            "5",
        ),
        env=env,
        log_path=tmp_path / "yolo.log",
    )
    try:
        found = await wait_rows(
            db,
            "SELECT * FROM vms.detections WHERE nid = $1 AND frames > 0 ORDER BY id",
            "0x33",
            count=3,
            proc=proc,
            timeout=150,
        )
        wait_http(f"http://127.0.0.1:{api_port}/healthz", proc=proc)
        status = httpx.get(f"http://127.0.0.1:{api_port}/status", timeout=5).json()
        # The optimizer (later) turns routing off through the local API.
        r = httpx.put(
            f"http://127.0.0.1:{api_port}/routing", json={"route_low_confidence": False}, timeout=5
        )
        assert r.status_code == 200 and r.json()["active"] is False
        bad = httpx.put(
            f"http://127.0.0.1:{api_port}/routing", json={"route_low_confidence": "yes"}, timeout=5
        )
        assert bad.status_code == 400 and bad.json()["field"] == "route_low_confidence"
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{vms['port']}", headers=OPERATOR
        ) as client:
            listed = (await client.get("/detections", params={"nid": "0x33"})).json()
    finally:
        code = proc.stop()
        analysis.stop()
    log = proc.log_text()
    assert code == 0, log
    assert "NETWORK ATTEMPT" not in log, log
    assert "TORCH IMPORT" not in log, log

    for r in found:
        assert (
            r["model"] == "demo-yolov8"
            and r["model_version"] == "01"
            and r["conf_threshold"] == 0.5
        )
        assert r["fps"] > 0 and r["frames"] >= 1
        assert 0 < r["inference_p50_ms"] <= r["inference_max_ms"] and r["inference_mean_ms"] > 0
        assert r["authenticated"] is True
    assert sum(r["below_threshold"] for r in found) > 0
    assert sum(r["frames_sent_up"] for r in found) >= 1

    # The analysis server got JPEG frames with their metadata.
    assert analysis.uploads, log
    metadata, image = analysis.uploads[0]
    assert image[:2] == b"\xff\xd8"
    assert (
        metadata["nid"] == "0x33"
        and metadata["reason"] == "low_confidence"
        and metadata["conf_threshold"] == 0.5
    )
    assert metadata["detections"] and {"class", "class_id", "confidence", "box"} <= set(
        metadata["detections"][0]
    )
    assert metadata["width"] in (810, 1280)  # bus.jpg 810x1080, zidane.jpg 1280x720
    assert status["routing"]["active"] is True and status["vms"]["delivered"] >= 3

    # Read back through the VMS's query API: the summary keeps its shape.
    items = listed.get("items") or listed.get("detections") or []
    assert items, json.dumps(listed)[:500]


async def test_vms_outage_every_record_stored_once_in_order(db, vms, tmp_path):
    api_port = free_port()
    config, env = edge_setup(tmp_path, vms["port"], "0x34", "edge-34", EDGE_API_PORT=str(api_port))
    weather = Proc(
        edge_program("edge_ai.weather", "--config", str(config), "--period", "2"),
        env=env,
        log_path=tmp_path / "weather.log",
    )
    m_config, m_env = edge_setup(
        tmp_path, vms["port"], "0x35", "edge-35", MONITORING_VARIANT="SUNNY"
    )
    monitoring = Proc(
        edge_program("edge_ai.monitoring", "--config", str(m_config)),
        env=m_env,
        log_path=tmp_path / "monitoring.log",
    )
    try:
        await wait_rows(
            db, "SELECT 1 FROM vms.environment WHERE nid = $1", "0x34", count=2, proc=weather
        )
        await wait_rows(
            db, "SELECT 1 FROM vms.usage WHERE nid = $1", "0x35", count=2, proc=monitoring
        )

        vms["proc"].stop(signal.SIGTERM)
        outage_started = time.monotonic()
        # Wait until the weather AI has buffered several records (it says so on its local API).
        deadline = time.monotonic() + 60
        while True:
            status = httpx.get(f"http://127.0.0.1:{api_port}/status", timeout=5).json()["vms"]
            if status["buffered"] >= 6 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status["buffered"] >= 6 and status["reachable"] is False, status
        assert time.monotonic() - outage_started >= 5

        vms["proc"] = start_vms(db, tmp_path, vms["port"])
        deadline = time.monotonic() + 60
        while True:
            status = httpx.get(f"http://127.0.0.1:{api_port}/status", timeout=5).json()["vms"]
            if (status["buffered"] == 0 and status["reachable"]) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status["buffered"] == 0 and status["dropped"] == 0, status
        # A few more records after the drain, then stop the programs while the VMS is up.
        produced_before_stop = status["submitted"]
        await wait_rows(
            db,
            "SELECT 1 FROM vms.environment WHERE nid = $1",
            "0x34",
            count=produced_before_stop + 2,
            proc=weather,
        )
    finally:
        assert weather.stop() == 0, weather.log_text()
        assert monitoring.stop() == 0, monitoring.log_text()

    env_rows = await rows(
        db, "SELECT ts, received_at, result FROM vms.environment WHERE nid = $1 ORDER BY ts", "0x34"
    )
    seconds = [int(epoch(r["ts"])) for r in env_rows]
    # Stored once: no second twice. Every record produced meanwhile: no second missing.
    assert len(seconds) == len(set(seconds)), "duplicates"
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), "a second is missing"
    assert len(seconds) >= produced_before_stop
    # In order: a later record never reached the database before an earlier one.
    received = [r["received_at"] for r in env_rows]
    assert received == sorted(received)
    assert any(
        b - a > 3 for a, b in zip(seconds, [int(epoch(r)) for r in received], strict=False)
    ), "the outage must show in arrival times"
    for r in env_rows:
        assert r["result"] == scheduled_code(["0", "2"], 2, epoch(r["ts"]))

    usage_rows = await rows(
        db, "SELECT ts, received_at, func FROM vms.usage WHERE nid = $1 ORDER BY ts", "0x35"
    )
    u_seconds = [int(epoch(r["ts"])) for r in usage_rows]
    assert len(u_seconds) == len(set(u_seconds))
    assert u_seconds == list(range(u_seconds[0], u_seconds[0] + len(u_seconds)))
    assert [r["received_at"] for r in usage_rows] == sorted(r["received_at"] for r in usage_rows)
    assert {r["func"] for r in usage_rows} == {"SUNNY"}


async def test_monitoring_package_deployed_through_an_edge_agent(db, vms, tmp_path):
    """The archive as the master stores it, fetched by digest and run by a real edge agent: the
    agent writes edgeconfig.xml, the program inside the package posts to the VMS."""
    import subprocess

    from services.master.packages.archive import ingest_sync
    from services.master.packages.store import ArtifactStore
    from tests.agent.helpers import Agent, ArtifactServer, kill_leftovers, spec, wait_until

    out = tmp_path / "packages"
    built = subprocess.run(
        edgectl("edge", "build-packages", "--out", str(out), "--only", "monitoring-02"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    store = ArtifactStore(tmp_path / "store")
    pkg = ingest_sync(
        out / "monitoring-02-01.tar.gz",
        store,
        expected={"filename": "monitoring", "version": "01", "ai_class": "02"},
    )
    artifacts = ArtifactServer()
    digest = artifacts.add(store.path(pkg.digest).read_bytes())
    assert digest == pkg.digest
    agent = Agent(tmp_path, artifacts.url).start()
    try:
        nid = "0x36"
        edgeconfig = (
            f"<Configuration><vms><IP>127.0.0.1</IP><Port>{vms['port']}</Port><Path>usage</Path></vms>"
            f"<node><NID>{nid}</NID><Name>edge-36</Name>"
            f"<Token>{issue_edge_token(nid, SIGNER)}</Token></node></Configuration>"
        )
        manifest = pkg.manifest
        body = spec(
            "monitoring-02",
            digest,
            manifest.version,
            command=manifest.command,
            env=dict(manifest.env),
            edgeconfig=edgeconfig,
        )
        r = agent.client.put("/workloads/monitoring-02", json=body)
        assert r.status_code in (200, 201, 202), r.text
        found = await wait_rows(
            db, "SELECT func, username FROM vms.usage WHERE nid = $1", nid, count=3, timeout=90
        )
        assert {(r["func"], r["username"]) for r in found} == {("RAINY", "edge-36")}
        wait_until(lambda: agent.status("monitoring-02")["state"] == "running", what="running")
    finally:
        agent.close()
        kill_leftovers(agent.workdir)
        artifacts.close()
