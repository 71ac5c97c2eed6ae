"""edgeconfig.xml and the field's ConfigMap names, as the field's programs and operators use
them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx

from edge_ai.common.config import load_config
from services.master.reconcile.desired import plan
from shared.contracts.master import ClusterRecord
from tests.helpers.env import free_port, service_env
from tests.helpers.processes import Proc, edgectl, wait_http

# The spec's edgeconfig.xml, its placeholder address replaced by a loopback one.
FIELD_EDGECONFIG = textwrap.dedent(
    """\
    <Configuration>
        <vms>
            <IP>127.0.0.14</IP>
            <Port>6432</Port>
            <Path>usage</Path>
        </vms>
    </Configuration>
    """
)


def written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_each_program_gets_the_vms_path_it_posts_to(tmp_path):
    """Item 10: the weather AI posts to save_edgeData, the monitoring program to usage."""
    snapshot = {
        "edges": [
            {
                "id": 1,
                "name": "EdgeCCTV01",
                "nid": "0x01",
                "cluster_id": 7,
                "agent_url": "http://127.0.0.1:1",
            }
        ],
        "ai_packages": [
            {
                "id": 10,
                "filename": "weatherai",
                "version": "01",
                "ai_class": "00",
                "status": "ready",
                "package_digest": "sha256:" + "a" * 64,
                "image_ref": None,
            },
            {
                "id": 11,
                "filename": "monitoring",
                "version": "01",
                "ai_class": "01",
                "status": "ready",
                "package_digest": "sha256:" + "b" * 64,
                "image_ref": None,
            },
        ],
        "deployments": [
            {
                "id": d,
                "edge_id": 1,
                "ai_id": ai,
                "desired": "running",
                "params": {},
                "generation": 1,
                "observed": "pending",
                "observed_reason": None,
                "observed_generation": 0,
                "restarts": 0,
            }
            for d, ai in ((1, 10), (2, 11))
        ],
    }
    manifest = {"command": ["python", "main.py"]}
    plans = plan(
        snapshot,
        {7: ClusterRecord(id=7, name="c", runtime="agent")},
        {10: manifest, 11: manifest},
        vms=("127.0.0.14", 6432),
        vms_path="usage",
        token_for=lambda nid, runtime: None,
    )
    paths = {}
    for _, workload in plans[1].workloads:
        config = load_config(
            written(tmp_path, f"{workload.ai.filename}.xml", workload.edgeconfig_xml), env={}
        )
        paths[workload.ai.filename] = (config.vms_url, config.vms_path)
    assert paths == {
        "weatherai": ("http://127.0.0.14:6432", "save_edgeData"),
        "monitoring": ("http://127.0.0.14:6432", "usage"),
    }


def test_the_fields_configmap_names_reach_the_edge_programs(tmp_path):
    """Item 11: VMS_URL / VMS_PORT, the names of the field's ConfigMap, are read by the programs."""
    assert (
        load_config(written(tmp_path, "edgeconfig.xml", FIELD_EDGECONFIG), env={}).vms_url
        == "http://127.0.0.14:6432"
    )
    moved = {"VMS_URL": "127.0.0.15", "VMS_PORT": "7432"}
    config = load_config(written(tmp_path, "edgeconfig.xml", FIELD_EDGECONFIG), env=moved)
    assert config.vms_url == "http://127.0.0.15:7432" and config.vms_path == "usage"
    # Without a file: the ConfigMap alone, VMS_URL as a URL too.
    assert (
        load_config(None, env={"VMS_URL": "http://127.0.0.16", "VMS_PORT": "6432"}).vms_url
        == "http://127.0.0.16:6432"
    )
    assert (
        load_config(None, env={"VMS_URL": "https://vms.test:8443/"}).vms_url
        == "https://vms.test:8443"
    )
    # Our own names still win over the field's.
    ours = {**moved, "EDGE_VMS_URL": "http://127.0.0.17:6432"}
    assert (
        load_config(written(tmp_path, "edgeconfig.xml", FIELD_EDGECONFIG), env=ours).vms_url
        == "http://127.0.0.17:6432"
    )


def test_the_fields_vms_port_does_not_move_the_vms(db, tmp_path):
    """Item 11: VMS_PORT in the VMS's environment (a copied ConfigMap) is not its listen port."""
    field_port, listen_port = free_port(), free_port()
    env = service_env(
        db,
        VMS_PORT=str(field_port),
        VMS_URL="127.0.0.1",
        VMS_LISTEN_PORT=str(listen_port),
        EDGE_SETUP_URL=f"http://127.0.0.1:{free_port()}",
        EDGE_MIGRATE_ON_START="false",
    )
    proc = Proc(edgectl("serve", "vms"), env=env, log_path=tmp_path / "vms.log")
    try:
        wait_http(f"http://127.0.0.1:{listen_port}/readyz", proc=proc, timeout=15)
        try:
            httpx.get(f"http://127.0.0.1:{field_port}/readyz", timeout=1)
            listening_on_field_port = True
        except httpx.HTTPError:
            listening_on_field_port = False
        assert not listening_on_field_port
    finally:
        proc.stop()
