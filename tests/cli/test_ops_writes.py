"""The operator's write and watch verbs of ``edgectl`` as real processes against setup, the
master, the optimizer and the VMS running as real processes on the test Postgres; the one-line
errors (service down, wrong token, bad setting) from the real ``edgectl`` process."""

from __future__ import annotations

import json
import os
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


def _env(stack: dict[str, str], **extra: str) -> dict[str, str]:
    return service_env(
        "postgresql+asyncpg://unused/unused",
        EDGE_SETUP_URL=stack["setup"],
        EDGE_MASTER_URL=stack["master"],
        EDGE_OPTIMIZER_URL=stack["optimizer"],
        EDGE_VMS_URL=stack["vms"],
        **extra,
    )


def cli(stack: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        edgectl(*args),
        env=_env(stack, **extra),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    return out.stdout


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgectl: "), out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:6]
    return {"edge": f"w-edge-{suffix}", "nid": f"WNID{suffix}"}


def test_edges_add_show_by_name_and_nid_then_remove(stack, names):
    out = ok(cli(stack, "edges", "add", names["edge"], "--nid", names["nid"], "--analysis"))
    assert f"{names['edge']} (nid {names['nid']}) registered" in out
    assert "token (shown once): " in out
    # setup itself answers /edges/{edge} by id, name and nid
    with httpx.Client(base_url=stack["setup"], headers=OPERATOR, timeout=30) as c:
        by_name = c.get(f"/edges/{names['edge']}").json()
        assert c.get(f"/edges/{names['nid']}").json()["id"] == by_name["id"]
        assert c.get(f"/edges/{by_name['id']}").json()["name"] == names["edge"]
        patched = c.patch(f"/edges/{names['nid']}", json={"description": "by nid"})
        assert patched.status_code == 200 and patched.json()["description"] == "by nid"
        missing = c.get("/edges/no-such-edge")
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "edge"
    shown = json.loads(ok(cli(stack, "edges", "show", names["nid"], "--json")))
    assert shown["isSupportAnnalysis"] == "YES" and shown["description"] == "by nid"

    again = one_line_error(cli(stack, "edges", "add", names["edge"], "--nid", "OTHER1"))
    assert "setup answered 409" in again

    temp = f"{names['edge']}-temp"
    ok(cli(stack, "edges", "add", temp, "--json"))
    assert f"edge {temp} removed" in ok(cli(stack, "edges", "remove", temp, "--yes"))
    gone = one_line_error(cli(stack, "edges", "show", temp))
    assert temp in gone


def test_ai_list_show_remove_and_deployments_add_watch_remove(stack, names):
    with httpx.Client(base_url=stack["setup"], headers=OPERATOR, timeout=30) as c:
        ai = c.post(
            "/ai-packages", json={"filename": "weatherai", "version": "07", "ai_class": "00"}
        )
        assert ai.status_code == 201, ai.text
        spare = c.post("/ai-packages", json={"filename": "yolo", "version": "07", "ai_class": "00"})
        assert spare.status_code == 201, spare.text
    ai_id, spare_id = str(ai.json()["id"]), str(spare.json()["id"])

    table = ok(cli(stack, "ai", "list"))
    header = table.strip().splitlines()[1]
    for column in ("ID", "FILENAME", "VERSION", "CLASS", "STATUS", "IMAGE"):
        assert column in header, table
    assert "weatherai" in table
    listed = json.loads(ok(cli(stack, "ai", "list", "--json")))
    assert ai.json()["id"] in [a["id"] for a in listed["items"]]
    shown = ok(cli(stack, "ai", "show", ai_id))
    assert "weatherai" in shown and "FIELD" in shown
    assert json.loads(ok(cli(stack, "ai", "show", ai_id, "--json")))["version"] == "07"

    added = ok(cli(stack, "deployments", "add", names["edge"], ai_id))
    assert "weatherai on edge" in added and "desired running" in added
    [dep] = json.loads(ok(cli(stack, "deployments", "list", "--edge", names["nid"], "--json")))[
        "items"
    ]
    watched = ok(cli(stack, "deployments", "watch", "--edge", names["edge"], "--timeout", "0"))
    assert f"deployment {dep['id']} " in watched and "desired running" in watched
    as_lines = ok(cli(stack, "deployments", "watch", "--timeout", "0", "--json"))
    assert dep["id"] in [json.loads(line)["id"] for line in as_lines.splitlines()]
    unsettled = cli(stack, "deployments", "watch", "--until-settled", "--timeout", "0")
    assert unsettled.returncode == 1  # nothing observed it (no master pass here)

    busy = one_line_error(cli(stack, "ai", "remove", ai_id, "--yes"))
    assert "answered 409" in busy  # deployed: refused

    removed = ok(cli(stack, "deployments", "remove", str(dep["id"])))
    assert f"deployment {dep['id']}: desired removed" in removed
    assert f"AI {spare_id} removed" in ok(cli(stack, "ai", "remove", spare_id, "--yes"))
    assert json.loads(ok(cli(stack, "ai", "show", spare_id, "--json")))["status"] == "removed"


def test_pin_unpin_optimizer_controls_and_rollouts(stack, names):
    pinned = ok(cli(stack, "pin", names["nid"], "--reason", "maintenance"))
    assert "pinned" in pinned
    assert json.loads(ok(cli(stack, "explain", names["edge"], "--json")))["pinned"] is True
    assert f"edge {names['edge']} unpinned" in ok(cli(stack, "unpin", names["edge"]))
    not_pinned = one_line_error(cli(stack, "unpin", names["edge"]))
    assert "is not pinned" in not_pinned

    assert "optimizer: paused" in ok(cli(stack, "optimizer", "pause"))
    assert json.loads(ok(cli(stack, "optimizer", "status", "--json")))["paused"] is True
    assert "optimizer: running" in ok(cli(stack, "optimizer", "resume"))
    assert "dry run on" in ok(cli(stack, "optimizer", "dry-run", "on"))
    assert json.loads(ok(cli(stack, "optimizer", "dry-run", "off", "--json")))["dry_run"] is False
    bad = cli(stack, "optimizer", "dry-run", "maybe")
    assert bad.returncode == 2 and "say on or off" in bad.stderr

    table = ok(cli(stack, "rollouts", "list"))
    assert "FILENAME" in table and "STATUS" in table and "WAVE" in table
    assert isinstance(json.loads(ok(cli(stack, "rollouts", "list", "--json"))), list)
    missing = one_line_error(cli(stack, "rollouts", "pause", "999999"))
    assert "optimizer answered 404" in missing and "no rollout 999999" in missing
    missing = one_line_error(cli(stack, "rollouts", "rollback", "999999"))
    assert "optimizer answered 404" in missing and "no rollout 999999" in missing


def test_decisions_watch_and_nodes_series(stack, names):
    listed = json.loads(ok(cli(stack, "decisions", "list", "--json", "--limit", "3")))["items"]
    watched = ok(cli(stack, "decisions", "watch", "--last", "3", "--timeout", "0"))
    assert len(watched.splitlines()) == len(listed)
    for d in listed:
        assert d["action"] in watched

    usage = {"nid": names["nid"], "cpu": 33.5, "memory": 41, "func": "SUNNY"}
    r = httpx.post(f"{stack['vms']}/usage", json=usage, headers=OPERATOR, timeout=30)
    assert r.status_code < 300, r.text
    series = json.loads(ok(cli(stack, "nodes", "series", names["edge"], "--json")))
    assert series["nid"] == names["nid"] and series["points"]
    assert any(p.get("cpu") == 33.5 for p in series["points"]), series
    table = ok(cli(stack, "nodes", "series", names["nid"], "--step", "5m"))
    assert "CPU" in table and "33.5" in table
    unknown = one_line_error(cli(stack, "nodes", "series", "no-such-node"))
    assert "vms answered 404" in unknown and "no-such-node" in unknown


def test_errors_are_one_line_service_down_wrong_token_bad_setting(stack):
    down = dict(stack, optimizer="http://127.0.0.1:9", master="http://127.0.0.1:9")
    for args in (("optimizer", "pause"), ("rollouts", "list"), ("ai", "list"), ("pin", "x")):
        line = one_line_error(cli(down, *args))
        assert "cannot reach" in line and "127.0.0.1:9" in line, line

    for args in (("edges", "add", "nope"), ("optimizer", "pause"), ("ai", "show", "1")):
        line = one_line_error(cli(stack, *args, EDGE_OPERATOR_TOKEN="not-the-token-0123456789"))
        assert "answered 401" in line, line

    # a bad setting: one line naming it; --debug shows the trace
    bad = cli(stack, "up", "--plain", EDGE_UP_AGENT_PORTS="16101,lots")
    line = one_line_error(bad)
    assert "bad setting EDGE_UP_AGENT_PORTS" in line and "'lots'" in line
    traced = cli(stack, "--debug", "up", "--plain", EDGE_UP_AGENT_PORTS="16101,lots")
    assert traced.returncode != 0 and "Traceback" in traced.stderr


def test_up_accepts_agent_ports_as_a_comma_list(tmp_path):
    """The list form parses (the JSON form too); the stack settings are what `up` reads."""
    code = "from edgectl.stack.config import StackSettings as S; print(S().agent_ports)"
    for value in ("16101,16102", "[16101, 16102]", " 16101 , 16102 "):
        env = dict(os.environ, EDGE_UP_AGENT_PORTS=value, PYTHONPATH=str(REPO))
        out = subprocess.run(
            [edgectl()[0], "-c", code],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.stdout.strip() == "(16101, 16102)", out.stderr


def test_clusters_masters_conditions_policies_and_an_edge_with_gps(stack, names):
    """The registry and the optimizer's settings from the CLI; explain names what keeps policies
    from acting for an edge."""
    suffix = names["nid"][-6:].lower()
    cluster, master = f"c-{suffix}", f"m-{suffix}"
    created = json.loads(
        ok(cli(stack, "clusters", "add", cluster, "--runtime", "agent-pull", "--json"))
    )
    cid = str(created["id"])
    listed = ok(cli(stack, "clusters", "list"))
    assert cluster in listed and "agent-pull" in listed
    ok(cli(stack, "masters", "add", master, "--url", "http://127.0.0.1:9", "--cluster", cid))
    assert master in ok(cli(stack, "masters", "list"))
    shown = json.loads(ok(cli(stack, "masters", "show", master, "--json")))
    assert shown["state"] == "record" and shown["cluster_id"] == int(cid)
    assert "no master with id or name 'nope'" in one_line_error(
        cli(stack, "masters", "show", "nope")
    )

    # The result-code -> condition map, merged and validated.
    ok(cli(stack, "conditions", "set", "7=HAZY", "--ai-class", "HAZY=07"))
    mapping = json.loads(ok(cli(stack, "conditions", "show", "--json")))
    assert mapping["codes"]["7"] == "HAZY" and mapping["ai_classes"]["HAZY"] == "07"
    assert "upper-case word" in one_line_error(cli(stack, "conditions", "set", "8=hazy"))
    ok(cli(stack, "conditions", "set", "--remove", "7"))
    assert "7" not in json.loads(ok(cli(stack, "conditions", "show", "--json")))["codes"]

    # A policy's settings at run time: validated, persisted, logged as changed from edgectl.
    focus = json.loads(
        ok(cli(stack, "policies", "set", "focus", "ttl_s=120", 'classes=["person"]', "--json"))
    )
    assert focus["effective"]["ttl_s"] == 120 and focus["effective"]["classes"] == ["person"]
    assert "ttl_s" in one_line_error(cli(stack, "policies", "set", "focus", "ttl_s=-1"))
    # A misspelled setting, or one of another policy, is refused naming it; nothing is sent.
    assert "tll_s" in one_line_error(cli(stack, "policies", "set", "focus", "tll_s=60"))
    assert "hysteresis_samples" in one_line_error(
        cli(stack, "policies", "set", "focus", "hysteresis_samples=5")
    )
    assert "no policy 'nope'" in one_line_error(cli(stack, "policies", "set", "nope", "x=1"))
    [change] = json.loads(ok(cli(stack, "policies", "changes", "--limit", "1", "--json")))
    assert change["changed_by"] == "operator (edgectl)"
    assert change["changes"] == {"ttl_s": 120, "classes": ["person"]}
    assert "120" in ok(cli(stack, "policies", "show", "focus"))
    ok(cli(stack, "policies", "reset", "focus"))

    # An edge with its position, capacity, node and time zone; one without a position.
    placed, unplaced = f"g-edge-{suffix}", f"n-edge-{suffix}"
    ok(
        cli(
            stack,
            *("edges", "add", placed, "--cluster", cid, "--gps", "37.5665,126.978"),
            *("--capacity", "cpu=4,memory_mb=2048", "--node-name", "node-a"),
            *("--time-zone", "Asia/Seoul", "--analysis"),
        )
    )
    edge = json.loads(ok(cli(stack, "edges", "show", placed, "--json")))
    assert edge["gps"] == {"latitude": 37.5665, "longitude": 126.978}
    assert edge["capacity"]["cpu"] == 4 and edge["capacity"]["memory_mb"] == 2048
    assert (edge["node_name"], edge["time_zone"]) == ("node-a", "Asia/Seoul")
    ok(cli(stack, "edges", "edit", placed, "--gps", "37.6,127.1", "--node-name", "node-b"))
    edge = json.loads(ok(cli(stack, "edges", "show", placed, "--json")))
    assert edge["gps"]["latitude"] == 37.6 and edge["node_name"] == "node-b"
    assert cli(stack, "edges", "add", "x", "--gps", "north").returncode == 2  # a usage error
    ok(cli(stack, "edges", "add", unplaced, "--cluster", cid))

    blocked = {
        name: {
            b["blocker"] for b in json.loads(ok(cli(stack, "explain", name, "--json")))["blocked"]
        }
        for name in (placed, unplaced)
    }
    assert blocked[placed] == {"no_analysis_ai"}
    assert blocked[unplaced] == {"no_gps", "no_analysis_support", "no_analysis_ai"}
    assert "no GPS position" in ok(cli(stack, "explain", unplaced))

    for name in (placed, unplaced):
        ok(cli(stack, "edges", "remove", name, "--yes"))
    ok(cli(stack, "masters", "remove", master, "--yes"))
    ok(cli(stack, "clusters", "remove", cluster, "--yes"))
    assert cluster not in ok(cli(stack, "clusters", "list"))
