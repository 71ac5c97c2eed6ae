"""Every Kubernetes object the driver produces passes kubernetes-validate --strict for 1.30, with
valid names and label values (which the schema alone does not check)."""

from __future__ import annotations

import re
from dataclasses import replace

import kubernetes_validate
import pytest

from services.master.drivers.base import DriverError, EdgeTarget
from services.master.drivers.manifests import (
    KubernetesOptions,
    configmap_manifest,
    deployment_manifest,
    object_name,
    secret_manifest,
)
from tests.master_drivers.workloads import EDGE1, RTSP, workload

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

ODD_EDGE = EdgeTarget(
    name="Edge CCTV #7 (Sangam-dong, Mapo-gu) north gate camera number seven", nid="0x07"
)

CASES = {
    "plain": (workload(), KubernetesOptions()),
    "no resources, no pull secret": (
        workload(resources={}),
        KubernetesOptions(image_pull_secret=None),
    ),
    "gpu and memory_mb": (
        workload(resources={"cpu": 2, "memory_mb": 1024, "gpu": 1}),
        KubernetesOptions(),
    ),
    "kubernetes-style resources": (
        workload(
            resources={
                "requests": {"cpu": "250m", "memory": "128Mi"},
                "limits": {"memory": "512Mi"},
            }
        ),
        KubernetesOptions(),
    ),
    "odd edge name, no node name": (
        workload(ODD_EDGE, filename="weatherai", ai_class="00"),
        KubernetesOptions(),
    ),
    "long filename": (
        workload(filename="a-very-long-ai-package-file-name-used-in-the-field-x" * 2),
        KubernetesOptions(),
    ),
    "dotted version": (workload(version="1.4.10", ai_id=123456), KubernetesOptions()),
    "camera credentials in a secret": (workload(secret_env=RTSP), KubernetesOptions()),
    "live params and a helper's camera": (
        workload(
            params={"FUNC": "SUNNY", "route_low_confidence": True, "analysis_edge": "EdgeCCTV02"},
            secret_env={"YOLO_SOURCE": RTSP["RTSP_URL"]},
        ),
        KubernetesOptions(),
    ),
    "liveness and bare field name": (
        workload(),
        KubernetesOptions(
            liveness_command=("test", "-f", "/tmp/alive"),
            name_per_edge=False,
            namespace="cluster-a",
        ),
    ),
}


def objects(case: str) -> list[dict]:
    w, options = CASES[case]
    secret = secret_manifest(w, options)
    return [configmap_manifest(w, options), deployment_manifest(w, options)] + (
        [secret] if secret else []
    )


@pytest.mark.parametrize("case", list(CASES))
def test_objects_pass_strict_validation_for_1_30(case):
    for obj in objects(case):
        assert kubernetes_validate.validate(obj, "1.30", strict=True) == "1.30"


@pytest.mark.parametrize("case", list(CASES))
def test_names_and_labels_are_valid(case):
    for obj in objects(case):
        meta = obj["metadata"]
        assert DNS_SUBDOMAIN.match(meta["name"]) and len(meta["name"]) <= 253, meta["name"]
        label_sets = [meta["labels"]]
        if obj["kind"] == "Deployment":
            assert len(meta["name"]) <= 47  # leaves room for the ReplicaSet hash and the pod suffix
            template = obj["spec"]["template"]
            label_sets.append(template["metadata"]["labels"])
            label_sets.append(obj["spec"]["selector"]["matchLabels"])
            label_sets.append(template["spec"]["nodeSelector"])
            container = template["spec"]["containers"][0]
            assert DNS_LABEL.match(container["name"]) and len(container["name"]) <= 63
            assert set(obj["spec"]["selector"]["matchLabels"].items()) <= set(
                template["metadata"]["labels"].items()
            )
        for labels in label_sets:
            for key, value in labels.items():
                prefix, _, name = key.rpartition("/")
                assert LABEL_KEY_NAME.match(name) and len(name) <= 63, key
                assert not prefix or DNS_SUBDOMAIN.match(prefix), key
                assert LABEL_VALUE.match(value) and len(value) <= 63, (key, value)


