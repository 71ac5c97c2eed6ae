"""The docker driver through the docker SDK against an endpoint answering like the Docker Engine
API."""

from __future__ import annotations

import base64
import json

import docker
import pytest

from services.master.drivers.base import DriverError, DriverUnavailable
from services.master.drivers.docker import DockerDriver, DockerOptions
from tests.helpers.env import free_port
from tests.master_drivers.fake_docker import FakeDockerEngine
from tests.master_drivers.workloads import EDGE1, EDGE2, REGISTRY, RTSP, workload

NAME = "monitoring-01-edge-node-01"
IMAGE1 = f"{REGISTRY}/monitoring-01:01"
IMAGE2 = f"{REGISTRY}/monitoring-01:02"
IMAGE3 = f"{REGISTRY}/monitoring-01:03"


def make_driver(url: str) -> DockerDriver:
    client = docker.DockerClient(base_url=url, version="1.45", timeout=5)
    return DockerDriver(
        client,
        DockerOptions(
            ready_grace_s=0.05,
            registry_auth={"username": "edge", "password": "pw", "serveraddress": REGISTRY},
        ),
    )


@pytest.fixture
def fake():
    engine = FakeDockerEngine()
    engine.registry |= {IMAGE1, IMAGE2, IMAGE3}
    yield engine
    engine.close()


@pytest.fixture
async def driver(fake):
    d = make_driver(fake.url)
    yield d
    await d.aclose()


def index(calls, call) -> int:
    return calls.index(call)


async def test_apply_pulls_creates_configures_and_starts(fake, driver):
    await driver.apply(workload(secret_env=RTSP))
    calls = fake.calls()
    assert calls[0] == ("GET", "/containers/json")
    assert calls[1] == ("POST", "/images/create")
    (c,) = fake.containers.values()
    archive = ("PUT", f"/containers/{c.id}/archive")
    assert calls[2:6] == [
        ("POST", "/containers/create"),
        archive,
        archive,
        ("POST", f"/containers/{c.id}/start"),
    ]
    pull = fake.requests[1]
    assert pull[2] == {"fromImage": f"{REGISTRY}/monitoring-01", "tag": "01"}
    auth = json.loads(base64.urlsafe_b64decode(fake.pull_auth[0] + "=="))
    assert (auth["username"], auth["serveraddress"]) == ("edge", REGISTRY)
    assert c.name == NAME and c.image == IMAGE1 and c.status == "running"
    assert (
        c.labels["edge-ai/ai-id"] == "5"
        and c.labels["edge-ai/version"] == "01"
        and c.labels["edge-ai/edge"] == "EdgeCCTV01"
    )
    assert c.host_config["RestartPolicy"] == {"Name": "unless-stopped"}
    assert c.host_config["Memory"] == 256 * 1024**2 and c.host_config["NanoCpus"] == 500_000_000
    # The camera URL through an env file (0600) copied in, never in the container's spec.
    assert "cam-pass-123" not in json.dumps(c.inspect())
    assert "EDGE_SECRET_ENV_FILE=/app/.edge-secret.env" in c.env
    assert c.files["/app/.edge-secret.env"] == f"RTSP_URL={RTSP['RTSP_URL']}\n".encode()
    assert c.file_modes["/app/.edge-secret.env"] == 0o600
    assert "FUNC=SUNNY" in c.env and "EDGE_CONFIG=/app/edgeconfig.xml" in c.env
    assert b"<NID>0x01</NID>" in c.files["/app/edgeconfig.xml"]

    fake.requests.clear()
    await driver.apply(workload(secret_env=RTSP))  # nothing to do: no pull, no new container
    assert [m for m, _ in fake.calls()] == ["GET", "GET"]
    assert len(fake.containers) == 1


async def test_version_change_starts_the_new_container_before_stopping_the_old(fake, driver):
    await driver.apply(workload(version="01"))
    old = fake.by_name(NAME)
    fake.requests.clear()

    await driver.apply(workload(version="02", generation=2))
    (new,) = fake.containers.values()
    assert new.id != old.id and new.image == IMAGE2 and new.name == NAME and new.status == "running"
    calls = fake.calls()
    created = index(calls, ("POST", "/containers/create"))
    assert fake.requests[[r[:2] for r in fake.requests].index(("POST", "/containers/create"))][2][
        "name"
    ].startswith(f"{NAME}.g2-")
    started = index(calls, ("POST", f"/containers/{new.id}/start"))
    stopped = index(calls, ("POST", f"/containers/{old.id}/stop"))
    removed = index(calls, ("DELETE", f"/containers/{old.id}"))
    renamed = index(calls, ("POST", f"/containers/{new.id}/rename"))
    assert (
        index(calls, ("POST", "/images/create")) < created < started < stopped < removed < renamed
    )

    (seen,) = await driver.observe(EDGE1)
    assert (seen.name, seen.state, seen.version, seen.deployment_id, seen.generation) == (
        "monitoring-01",
        "running",
        "02",
        11,
        2,
    )


