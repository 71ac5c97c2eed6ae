"""The kubernetes driver through the official client against an endpoint answering like the API
server."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client as k8s

from services.master.drivers.base import DriverError, DriverUnavailable
from services.master.drivers.kubernetes import KubernetesDriver
from services.master.drivers.manifests import (
    KubernetesOptions,
    configmap_manifest,
    deployment_manifest,
)
from tests.helpers.env import free_port
from tests.master_drivers.fake_kube import FakeKubeApi
from tests.master_drivers.workloads import EDGE1, EDGE2, RTSP, workload

NS = "edge-ai"
DEP = f"/apis/apps/v1/namespaces/{NS}/deployments"
CM = f"/api/v1/namespaces/{NS}/configmaps"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
PODS = f"/api/v1/namespaces/{NS}/pods"
NAME = "monitoring-01-edge-node-01"


def make_driver(host: str, **options) -> KubernetesDriver:
    configuration = k8s.Configuration(host=host)
    configuration.retries = 0
    return KubernetesDriver(
        k8s.ApiClient(configuration),
        KubernetesOptions(namespace=NS, **options),
        request_timeout_s=5,
    )


@pytest.fixture
def fake():
    api = FakeKubeApi()
    yield api
    api.close()


@pytest.fixture
async def driver(fake):
    d = make_driver(fake.url)
    yield d
    await d.aclose()


def running_status(generation: int = 1) -> dict:
    return {
        "observedGeneration": generation,
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


def container_status(*, restarts=0, waiting=None, exit_code=None) -> dict:
    cs = {
        "name": "monitoring-01",
        "ready": waiting is None,
        "restartCount": restarts,
        "image": "x",
        "imageID": "",
        "state": {"waiting": waiting}
        if waiting
        else {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
    }
    if exit_code is not None:
        cs["lastState"] = {"terminated": {"exitCode": exit_code, "reason": "Error"}}
    return {"phase": "Running", "containerStatuses": [cs]}


async def test_apply_creates_the_configmap_then_the_deployment(fake, driver):
    w = workload()
    await driver.apply(w)
    assert fake.calls() == [("POST", CM), ("POST", DEP)]
    options = KubernetesOptions(namespace=NS)
    sent = [r.body for r in fake.requests]
    for body in sent:
        assert len(body["metadata"]["annotations"].pop("edge-ai/applied-hash")) == 16
    assert sent == [configmap_manifest(w, options), deployment_manifest(w, options)]

    # The reconcile loop applies every pass: an unchanged workload is read, not written.
    fake.requests.clear()
    rv = fake.get("deployments", NS, NAME)["metadata"]["resourceVersion"]
    await driver.apply(w)
    assert fake.calls() == [
        ("POST", CM),
        ("GET", f"{CM}/{NAME}-edgeconfig"),
        ("POST", DEP),
        ("GET", f"{DEP}/{NAME}"),
    ]
    assert fake.get("deployments", NS, NAME)["metadata"]["resourceVersion"] == rv
    stored = fake.get("deployments", NS, NAME)
    assert stored["metadata"]["generation"] == 1
    assert (
        stored["spec"]["template"]["spec"]["containers"][0]["image"]
        == "127.0.0.1:5000/monitoring-01:01"
    )


async def test_live_params_change_the_configmap_not_the_pod_template(fake, driver):
    """Routing, hand-off and focus reach the running pod through the mounted ConfigMap, which the
    kubelet refreshes: the Deployment is left as it is, so no pod restarts."""
    params = {"FUNC": "SUNNY", "route_low_confidence": False}
    await driver.apply(workload(params=params))
    before = fake.get("deployments", NS, NAME)
    (container,) = before["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EDGE_LIVE_FILE"] == "/var/run/edge-ai/live/live.json"
    assert "route_low_confidence" not in env and env["FUNC"] == "SUNNY"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    live_mount = {"name": "live", "mountPath": "/var/run/edge-ai/live", "readOnly": True}
    assert mounts["live"] == live_mount
    assert "subPath" not in mounts["live"]  # a subPath mount is never refreshed
    cm = fake.get("configmaps", NS, f"{NAME}-edgeconfig")
    assert json.loads(cm["data"]["live.json"]) == {"route_low_confidence": False}

    fake.requests.clear()
    live = {"route_low_confidence": True, "analysis_route": "server", "focus": True}
    await driver.apply(workload(params={"FUNC": "SUNNY", **live}))
    cm = fake.get("configmaps", NS, f"{NAME}-edgeconfig")
    assert json.loads(cm["data"]["live.json"]) == live
    assert ("PUT", f"{CM}/{NAME}-edgeconfig") in fake.calls()
    assert ("PUT", f"{DEP}/{NAME}") not in fake.calls()
    after = fake.get("deployments", NS, NAME)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["template"] == before["spec"]["template"]
    # A change the program reads at start (FUNC) still rolls the pods.
    await driver.apply(workload(params={"FUNC": "RAINY", **live}))
    assert ("PUT", f"{DEP}/{NAME}") in fake.calls()


async def test_a_helpers_camera_url_is_a_secret_reference(fake, driver):
    """The overload hand-off gives the helper the source camera: a Secret the pod references by
    key; the password is in no Deployment, ConfigMap or driver log."""
    url = "rtsp://cam-user:hand-off-pw-9@127.0.0.1:8554/stream"
    w = workload(
        params={"FUNC": "SUNNY", "analysis_edge": "EdgeCCTV01"}, secret_env={"YOLO_SOURCE": url}
    )
    await driver.apply(w)
    dep = fake.get("deployments", NS, NAME)
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert {
        "name": "YOLO_SOURCE",
        "valueFrom": {"secretKeyRef": {"name": f"{NAME}-env", "key": "YOLO_SOURCE"}},
    } in container["env"]
    for plural, name in (("deployments", NAME), ("configmaps", f"{NAME}-edgeconfig")):
        assert "hand-off-pw-9" not in json.dumps(fake.get(plural, NS, name))
    secret = fake.get("secrets", NS, f"{NAME}-env")
    assert base64.b64decode(secret["data"]["YOLO_SOURCE"]).decode() == url
    assert "hand-off-pw-9" not in repr(w.env) and "hand-off-pw-9" not in repr(w.live)


async def test_a_hot_handoff_changes_a_mounted_secret_not_the_pod(fake, driver):
    """A hot_handoff workload mounts its live secrets (a Secret volume the kubelet refreshes): a
    hand-off puts the helped camera there and the nid in the live ConfigMap; the pod template
    stays as it is (no restart), and the password is in neither the Deployment nor the ConfigMap."""
    url = "rtsp://cam-user:hand-off-pw-9@127.0.0.1:8554/stream"
    w = workload()
    w.hot_handoff = True
    await driver.apply(w)
    before = fake.get("deployments", NS, NAME)
    (container,) = before["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EDGE_LIVE_SECRETS_FILE"] == "/var/run/edge-ai/live-secrets/secrets.json"
    volumes = {v["name"]: v for v in before["spec"]["template"]["spec"]["volumes"]}
    assert volumes["live-secrets"]["secret"] == {"secretName": f"{NAME}-live", "defaultMode": 0o400}
    empty = fake.get("secrets", NS, f"{NAME}-live")
    assert json.loads(base64.b64decode(empty["data"]["secrets.json"])) == {}

    fake.requests.clear()
    w.live = {"help_for": ["0x02"]}
    w.live_secrets = {"help_sources": {"0x02": url}}
    await driver.apply(w)
    assert ("PUT", f"{SECRETS}/{NAME}-live") in fake.calls()
    assert ("PUT", f"{DEP}/{NAME}") not in fake.calls()
    after = fake.get("deployments", NS, NAME)
    assert after["spec"]["template"] == before["spec"]["template"]
    stored = fake.get("secrets", NS, f"{NAME}-live")
    assert json.loads(base64.b64decode(stored["data"]["secrets.json"]))["help_sources"] == {
        "0x02": url
    }
    cm = fake.get("configmaps", NS, f"{NAME}-edgeconfig")
    assert json.loads(cm["data"]["live.json"]) == {"help_for": ["0x02"]}
    for plural, name in (("deployments", NAME), ("configmaps", f"{NAME}-edgeconfig")):
        assert "hand-off-pw-9" not in json.dumps(fake.get(plural, NS, name))


async def test_camera_credentials_go_into_a_secret(fake, driver):
    await driver.apply(workload(secret_env=RTSP))
    assert fake.calls() == [("POST", SECRETS), ("POST", CM), ("POST", DEP)]
    stored = fake.get("secrets", NS, f"{NAME}-env")
    assert base64.b64decode(stored["data"]["RTSP_URL"]).decode() == RTSP["RTSP_URL"]
    assert "cam-pass-123" not in json.dumps(fake.get("deployments", NS, NAME))
    await driver.apply(
        workload(secret_env={"RTSP_URL": "rtsp://u:rotated@127.0.0.1/x"})
    )  # rotated: replaced
    assert (
        base64.b64decode(fake.get("secrets", NS, f"{NAME}-env")["data"]["RTSP_URL"])
        == b"rtsp://u:rotated@127.0.0.1/x"
    )
    await driver.remove(EDGE1, "monitoring-01")
    assert fake.objects == {}


async def test_apply_of_an_existing_workload_replaces_it_with_its_resource_version(fake, driver):
    await driver.apply(workload(version="01"))
    first_rv = fake.get("deployments", NS, NAME)["metadata"]["resourceVersion"]
    fake.requests.clear()

    await driver.apply(workload(version="02", generation=2))
    assert fake.calls() == [
        ("POST", CM),
        ("GET", f"{CM}/{NAME}-edgeconfig"),
        ("PUT", f"{CM}/{NAME}-edgeconfig"),
        ("POST", DEP),
        ("GET", f"{DEP}/{NAME}"),
        ("PUT", f"{DEP}/{NAME}"),
    ]
    put = fake.requests[-1].body
    assert put["metadata"]["resourceVersion"] == first_rv
    assert put["spec"]["template"]["spec"]["containers"][0]["image"].endswith("/monitoring-01:02")
    assert put["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    stored = fake.get("deployments", NS, NAME)
    assert stored["metadata"]["generation"] == 2  # a rolling update is due
    assert stored["metadata"]["resourceVersion"] != first_rv


async def test_a_concurrent_writer_is_retried_not_overwritten(fake, driver):
    await driver.apply(workload(version="01"))
    fake.requests.clear()
    fake.fail_next.append(
        ("PUT", 409, "Conflict")
    )  # someone wrote in between our read and our replace
    await driver.apply(workload(version="02"))
    # The first replace (the ConfigMap's) hit the conflict: read again, replace again.
    assert fake.calls()[:5] == [
        ("POST", CM),
        ("GET", f"{CM}/{NAME}-edgeconfig"),
        ("PUT", f"{CM}/{NAME}-edgeconfig"),
        ("GET", f"{CM}/{NAME}-edgeconfig"),
        ("PUT", f"{CM}/{NAME}-edgeconfig"),
    ]
    assert (
        fake.get("deployments", NS, NAME)["spec"]["template"]["metadata"]["labels"][
            "edge-ai/version"
        ]
        == "02"
    )


async def test_remove_deletes_both_and_404_is_success(fake, driver):
    await driver.apply(workload())
    fake.requests.clear()
    await driver.remove(EDGE1, "monitoring-01")
    assert fake.calls() == [
        ("DELETE", f"{DEP}/{NAME}"),
        ("DELETE", f"{CM}/{NAME}-edgeconfig"),
        ("DELETE", f"{SECRETS}/{NAME}-env"),
        ("DELETE", f"{SECRETS}/{NAME}-live"),
    ]
    assert fake.requests[0].query["propagationPolicy"] == "Background"
    assert fake.objects == {}
    await driver.remove(EDGE1, "monitoring-01")  # already gone
    assert fake.calls()[-4:] == [
        ("DELETE", f"{DEP}/{NAME}"),
        ("DELETE", f"{CM}/{NAME}-edgeconfig"),
        ("DELETE", f"{SECRETS}/{NAME}-env"),
        ("DELETE", f"{SECRETS}/{NAME}-live"),
    ]


async def test_observe_reports_each_state(fake, driver):
    await driver.apply(workload(deployment_id=11))
    await driver.apply(workload(EDGE2, deployment_id=12))  # another edge: not reported for EDGE1
    fake.requests.clear()

    (seen,) = await driver.observe(EDGE1)
    assert fake.calls() == [("GET", DEP), ("GET", PODS)]
    assert (
        fake.requests[0].query["labelSelector"]
        == "app.kubernetes.io/managed-by=edge-master,edge-ai/edge=EdgeCCTV01"
    )
    assert (seen.name, seen.deployment_id, seen.version, seen.state, seen.generation) == (
        "monitoring-01",
        11,
        "01",
        "pending",
        1,
    )

    fake.set_status(NS, NAME, running_status())
    fake.add_pod(NS, NAME, status_=container_status(restarts=2, exit_code=137))
    (seen,) = await driver.observe(EDGE1)
    assert (seen.state, seen.restarts, seen.exit_code) == ("running", 2, 137)

    # Version 02 rolling out: the new pod is not ready yet, the old one still serves.
    await driver.apply(workload(version="02", deployment_id=11, generation=2))
    fake.set_status(
        NS, NAME, {**running_status(2), "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1}
    )
    (seen,) = await driver.observe(EDGE1)
    assert (seen.state, seen.version, seen.reason) == ("pending", "02", "rolling out")
    assert seen.restarts == 0  # the old pod's restarts are not the new version's

    new_pod = fake.add_pod(
        NS,
        NAME,
        suffix="newpd",
        status_=container_status(
            restarts=3,
            exit_code=3,
            waiting={
                "reason": "CrashLoopBackOff",
                "message": "back-off 40s restarting failed container",
            },
        ),
    )
    (seen,) = await driver.observe(EDGE1)
    assert (seen.state, seen.restarts, seen.exit_code) == ("restarting", 3, 3)
    assert seen.reason.startswith("CrashLoopBackOff")

    new_pod["status"] = container_status(
        restarts=5, exit_code=3, waiting={"reason": "CrashLoopBackOff", "message": "x"}
    )
    assert (await driver.observe(EDGE1))[0].state == "failed"

    new_pod["status"] = container_status(
        waiting={"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
    )
    (seen,) = await driver.observe(EDGE1)
    assert (seen.state, seen.reason) == ("failed", "ImagePullBackOff: Back-off pulling image")

    fake.objects.pop(("pods", NS, new_pod["metadata"]["name"]))
    fake.set_status(
        NS,
        NAME,
        {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "x" has timed out progressing.',
                }
            ],
        },
    )
    (seen,) = await driver.observe(EDGE1)
    assert seen.state == "failed" and "timed out" in seen.reason

    (other,) = await driver.observe(EDGE2)
    assert other.deployment_id == 12


async def test_errors_are_retryable_or_permanent(fake, driver):
    fake.fail_next.append(("POST", 403, "Forbidden"))
    with pytest.raises(DriverError, match="403") as info:
        await driver.apply(workload())
    assert not info.value.retryable

    fake.fail_next.append(("POST", 422, "Invalid"))
    with pytest.raises(DriverError, match="422"):
        await driver.apply(workload())

    for code, reason in (
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (429, "TooManyRequests"),
    ):
        fake.fail_next.append(("GET", code, reason))
        with pytest.raises(DriverUnavailable, match=str(code)) as info:
            await driver.observe(EDGE1)
        assert info.value.retryable

    down = make_driver(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(DriverUnavailable, match="unreachable"):
            await down.observe(EDGE1)
        with pytest.raises(DriverUnavailable):
            await down.remove(EDGE1, "monitoring-01")
    finally:
        await down.aclose()


async def test_the_driver_of_a_kubernetes_cluster_reads_the_masters_kubeconfig(fake, tmp_path):
    from services.master.reconcile.drivers import DriverSet
    from tests.helpers.env import settings_for

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: field, cluster: {{server: "{fake.url}"}}}}]
users: [{{name: master, user: {{token: kube-token-for-tests}}}}]
contexts: [{{name: field, context: {{cluster: field, user: master, namespace: {NS}}}}}]
current-context: field
""")
    settings = settings_for(
        "master", "postgresql+asyncpg://unused@127.0.0.1/none", kubeconfig=str(kubeconfig)
    )
    drivers = DriverSet(settings)
    try:
        d = await drivers.get("kubernetes", NS)
        assert await drivers.get("kubernetes", NS) is d  # one per cluster namespace
        await d.apply(workload())
        assert [s.name for s in await d.observe(EDGE1)] == ["monitoring-01"]
    finally:
        await drivers.aclose()
