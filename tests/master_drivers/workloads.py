"""Workloads the driver tests hand to the drivers."""
from __future__ import annotations

import hashlib

from services.master.drivers.base import AiArtifact, EdgeTarget, Workload, render_edgeconfig

EDGE1 = EdgeTarget(name="EdgeCCTV01", nid="0x01", node_name="edge-node-01", id=1)
EDGE2 = EdgeTarget(name="EdgeCCTV02", nid="0x02", node_name="edge-node-02", id=2)
REGISTRY = "127.0.0.1:5000"


def workload(edge: EdgeTarget = EDGE1, *, filename="monitoring", ai_class="01", version="01", ai_id=5,
             deployment_id=11, generation=1, env=None, resources=None, vms_port=6432, secret_env=None) -> Workload:
    digest = "sha256:" + hashlib.sha256(f"{filename}{ai_class}{version}".encode()).hexdigest()
    return Workload(
        deployment_id=deployment_id,
        edge=edge,
        ai=AiArtifact(id=ai_id, filename=filename, version=version, ai_class=ai_class, package_digest=digest,
                      image_ref=f"{REGISTRY}/{filename}-{ai_class}:{version}"),
        command=["python", "main.py"],
        env={"FUNC": "SUNNY"} if env is None else env,
        resources={"cpu": "500m", "memory": "256Mi"} if resources is None else resources,
        edgeconfig_xml=render_edgeconfig(vms_ip="127.0.0.1", vms_port=vms_port, nid=edge.nid),
        generation=generation,
        secret_env=secret_env or {},
    )


RTSP = {"RTSP_URL": "rtsp://cam-user:cam-pass-123@127.0.0.1:8554/axis-media/media.amp"}