async def test_a_new_version_that_does_not_come_up_leaves_the_old_one_serving(fake, driver):
    await driver.apply(workload(version="01"))
    old = fake.by_name(NAME)
    fake.crashing_images[IMAGE3] = 1
    await driver.apply(workload(version="03", generation=2))
    assert old.status == "running" and len(fake.containers) == 2

    (seen,) = await driver.observe(EDGE1)  # the newest one is what the deployment is now
    assert (seen.version, seen.state, seen.exit_code, seen.restarts) == ("03", "restarting", 1, 3)
    assert seen.log_tail == ["loading model", "fatal: CUDA device not found"]

    await driver.apply(workload(version="03", generation=2))  # still not up: still both
    assert old.status == "running" and len(fake.containers) == 2

    # It recovers (say the GPU came back): the next apply finishes the switch.
    new = next(c for c in fake.containers.values() if c.id != old.id)
    new.status = "running"
    await driver.apply(workload(version="03", generation=2))
    assert list(fake.containers.values()) == [new] and new.name == NAME


async def test_observe_and_remove(fake, driver):
    await driver.apply(workload(deployment_id=11))
    await driver.apply(workload(EDGE2, deployment_id=12))  # same host, another edge
    assert {c.name for c in fake.containers.values()} == {NAME, "monitoring-01-edge-node-02"}

    (seen,) = await driver.observe(EDGE1)
    assert (seen.deployment_id, seen.state, seen.restarts) == (11, "running", 0)
    fake.by_name(NAME).status, fake.by_name(NAME).exit_code = "exited", 137
    (seen,) = await driver.observe(EDGE1)
    assert (seen.state, seen.exit_code) == ("failed", 137)

    await driver.remove(EDGE1, "monitoring-01")
    assert {c.name for c in fake.containers.values()} == {"monitoring-01-edge-node-02"}
    assert await driver.observe(EDGE1) == []
    fake.requests.clear()
    await driver.remove(EDGE1, "monitoring-01")  # already gone
    assert fake.calls() == [("GET", "/containers/json")]


