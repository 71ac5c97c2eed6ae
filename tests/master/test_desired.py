"""The desired workloads computed from setup's snapshot (pure logic, no I/O)."""

from __future__ import annotations

import time

from services.master.reconcile.desired import plan
from services.master.reconcile.workload_token import WorkloadTokens
from shared.contracts.master import ClusterRecord, EdgeToken, Runtime

MANIFEST = {
    "command": ["python", "main.py"],
    "env": {"A": "1", "EDGE_NODE_ID": "spoofed"},
    "resources": {"cpu": 0.5},
}


def snapshot(deployments, ais=None):
    return {
        "edges": [
            {
                "id": 1,
                "name": "EdgeCCTV01",
                "nid": "0x01",
                "cluster_id": 7,
                "agent_url": "http://127.0.0.1:1",
                "node_name": None,
            },
            {
                "id": 2,
                "name": "EdgeCCTV02",
                "nid": "0x02",
                "cluster_id": 8,
                "agent_url": None,
                "node_name": "n2",
            },
        ],
        "ai_packages": ais
        if ais is not None
        else [
            {
                "id": 10,
                "filename": "monitoring",
                "version": "01",
                "ai_class": "01",
                "status": "ready",
                "package_digest": "sha256:" + "a" * 64,
                "image_ref": None,
            },
            {
                "id": 11,
                "filename": "monitoring",
                "version": "02",
                "ai_class": "01",
                "status": "building",
                "package_digest": None,
                "image_ref": None,
            },
            {
                "id": 12,
                "filename": "weatherai",
                "version": "01",
                "ai_class": "00",
                "status": "failed",
                "package_digest": None,
                "image_ref": None,
            },
        ],
        "deployments": deployments,
    }


def dep(id, edge_id, ai_id, desired="running", params=None, generation=1):
    return {
        "id": id,
        "edge_id": edge_id,
        "ai_id": ai_id,
        "desired": desired,
        "params": params or {},
        "generation": generation,
        "observed": "pending",
        "observed_reason": None,
        "observed_generation": 0,
        "restarts": 0,
    }


CLUSTERS = {
    7: ClusterRecord(id=7, name="c7", runtime=Runtime.AGENT, namespace="edge-ai"),
    8: ClusterRecord(id=8, name="c8", runtime=Runtime.KUBERNETES, namespace="lan"),
}


def make(deployments, ais=None):
    return plan(
        snapshot(deployments, ais),
        CLUSTERS,
        {10: MANIFEST},
        vms=("127.0.0.1", 6432),
        vms_path="usage",
        token_for=lambda nid, runtime: f"token-{nid}",
    )


def test_workloads_env_config_and_runtime_per_edge():
    plans = make([dep(1, 1, 10, params={"TICK": 5, "MODE": "x"}, generation=3), dep(2, 2, 10)])
    ((_, wl),) = plans[1].workloads
    assert wl.name == "monitoring-01" and wl.generation == 3 and wl.command == ["python", "main.py"]
    # Package env, params (JSON for non-strings), then the platform's own variables win.
    assert wl.env["A"] == "1" and wl.env["TICK"] == "5" and wl.env["MODE"] == "x"
    assert (
        wl.env["EDGE_NODE_ID"] == "0x01"
        and wl.secret_env["EDGE_TOKEN"] == "token-0x01"
        and wl.env["EDGE_AI_VERSION"] == "01"
    )
    assert "<IP>127.0.0.1</IP>" in wl.edgeconfig_xml and "<NID>0x01</NID>" in wl.edgeconfig_xml
    assert "token" not in wl.edgeconfig_xml.lower()
    assert plans[2].runtime == "kubernetes" and plans[2].namespace == "lan"
    ((_, wl2),) = plans[2].workloads
    # The token is a secret on every runtime: never in the plain env (Kubernetes keeps it in a
    # Secret).
    assert (
        "EDGE_TOKEN" not in wl.env
        and "EDGE_TOKEN" not in wl2.env
        and wl2.secret_env["EDGE_TOKEN"] == "token-0x02"
    )
    assert wl2.edge.node == "n2"


