"""``edgectl edges/deployments/decisions/explain/nodes`` as real processes against setup, the
optimizer and the VMS running as real processes on the test Postgres."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.env import OPERATOR, service_env
from tests.helpers.processes import REPO, edgectl
from tests.security.stack import running_services


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from running_services(tmp_path_factory)


@pytest.fixture(scope="module")
def seeded(stack: dict[str, str]) -> dict[str, object]:
    """One cluster, one edge, one AI and a deployment of it on the edge, made through setup."""
    suffix = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=stack["setup"], headers=OPERATOR, timeout=30) as c:
        cluster = c.post("/clusters", json={"name": f"cli-{suffix}"})
        assert cluster.status_code == 201, cluster.text
        edge = c.post(
            "/edges",
            json={
                "name": f"cli-edge-{suffix}",
                "type": 1,
                "gps": {"latitude": "37.57", "longitude": "126.98"},
                "address": "1599 Sangam-dong, Mapo-gu, Seoul",
                "ip": "127.0.0.1",
                "isSupportAnnalysis": "YES",
                "url": "rtsp://user:pass@127.0.0.1/axis-media/media.amp",
                "description": "edge for the CLI tests",
                "nid": f"CLINID{suffix}",
                "cluster_id": cluster.json()["id"],
            },
        )
        assert edge.status_code == 201, edge.text
        ai = c.post(
            "/ai-packages",
            json={"filename": "monitoring", "version": "01", "ai_class": "00"},
        )
        assert ai.status_code == 201, ai.text
        dep = c.post("/deployments", json={"edge_id": edge.json()["id"], "ai_id": ai.json()["id"]})
        assert dep.status_code == 201, dep.text
    return {"edge": edge.json(), "deployment": dep.json()}


def cli(stack: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = service_env(
        "postgresql+asyncpg://unused/unused",
        EDGE_SETUP_URL=stack["setup"],
        EDGE_OPTIMIZER_URL=stack["optimizer"],
        EDGE_VMS_URL=stack["vms"],
    )
    return subprocess.run(
        edgectl(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    return out.stdout


def test_edges_list_and_show_by_id_name_and_nid(stack, seeded):
    edge = seeded["edge"]
    table = ok(cli(stack, "edges", "list"))
    assert "NAME" in table and "NID" in table and "STATUS" in table
    assert edge["name"] in table and edge["nid"] in table
    listed = json.loads(ok(cli(stack, "edges", "list", "--json")))
    assert [e["id"] for e in listed["items"]] == [edge["id"]]

    for ref in (str(edge["id"]), edge["name"], edge["nid"]):
        shown = ok(cli(stack, "edges", "show", ref))
        assert "FIELD" in shown and "VALUE" in shown and edge["nid"] in shown, ref
        assert json.loads(ok(cli(stack, "edges", "show", ref, "--json")))["id"] == edge["id"]
    # the camera credentials stay masked
    assert "user:pass" not in ok(cli(stack, "edges", "show", edge["name"]))


def test_unknown_edge_is_one_clear_line_and_a_non_zero_exit(stack, seeded):
    for args in (
        ("edges", "show", "no-such-edge"),
        ("edges", "show", "999999"),
        ("deployments", "list", "--edge", "no-such-edge"),
        ("decisions", "list", "--edge", "no-such-edge"),
        ("explain", "no-such-edge"),
    ):
        out = cli(stack, *args)
        assert out.returncode == 1, args
        assert "Traceback" not in out.stderr and out.stdout == "", args
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and args[-1] in lines[0], out.stderr
        assert lines[0].startswith("edgectl: "), out.stderr


def test_service_down_is_one_line(stack):
    env_stack = dict(stack, setup="http://127.0.0.1:9")
    out = cli(env_stack, "edges", "list")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("edgectl: cannot reach setup at http://127.0.0.1:9")
    assert len(out.stderr.strip().splitlines()) == 1


def test_deployments_list(stack, seeded):
    edge, dep = seeded["edge"], seeded["deployment"]
    table = ok(cli(stack, "deployments", "list", "--edge", edge["name"]))
    assert "FILENAME" in table and "DESIRED" in table and "OBSERVED" in table
    assert "monitoring" in table
    body = json.loads(ok(cli(stack, "deployments", "list", "--edge", edge["nid"], "--json")))
    assert [d["id"] for d in body["items"]] == [dep["id"]]
    everything = json.loads(ok(cli(stack, "deployments", "list", "--json")))
    assert dep["id"] in [d["id"] for d in everything["items"]]


def test_decisions_list_explain_and_nodes_state(stack, seeded):
    edge = seeded["edge"]
    table = ok(cli(stack, "decisions", "list", "--edge", edge["name"], "--limit", "5"))
    assert "POLICY" in table and "ACTION" in table and "OUTCOME" in table
    body = json.loads(ok(cli(stack, "decisions", "list", "--json", "--limit", "5")))
    assert body["limit"] == 5 and isinstance(body["items"], list)

    explained = ok(cli(stack, "explain", edge["nid"]))
    assert f"Edge {edge['id']} {edge['name']} (nid {edge['nid']})" in explained
    assert "Deployments" in explained and "monitoring" in explained
    assert not explained.lstrip().startswith("{")
    as_json = json.loads(ok(cli(stack, "explain", str(edge["id"]), "--json")))
    assert as_json["edge_id"] == edge["id"] and as_json["deployments"]

    usage = {"nid": edge["nid"], "cpu": 12.5, "memory": 40, "func": "SUNNY"}
    r = httpx.post(f"{stack['vms']}/usage", json=usage, headers=OPERATOR, timeout=30)
    assert r.status_code < 300, r.text
    state = ok(cli(stack, "nodes", "state"))
    assert "12.5" in state
    assert "NID" in state and "CONDITION" in state and edge["nid"] in state
    nodes = json.loads(ok(cli(stack, "nodes", "state", "--json")))
    assert edge["nid"] in [n["nid"] for n in nodes["items"]]


def test_wrong_token_is_one_line_with_the_service_message(stack, seeded):
    env = service_env(
        "postgresql+asyncpg://unused/unused",
        EDGE_SETUP_URL=stack["setup"],
        EDGE_OPTIMIZER_URL=stack["optimizer"],
        EDGE_VMS_URL=stack["vms"],
        EDGE_OPERATOR_TOKEN="not-the-token-0123456789",
    )
    for args in (("edges", "list"), ("decisions", "list"), ("nodes", "state")):
        out = subprocess.run(
            edgectl(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=120
        )
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 1 and len(lines) == 1, out.stderr
        assert "answered 401" in lines[0] and "Traceback" not in out.stderr, lines