def test_the_deployment_as_the_field_needs_it():
    w = workload()
    dep = deployment_manifest(
        w, KubernetesOptions(namespace="edge-ai", image_pull_secret="edge-registry")
    )
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert dep["metadata"]["name"] == "monitoring-01-edge-node-01"
    assert dep["metadata"]["namespace"] == "edge-ai"
    assert container["name"] == "monitoring-01"
    assert container["image"] == "127.0.0.1:5000/monitoring-01:01"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert pod["imagePullSecrets"] == [{"name": "edge-registry"}]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "edge-node-01"}
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"}}
    assert {"name": "FUNC", "value": "SUNNY"} in container["env"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert (labels["edge-ai/ai-id"], labels["edge-ai/version"], labels["edge-ai/edge"]) == (
        "5",
        "01",
        "EdgeCCTV01",
    )
    # edgeconfig.xml from the ConfigMap, at the path the program reads.
    cm = configmap_manifest(w, KubernetesOptions())
    assert cm["metadata"]["name"] == "monitoring-01-edge-node-01-edgeconfig"
    assert (
        "<IP>127.0.0.1</IP>" in cm["data"]["edgeconfig.xml"]
        and "<NID>0x01</NID>" in cm["data"]["edgeconfig.xml"]
    )
    cm_name = cm["metadata"]["name"]
    assert pod["volumes"][0] == {"name": "edgeconfig", "configMap": {"name": cm_name}}
    assert container["volumeMounts"][0]["mountPath"] == "/app/edgeconfig.xml"
    # The field's bare name where one edge has the namespace to itself.
    bare = deployment_manifest(w, KubernetesOptions(name_per_edge=False))
    assert bare["metadata"]["name"] == "monitoring-01"


def test_what_rolls_the_pods_and_what_stays():
    options = KubernetesOptions()
    v1 = deployment_manifest(workload(version="01"), options)
    v2 = deployment_manifest(workload(version="02"), options)
    moved = deployment_manifest(workload(version="01", vms_port=7000), options)
    again = deployment_manifest(workload(version="01", generation=2), options)
    assert (
        v1["spec"]["selector"] == v2["spec"]["selector"] == moved["spec"]["selector"]
    )  # immutable field
    assert v1["metadata"]["name"] == v2["metadata"]["name"]
    assert v1["spec"]["template"] != v2["spec"]["template"]
    assert v2["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":02")
    # A moved VMS (new edgeconfig.xml) and a redeploy (new generation) both change the pod template.
    assert (
        v1["spec"]["template"]["metadata"]["annotations"]
        != moved["spec"]["template"]["metadata"]["annotations"]
    )
    assert (
        v1["spec"]["template"]["metadata"]["annotations"]
        != again["spec"]["template"]["metadata"]["annotations"]
    )


def test_two_edges_never_share_an_object_name():
    options = KubernetesOptions()
    names = {
        object_name("weatherai-00", EdgeTarget(name=n, nid=n), options)
        for n in ("EdgeCCTV01", "edgecctv01", "edge cctv 01", "edge-cctv-01")
    }
    assert len(names) == 4


@pytest.mark.parametrize(
    "change, problem",
    [
        (dict(resources={"cpu": "lots"}), "resources.cpu"),
        (dict(resources={"limits": {"memory": "12 GB"}}), "resources.limits.memory"),
        (dict(env={"BAD NAME": "x"}), "env"),
    ],
)
def test_bad_inputs_are_permanent_errors(change, problem):
    with pytest.raises(DriverError, match=re.escape(problem)):
        deployment_manifest(workload(**change), KubernetesOptions())


def test_no_image_is_a_permanent_error():
    w = workload()
    w.ai = replace(w.ai, image_ref=None)
    with pytest.raises(DriverError, match="no image"):
        deployment_manifest(w, KubernetesOptions())
    assert EDGE1.node == "edge-node-01"


def test_the_strict_validator_does_reject_mistakes():
    """Guards the tests above: a typo'd field in a manifest like ours is caught."""
    dep = deployment_manifest(workload(), KubernetesOptions())
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, "1.30", strict=True)


def test_camera_credentials_stay_out_of_the_deployment():
    w = workload(secret_env=RTSP)
    dep = deployment_manifest(w, KubernetesOptions())
    secret = secret_manifest(w, KubernetesOptions())
    assert "cam-pass-123" not in repr(dep)
    assert (
        secret["stringData"] == RTSP
        and secret["metadata"]["name"] == "monitoring-01-edge-node-01-env"
    )
    ref = {"secretKeyRef": {"name": "monitoring-01-edge-node-01-env", "key": "RTSP_URL"}}
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "RTSP_URL", "valueFrom": ref} in env
    # New credentials roll the pods, through a hash only.
    other = deployment_manifest(
        workload(secret_env={"RTSP_URL": "rtsp://u:other@127.0.0.1/x"}), KubernetesOptions()
    )
    assert (
        other["spec"]["template"]["metadata"]["annotations"]
        != dep["spec"]["template"]["metadata"]["annotations"]
    )
    assert secret_manifest(workload(), KubernetesOptions()) is None