def test_waiting_failed_and_bad_params_are_blocked_with_reasons():
    plans = make(
        [dep(1, 1, 11), dep(2, 1, 12), dep(3, 2, 10, params={"bad-name": 1}), dep(4, 2, 99)]
    )
    blocked = {
        b.deployment["id"]: (b.observed, b.reason) for p in plans.values() for b in p.blocked
    }
    assert blocked[1] == ("pending", "AI 11 is building")
    assert blocked[2] == ("failed", "AI 12 failed to build")
    assert blocked[3][0] == "failed" and "params.bad-name" in blocked[3][1]
    assert blocked[4] == ("failed", "AI 99 was removed")
    assert all(not p.workloads for p in plans.values())


def test_removed_deployments_and_duplicate_names():
    plans = make([dep(1, 1, 10, desired="removed"), dep(2, 1, 10), dep(3, 1, 10)])
    assert [d["id"] for d in plans[1].removed] == [1] and plans[1].removed_names == {
        1: "monitoring-01"
    }
    assert [wl.name for _, wl in plans[1].workloads] == ["monitoring-01", "monitoring-01-d3"]


class RecordingSetup:
    """Answers POST /edges/{id}/workload-token as setup does (a fresh token each call)."""

    def __init__(self, lifetime_s: float):
        self.calls: list[int] = []
        self.lifetime_s = lifetime_s

    async def workload_token(self, edge_id: int) -> EdgeToken:
        self.calls.append(edge_id)
        return EdgeToken(
            id=edge_id,
            nid=f"0x0{edge_id}",
            token=f"tok-{edge_id}-{len(self.calls)}",
            expires_at=time.time() + self.lifetime_s,
        )


async def test_the_master_mints_no_token_and_asks_setup_only_for_agentless_runtimes():
    """Issue 16 item 2: no permanent token per pass; the agent runtime gets none from the master
    (the agent hands its workloads the edge's own), kubernetes/docker one from setup, reused."""
    setup = RecordingSetup(lifetime_s=3600)
    tokens = WorkloadTokens(setup)  # type: ignore[arg-type]
    edges = [{"id": 1, "nid": "0x01"}, {"id": 2, "nid": "0x02"}]
    runtimes = {1: "agent", 2: "kubernetes"}
    first = await tokens.for_edges(edges, runtimes)
    assert first == {"0x02": "tok-2-1"} and setup.calls == [2]
    for _ in range(5):  # later passes: the same token, no call
        assert await tokens.for_edges(edges, runtimes) == first
    assert setup.calls == [2]

    short = RecordingSetup(lifetime_s=0.2)
    tokens = WorkloadTokens(short)  # type: ignore[arg-type]
    await tokens.for_edges(edges, runtimes)
    time.sleep(0.15)  # past half its lifetime: renewed
    assert await tokens.for_edges(edges, runtimes) == {"0x02": "tok-2-2"}


def test_helper_copy_gets_the_helped_edges_camera_as_a_secret_its_own_token_and_live_apart():
    helper = {"analysis_for": "0x01", "source_edge_id": 1}
    cameras = {1: "rtsp://admin:s3cret@127.0.0.9/stream"}
    live = {"analysis_route": "edge", "analysis_edge": "0x02", "focus_until": "x"}
    vms = ("127.0.0.1", 6432)
    plans = plan(
        snapshot([dep(1, 1, 10, params=live), dep(2, 2, 10, params=helper)]),
        CLUSTERS,
        {10: MANIFEST},
        vms=vms,
        vms_path="usage",
        token_for=lambda nid, runtime: f"token-{nid}",
        cameras=cameras,
    )
    ((_, source),) = plans[1].workloads
    assert source.live == live
    ((_, copy),) = plans[2].workloads
    # The camera URL with credentials a secret, never plain env; the helper edge's own token (the
    # VMS takes its summaries for 0x01 only while the optimizer's hand-off names it).
    assert copy.secret_env == {"YOLO_SOURCE": cameras[1], "EDGE_TOKEN": "token-0x02"}
    assert "s3cret" not in repr(copy.env) and copy.env["analysis_for"] == "0x01" and copy.live == {}
    # No camera known (setup unreachable): the copy waits; no camera registered: it fails, said why.
    waiting = plan(
        snapshot([dep(2, 2, 10, params=helper)]),
        CLUSTERS,
        {10: MANIFEST},
        vms=vms,
        vms_path="usage",
        token_for=lambda nid, runtime: "t",
        cameras={},
    )
    assert [(b.observed, b.reason) for b in waiting[2].blocked] == [
        ("pending", "the camera of the helped edge 0x01 is not known yet")
    ]
    none = plan(
        snapshot([dep(2, 2, 10, params=helper)]),
        CLUSTERS,
        {10: MANIFEST},
        vms=vms,
        vms_path="usage",
        token_for=lambda nid, runtime: "t",
        cameras={1: None},
    )
    assert [b.observed for b in none[2].blocked] == ["failed"]


