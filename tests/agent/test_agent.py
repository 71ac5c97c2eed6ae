"""The edge agent as a real process: packages fetched by digest from an artifact server answering
like the master, real child processes, real signals."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import psutil
import pytest

from tests.agent.helpers import (
    AGENT_AUTH,
    AGENT_TEST_ENV,
    Agent,
    agent_env,
    crasher_package,
    kill_leftovers,
    package_bytes,
    spec,
    ticker_package,
    wait_until,
    workload_processes,
)
from tests.helpers.env import OPERATOR, free_port
from tests.helpers.processes import Proc, edgectl, python_module, wait_http


def ticks(path: Path) -> dict[str, list[float]]:
    by_version: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        label, _, ts = line.partition(" ")
        by_version.setdefault(label, []).append(float(ts))
    return by_version


def running(agent: Agent, name: str, **expect) -> dict | None:
    status = agent.status(name)
    if status["state"] != "running" or status["previous"]:
        return None
    return status if all(status.get(k) == v for k, v in expect.items()) else None


def test_changes_and_reads_need_the_masters_token(agent, artifacts):
    digest = artifacts.add(ticker_package("01"))
    body = {"workloads": [spec("monitoring-01", digest, "01")]}
    anonymous = httpx.Client(base_url=agent.url, timeout=10)
    try:
        assert anonymous.put("/workloads", json=body).status_code == 401
        assert (
            anonymous.put(
                "/workloads", json=body, headers={"Authorization": "Bearer wrong-token"}
            ).status_code
            == 401
        )
        # The operator's token is not the master's: an edge box only trusts the master.
        assert anonymous.put("/workloads", json=body, headers=OPERATOR).status_code == 401
        assert anonymous.get("/workloads").status_code == 401
        assert anonymous.get("/heartbeat").status_code == 401
        assert anonymous.delete("/workloads/monitoring-01").status_code == 401
        assert anonymous.get("/healthz").status_code == 200
    finally:
        anonymous.close()
    assert agent.client.get("/workloads").json()["workloads"] == []
    assert artifacts.requests == []
    assert workload_processes(agent.workdir) == []


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_runs_the_package_command_from_its_directory(agent, artifacts, fmt):
    digest = artifacts.add(ticker_package("01", fmt))
    r = agent.client.put("/workloads", json={"workloads": [spec("monitoring-01", digest, "01")]})
    assert r.status_code == 200, r.text
    status = wait_until(lambda: running(agent, "monitoring-01"), what="monitoring-01 running")
    assert (
        status["version"] == "01"
        and status["package_digest"] == digest
        and status["deployment_id"] == 1
    )

    directory = agent.workdir / "workloads" / "monitoring-01" / f"01-{digest.split(':')[1][:12]}"
    assert (directory / "main.py").is_file()
    assert "<IP>127.0.0.1</IP>" in (directory / "edgeconfig.xml").read_text()
    (proc,) = workload_processes(agent.workdir, "monitoring-01")
    assert proc.pid == status["pid"]
    assert Path(proc.cwd()) == directory
    assert "AGENT_KEY" not in proc.environ()  # the agent's key stays with the agent
    assert (
        proc.environ()["EDGE_TOKEN"] == agent.edge_token()
    )  # the edge's own token, from the agent

    # helper_mod came from PYTHONPATH, edgeconfig.xml was readable from the working directory.
    logs = wait_until(
        lambda: (
            (
                lines := agent.client.get(
                    "/workloads/monitoring-01/logs", params={"tail": 50}
                ).json()["lines"]
            )
            and any(line.startswith("v01 ") for line in lines)
            and lines
        ),
        what="ticks in the log",
    )
    assert logs[0] == "config True"
    assert (
        len(agent.client.get("/workloads/monitoring-01/logs", params={"tail": 2}).json()["lines"])
        == 2
    )
    assert (agent.workdir / "logs" / "monitoring-01.log").read_text().startswith("config True")

    beat = agent.client.get("/heartbeat").json()
    assert beat["node"] == "edge-test-01" and beat["agent_version"]
    assert beat["memory_total_bytes"] > beat["memory_available_bytes"] > 0
    assert 0 <= beat["cpu_percent"] <= 100 * beat["cpu_count"]
    assert beat["workloads"] == {"running": 1}

    # The same set again changes nothing: same process, package not fetched twice.
    agent.client.put(
        "/workloads", json={"workloads": [spec("monitoring-01", digest, "01")]}
    ).raise_for_status()
    assert agent.status("monitoring-01")["pid"] == status["pid"]
    assert artifacts.fetches_of(digest) == 1


def test_version_change_starts_the_new_one_before_stopping_the_old(agent, artifacts, tmp_path):
    tick_file = tmp_path / "ticks.txt"
    env = {"TICK_FILE": str(tick_file)}
    d1 = artifacts.add(ticker_package("01"))
    d2 = artifacts.add(ticker_package("02"))
    agent.client.put(
        "/workloads", json={"workloads": [spec("monitoring-01", d1, "01", env=env)]}
    ).raise_for_status()
    old = wait_until(lambda: running(agent, "monitoring-01"), what="version 01 running")

    r = agent.client.put(
        "/workloads/monitoring-01", json=spec("monitoring-01", d2, "02", env=env, generation=2)
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "02"
    assert [p["version"] for p in r.json()["previous"]] == ["01"]  # the old one still serves
    new = wait_until(lambda: running(agent, "monitoring-01", version="02"), what="version 02 alone")
    assert new["pid"] != old["pid"] and new["generation"] == 2
    wait_until(
        lambda: (
            not psutil.pid_exists(old["pid"])
            or psutil.Process(old["pid"]).status() == psutil.STATUS_ZOMBIE
        ),
        what="old process gone",
    )

    seen = ticks(tick_file)
    # No gap: version 02 was ticking before version 01's last tick.
    assert min(seen["v02"]) < max(seen["v01"])
    assert [p.pid for p in workload_processes(agent.workdir, "monitoring-01")] == [new["pid"]]
    # The old version's directory is cleaned up once it is stopped.
    wait_until(
        lambda: (
            [p.name for p in (agent.workdir / "workloads" / "monitoring-01").iterdir()]
            == [f"02-{d2.split(':')[1][:12]}"]
        ),
        what="old directory removed",
    )


def test_a_killed_workload_is_restarted_and_counted(agent, artifacts):
    digest = artifacts.add(ticker_package("01"))
    agent.client.put(
        "/workloads", json={"workloads": [spec("monitoring-01", digest, "01")]}
    ).raise_for_status()
    first = wait_until(lambda: running(agent, "monitoring-01"), what="running")
    assert first["restarts"] == 0

    os.kill(first["pid"], signal.SIGKILL)
    second = wait_until(lambda: running(agent, "monitoring-01", restarts=1), what="restarted once")
    assert second["pid"] != first["pid"]
    assert second["exit_code"] == -signal.SIGKILL
    assert len(workload_processes(agent.workdir, "monitoring-01")) == 1


def test_a_crash_loop_ends_failed_with_exit_code_and_log_tail(agent, artifacts):
    digest = artifacts.add(crasher_package())
    agent.client.put(
        "/workloads", json={"workloads": [spec("crasher-00", digest, "01")]}
    ).raise_for_status()
    failed = wait_until(
        lambda: (s := agent.status("crasher-00"))["state"] == "failed" and s, what="failed"
    )
    assert failed["exit_code"] == 3
    assert failed["restarts"] == 2  # three quick failures (AGENT_CRASH_LOOP_LIMIT=3): two restarts
    assert "crash loop" in failed["reason"] and "code 3" in failed["reason"]
    assert "fatal: camera not found" in failed["log_tail"]
    assert failed["pid"] is None and workload_processes(agent.workdir) == []
    log_file = agent.workdir / "logs" / "crasher-00.log"
    assert log_file.read_text().count("starting up") == 3

    # The master re-sending the same generation does not restart it...
    agent.client.put(
        "/workloads", json={"workloads": [spec("crasher-00", digest, "01")]}
    ).raise_for_status()
    assert agent.status("crasher-00")["state"] == "failed"
    assert log_file.read_text().count("starting up") == 3
    # ...a new generation (the master asking for a redeploy) does.
    agent.client.put(
        "/workloads", json={"workloads": [spec("crasher-00", digest, "01", generation=2)]}
    ).raise_for_status()
    wait_until(
        lambda: (
            agent.status("crasher-00")["state"] == "failed"
            and log_file.read_text().count("starting up") == 6
        ),
        what="second crash loop",
    )
    assert agent.client.get("/heartbeat").json()["workloads"] == {"failed": 1}


def test_removed_workloads_are_stopped_and_gone(agent, artifacts):
    d1 = artifacts.add(ticker_package("01"))
    d2 = artifacts.add(crasher_package())
    body = {
        "workloads": [
            spec("monitoring-01", d1, "01"),
            spec("weatherai-00", d1, "01", deployment_id=2),
        ]
    }
    agent.client.put("/workloads", json=body).raise_for_status()
    wait_until(
        lambda: running(agent, "monitoring-01") and running(agent, "weatherai-00"),
        what="both running",
    )
    pids = {w["name"]: w["pid"] for w in agent.client.get("/workloads").json()["workloads"]}
    assert artifacts.fetches_of(d1) == 1  # one package, two workloads: fetched once

    # Full replace: weatherai-00 is not in the new set.
    agent.client.put(
        "/workloads", json={"workloads": [spec("monitoring-01", d1, "01")]}
    ).raise_for_status()
    assert [w["name"] for w in agent.client.get("/workloads").json()["workloads"]] == [
        "monitoring-01"
    ]
    assert not psutil.pid_exists(pids["weatherai-00"])
    assert not (agent.workdir / "workloads" / "weatherai-00").exists()
    assert agent.client.get("/workloads/weatherai-00").status_code == 404

    # One at a time.
    assert agent.client.delete("/workloads/monitoring-01").json() == {
        "name": "monitoring-01",
        "removed": True,
    }
    assert agent.client.delete("/workloads/monitoring-01").status_code == 404
    assert agent.client.get("/workloads").json()["workloads"] == []
    assert workload_processes(agent.workdir) == []
    assert json.loads((agent.workdir / "state.json").read_text())["workloads"] == []
    assert d2  # built but never asked for
    assert artifacts.fetches_of(d2) == 0


def test_a_restarted_agent_readopts_its_set_without_duplicates(tmp_path, artifacts):
    digest = artifacts.add(ticker_package("01"))
    agent = Agent(tmp_path, artifacts.url).start()
    try:
        quiet = {
            "QUIET": "1",
            "TICK_FILE": str(tmp_path / "ticks.txt"),
        }  # no stdout: outlives a killed agent
        body = {
            "workloads": [
                spec("monitoring-01", digest, "01", env=quiet),
                spec("weatherai-00", digest, "01", env=quiet, deployment_id=2),
            ]
        }
        agent.client.put("/workloads", json=body).raise_for_status()
        wait_until(
            lambda: running(agent, "monitoring-01") and running(agent, "weatherai-00"),
            what="both running",
        )
        before = {p.pid for p in workload_processes(agent.workdir)}
        assert len(before) == 2

        agent.stop(signal.SIGKILL)  # no chance to clean up: its children are orphaned
        assert {p.pid for p in workload_processes(agent.workdir)} == before

        agent.start()
        after = wait_until(
            lambda: (
                running(agent, "monitoring-01")
                and running(agent, "weatherai-00")
                and {w["name"]: w for w in agent.client.get("/workloads").json()["workloads"]}
            ),
            what="set re-adopted",
        )
        procs = workload_processes(agent.workdir)
        assert sorted(p.environ()["EDGE_AGENT_WORKLOAD"] for p in procs) == [
            "monitoring-01",
            "weatherai-00",
        ]
        assert not before & {p.pid for p in procs}  # the orphans were stopped, not doubled
        assert {after[n]["pid"] for n in after} == {p.pid for p in procs}
        assert after["weatherai-00"]["deployment_id"] == 2
        assert artifacts.fetches_of(digest) == 1  # re-adopted from the local cache
    finally:
        agent.close()
        kill_leftovers(agent.workdir)


def test_sigterm_stops_every_workload_and_keeps_the_desired_set(tmp_path, artifacts):
    digest = artifacts.add(ticker_package("01"))
    agent = Agent(tmp_path, artifacts.url).start()
    try:
        agent.client.put(
            "/workloads",
            json={
                "workloads": [
                    spec("monitoring-01", digest, "01"),
                    spec("weatherai-00", digest, "01"),
                ]
            },
        ).raise_for_status()
        wait_until(
            lambda: running(agent, "monitoring-01") and running(agent, "weatherai-00"),
            what="both running",
        )
        pids = [p.pid for p in workload_processes(agent.workdir)]
        assert len(pids) == 2

        # uvicorn re-raises the signal once its shutdown (ours included) is complete.
        assert agent.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "edge agent stopped; no workload left running" in agent.proc.log_text()
        assert workload_processes(agent.workdir) == []
        assert not any(psutil.pid_exists(pid) for pid in pids)
        assert (
            agent.workdir / "state.json"
        ).stat().st_mode & 0o777 == 0o600  # env may hold camera credentials
        saved = json.loads((agent.workdir / "state.json").read_text())
        assert [w["name"] for w in saved["workloads"]] == ["monitoring-01", "weatherai-00"]
        assert saved["children"] == []
    finally:
        agent.close()
        kill_leftovers(agent.workdir)


def test_a_package_that_does_not_match_its_digest_is_refused(agent, artifacts):
    good = ticker_package("01")
    digest = artifacts.add(good)
    artifacts.substitutes[digest] = ticker_package(
        "99"
    )  # the bytes arriving are not the ones asked for
    r = agent.client.put("/workloads", json={"workloads": [spec("monitoring-01", digest, "01")]})
    assert r.status_code == 502, r.text
    assert r.json()["error"]["field"] == "workloads[0].package_digest"
    assert "digest mismatch" in r.json()["error"]["message"]
    assert agent.client.get("/workloads").json()["workloads"] == []
    assert list((agent.workdir / "cache" / "sha256").iterdir()) == []  # nothing kept
    assert workload_processes(agent.workdir) == []

    # Once the right bytes come, the same request works.
    del artifacts.substitutes[digest]
    assert (
        agent.client.put(
            "/workloads", json={"workloads": [spec("monitoring-01", digest, "01")]}
        ).status_code
        == 200
    )


def test_all_or_nothing_when_one_package_cannot_be_had(agent, artifacts):
    digest = artifacts.add(ticker_package("01"))
    missing = "sha256:" + "0" * 64
    r = agent.client.put(
        "/workloads",
        json={
            "workloads": [spec("monitoring-01", digest, "01"), spec("weatherai-00", missing, "01")]
        },
    )
    assert r.status_code == 503, r.text
    assert r.json()["error"]["field"] == "workloads[1].package_digest"
    assert agent.client.get("/workloads").json()["workloads"] == []
    assert workload_processes(agent.workdir) == []


@pytest.mark.parametrize(
    "files, problem",
    [
        ({"main.py": "print(1)", "../escape.py": "x"}, "'..'"),
        ({"main.py": "print(1)", "/etc/evil": "x"}, "absolute path"),
    ],
)
def test_an_unsafe_package_is_refused(agent, artifacts, files, problem):
    digest = artifacts.add(package_bytes(files))
    r = agent.client.put("/workloads/evil-01", json=spec("evil-01", digest, "01"))
    assert r.status_code == 422, r.text
    assert (
        problem in r.json()["error"]["message"] and r.json()["error"]["field"] == "package_digest"
    )
    assert not (agent.workdir / "workloads" / "escape.py").exists()
    assert agent.client.get("/workloads").json()["workloads"] == []


def test_bad_specs_name_the_field(agent):
    r = agent.client.put(
        "/workloads", json={"workloads": [spec("a b", "sha256:" + "0" * 64, "01")]}
    )
    assert r.status_code == 422 and "name" in r.json()["error"]["field"]
    r = agent.client.put("/workloads", json={"workloads": [spec("m-01", "md5:abc", "01")]})
    assert r.status_code == 422 and "package_digest" in r.json()["error"]["field"]
    same = spec("m-01", "sha256:" + "0" * 64, "01")
    r = agent.client.put("/workloads", json={"workloads": [same, same]})
    assert r.status_code == 422 and "appears twice" in r.json()["error"]["message"]
    r = agent.client.put("/workloads/other", json=same)
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"


def test_runs_as_python_module_too(tmp_path, artifacts):
    port = free_port()
    env = agent_env(**AGENT_TEST_ENV)
    proc = Proc(
        python_module(
            "edge_ai.agent",
            "--node",
            "edge-m",
            "--port",
            str(port),
            "--workdir",
            str(tmp_path / "w"),
            "--master-url",
            artifacts.url,
        ),
        env=env,
        log_path=tmp_path / "agent-module.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        r = httpx.get(f"http://127.0.0.1:{port}/heartbeat", headers=AGENT_AUTH, timeout=10)
        assert r.status_code == 200 and r.json()["node"] == "edge-m"
    finally:
        assert proc.stop() in (0, -signal.SIGTERM)


def test_refuses_to_start_without_a_proper_token(tmp_path):
    env = agent_env(AGENT_KEY="short")
    proc = Proc(
        edgectl(
            "agent", "--node", "e", "--port", str(free_port()), "--workdir", str(tmp_path / "w")
        ),
        env=env,
        log_path=tmp_path / "agent-bad.log",
    )
    assert proc.popen.wait(timeout=30) == 2
    assert "AGENT_KEY" in proc.log_text() and "short" not in proc.log_text()
    proc.stop()


def test_a_command_that_cannot_start_is_failed_at_once(agent, artifacts):
    digest = artifacts.add(ticker_package("01"))
    r = agent.client.put(
        "/workloads/monitoring-01",
        json=spec("monitoring-01", digest, "01", command=["./no-such-program"]),
    )
    assert r.status_code == 200
    status = wait_until(
        lambda: (s := agent.status("monitoring-01"))["state"] == "failed" and s, what="failed"
    )
    assert "cannot start the command" in status["reason"] and status["restarts"] == 0