async def test_errors_are_retryable_or_permanent(fake, driver):
    with pytest.raises(DriverError, match="manifest unknown") as info:
        await driver.apply(workload(version="09"))
    assert not info.value.retryable
    fake.registry_down = True
    with pytest.raises(DriverUnavailable, match="connection refused"):
        await driver.apply(workload(version="01"))
    assert fake.containers == {}

    no_image = workload()
    no_image.ai = type(no_image.ai)(id=5, filename="monitoring", version="01", ai_class="01")
    with pytest.raises(DriverError, match="no image"):
        await driver.apply(no_image)

    down = make_driver(f"tcp://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(DriverUnavailable, match="unreachable"):
            await down.observe(EDGE1)
    finally:
        await down.aclose()


async def test_live_params_go_to_the_bind_mounted_file_not_the_container(fake, tmp_path):
    """With a live host dir, routing/hand-off/focus changes rewrite the live file the container
    mounts; the container (its id, env and spec) stays as it is."""
    client = docker.DockerClient(base_url=fake.url, version="1.45", timeout=5)
    driver = DockerDriver(client, DockerOptions(ready_grace_s=0.05, live_host_dir=str(tmp_path)))
    try:
        params = {"FUNC": "SUNNY", "route_low_confidence": False}
        await driver.apply(workload(params=params))
        (c,) = fake.containers.values()
        live_file = tmp_path / NAME / "live.json"
        assert json.loads(live_file.read_text()) == {"route_low_confidence": False}
        assert c.host_config["Binds"] == [f"{tmp_path / NAME}:/var/run/edge-ai/live:ro"]
        assert "EDGE_LIVE_FILE=/var/run/edge-ai/live/live.json" in c.env
        assert not any(e.startswith("route_low_confidence=") for e in c.env)
        spec_before = json.dumps(c.inspect(), sort_keys=True)

        fake.requests.clear()
        live = {"route_low_confidence": True, "analysis_route": "server", "focus": True}
        await driver.apply(workload(params={"FUNC": "SUNNY", **live}))
        assert json.loads(live_file.read_text()) == live
        assert [m for m, _ in fake.calls()] == ["GET", "GET"]  # no create, no stop
        assert list(fake.containers.values()) == [c]
        assert json.dumps(c.inspect(), sort_keys=True) == spec_before
        # What the program reads at start still replaces the container.
        await driver.apply(workload(params={"FUNC": "RAINY", **live}))
        assert ("POST", "/containers/create") in fake.calls()
    finally:
        await driver.aclose()


async def test_without_a_live_host_dir_live_params_travel_as_env(fake, driver):
    """No shared directory with the daemon: the documented fallback, a replace with the new env."""
    await driver.apply(workload(params={"FUNC": "SUNNY", "route_low_confidence": False}))
    old = fake.by_name(NAME)
    assert "route_low_confidence=false" in old.env and "Binds" not in old.host_config
    await driver.apply(workload(params={"FUNC": "SUNNY", "route_low_confidence": True}))
    new = fake.by_name(NAME)
    assert new.id != old.id and "route_low_confidence=true" in new.env


async def test_the_program_reads_its_camera_from_the_env_file(fake, driver, tmp_path, monkeypatch):
    """The helper's camera URL (YOLO_SOURCE) reaches the program through the env file the driver
    copies in: edge_ai's options read it where the environment has no such variable."""
    from edge_ai.yolo.app import YoloSettings
    from edge_common.settings import load_settings

    def source() -> str | None:
        return load_settings(YoloSettings, [], prog="yolo").source

    url = "rtsp://cam-user:hand-off-pw-9@127.0.0.1:8554/stream"
    await driver.apply(workload(secret_env={"YOLO_SOURCE": url}))
    c = fake.by_name(NAME)
    assert "hand-off-pw-9" not in json.dumps(c.inspect())
    env_file = tmp_path / "secret.env"
    env_file.write_bytes(c.files["/app/.edge-secret.env"])
    monkeypatch.delenv("YOLO_SOURCE", raising=False)
    monkeypatch.setenv("EDGE_SECRET_ENV_FILE", str(env_file))
    assert source() == url
    monkeypatch.setenv("YOLO_SOURCE", "/videos/local.mp4")  # the environment wins
    assert source() == "/videos/local.mp4"


async def test_the_env_file_belongs_to_the_containers_user(fake, driver):
    """The image runs as a non-root user (the platform's as 10001): the 0600 env file is copied in
    with copyUIDGID, so the engine gives it to that user and the program can read it."""
    fake.image_users[IMAGE1] = "10001:10001"
    await driver.apply(workload(secret_env=RTSP))
    c = fake.by_name(NAME)
    secret = "/app/.edge-secret.env"
    assert c.file_modes[secret] == 0o600 and c.file_owners[secret] == "10001:10001"
    (put,) = [q for m, p, q, _ in fake.requests if p.endswith("/archive") and "copyUIDGID" in q]
    assert put == {"path": "/app", "copyUIDGID": "1"}


async def test_a_hot_handoff_copies_the_live_secrets_into_the_running_container(fake, tmp_path):
    """A hot_handoff workload's live secrets (the helped camera) are copied into the container
    (0600, its user's) at create and into the running container on a hand-off: no new container,
    the password not in its spec; the hand-back empties the file."""
    fake.image_users[IMAGE1] = "10001:10001"
    client = docker.DockerClient(base_url=fake.url, version="1.45", timeout=5)
    driver = DockerDriver(client, DockerOptions(ready_grace_s=0.05, live_host_dir=str(tmp_path)))
    path = "/app/.edge-live-secrets.json"
    url = "rtsp://cam-user:hand-off-pw-9@127.0.0.1:8554/stream"
    try:
        w = workload()
        w.hot_handoff = True
        await driver.apply(w)
        (c,) = fake.containers.values()
        assert f"EDGE_LIVE_SECRETS_FILE={path}" in c.env
        assert json.loads(c.files[path]) == {}
        spec_before = json.dumps(c.inspect(), sort_keys=True)

        w.live = {"help_for": ["0x02"]}
        w.live_secrets = {"help_sources": {"0x02": url}}
        await driver.apply(w)
        assert list(fake.containers.values()) == [c]  # the same container, running
        assert json.loads(c.files[path]) == {"help_sources": {"0x02": url}}
        assert c.file_modes[path] == 0o600 and c.file_owners[path] == "10001:10001"
        assert json.loads((tmp_path / NAME / "live.json").read_text()) == {"help_for": ["0x02"]}
        assert json.dumps(c.inspect(), sort_keys=True) == spec_before
        assert "hand-off-pw-9" not in spec_before

        w.live, w.live_secrets = {}, {}
        await driver.apply(w)
        assert json.loads(c.files[path]) == {} and list(fake.containers.values()) == [c]
    finally:
        await driver.aclose()