def test_agent_spec_carries_live_params_apart_from_env():
    from services.master.drivers.agent import agent_spec

    plans = make([dep(1, 1, 10, params={"route_low_confidence": True, "MODE": "x"})])
    ((_, wl),) = plans[1].workloads
    body = agent_spec(wl)
    assert body.live == {"route_low_confidence": True}
    assert "route_low_confidence" not in body.env and body.env["MODE"] == "x"


def test_a_helper_copy_is_taken_on_hot_by_the_helper_edges_running_worker():
    """Hot hand-off: edge 2 runs the same program, its manifest says hot_handoff: the helper copy
    starts no workload; edge 2's worker gets the helped nid in its live params and the camera in
    its live secrets, neither of which changes what would restart it. Without hot_handoff (or
    without a worker of that program on the helper edge) the copy is a process of its own."""
    from dataclasses import replace

    from services.master.drivers.agent import agent_spec
    from services.master.drivers.manifests import (
        KubernetesOptions,
        deployment_manifest,
        live_secret_manifest,
    )

    hot = {**MANIFEST, "hot_handoff": True}
    helper = {"analysis_for": "0x01", "source_edge_id": 1}
    cameras = {1: "rtsp://admin:s3cret@127.0.0.9/stream"}

    def plans_for(deployments, manifest):
        return plan(
            snapshot(deployments),
            CLUSTERS,
            {10: manifest},
            vms=("127.0.0.1", 6432),
            vms_path="usage",
            token_for=lambda nid, runtime: f"token-{nid}",
            cameras=cameras,
        )

    alone = plans_for([dep(3, 2, 10)], hot)[2]
    ((_, before),) = alone.workloads
    p = plans_for([dep(3, 2, 10), dep(2, 2, 10, params=helper)], hot)[2]
    ((own, host),) = p.workloads  # no workload of the helper copy's own
    assert own["id"] == 3 and [(d["id"], wl.name) for d, wl in p.attached] == [(2, host.name)]
    assert host.live == {"help_for": ["0x01"]}
    assert host.live_secrets == {"help_sources": {"0x01": cameras[1]}}
    assert host.spec_hash() == before.spec_hash()  # nothing that restarts the program changed
    body = agent_spec(host)
    assert body.live == {"help_for": ["0x01"]} and "s3cret" not in repr(body.env)
    assert body.live_secrets == {"help_sources": {"0x01": cameras[1]}}
    # Kubernetes: the camera in a mounted Secret, not in the pod template (which does not roll).
    opts = KubernetesOptions(namespace="edge-ai")
    for wl in (host, before):
        wl.ai = replace(wl.ai, image_ref="registry.local/monitoring-01:01")
    assert "s3cret" not in repr(deployment_manifest(host, opts))
    assert deployment_manifest(host, opts) == deployment_manifest(before, opts)
    secret = live_secret_manifest(host, opts)
    assert secret is not None and "s3cret" in secret["stringData"]["secrets.json"]

    # The fallback: the helper edge runs no worker of that program, or not a hot_handoff one.
    for deployments, manifest in (
        ([dep(2, 2, 10, params=helper)], hot),
        ([dep(3, 2, 10), dep(2, 2, 10, params=helper)], MANIFEST),
    ):
        p = plans_for(deployments, manifest)[2]
        assert p.attached == []
        copy = next(wl for d, wl in p.workloads if d["id"] == 2)
        assert copy.secret_env["YOLO_SOURCE"] == cameras[1] and copy.live == {}
