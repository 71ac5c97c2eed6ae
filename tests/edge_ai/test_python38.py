"""The edge programs on an edge's Python: 3.8 (JetPack 5), in the light environment scripts/test.sh
makes (.venv-py38: edge_ai/requirements-edge.txt, no torch).

Every module of edge_common and edge_ai imports there, the shared vocabulary behaves as on the
services' Python, and the agent runs under it a package the platform builds, whose program (run by
the agent's interpreter) posts its records. .ci/run also runs the agent's and the programs' own
tests with the edge processes under it (EDGE_PYTHON)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.agent.helpers import Agent, ArtifactServer, kill_leftovers, spec, wait_until
from tests.edge_ai.recorder import Recorder
from tests.helpers.env import EDGE_TOKEN_SECRET, free_port
from tests.helpers.processes import REPO, edgectl


def _python38() -> str:
    path = os.environ.get("EDGE_PY38") or str(REPO / ".venv-py38" / "bin" / "python")
    if not Path(path).is_file():
        pytest.skip("no Python 3.8 environment (scripts/test.sh makes .venv-py38 where one exists)")
    return path


@pytest.fixture(scope="module")
def py38() -> str:
    return _python38()


def run38(py38: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [py38, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_is_python_38(py38):
    proc = run38(py38, "import sys; print('%d.%d' % sys.version_info[:2])")
    assert proc.returncode == 0 and proc.stdout.strip() == "3.8", proc.stderr


# The YOLO worker's own requirements (its package's requirements.txt), not in the light
# environment: its modules may stop at one of these, and only at these.
YOLO_HEAVY = ("numpy", "cv2", "onnxruntime", "torch", "ultralytics")


def test_every_edge_module_imports_on_python_38(py38):
    proc = run38(
        py38,
        "import importlib, pkgutil, edge_ai, edge_common\n"
        "names = [i.name for p in (edge_common, edge_ai)\n"
        "         for i in pkgutil.walk_packages(p.__path__, p.__name__ + '.')\n"
        "         if not i.name.endswith('__main__')]\n"
        "for name in names:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        print(name, exc.name)\n"
        "print(len(names))",
    )
    assert proc.returncode == 0, proc.stderr
    *missing, count = proc.stdout.splitlines()
    assert int(count) > 30
    for line in missing:
        module, needs = line.split()
        assert module.startswith("edge_ai.yolo.") and needs in YOLO_HEAVY, line


def test_the_wire_vocabulary_is_the_same_on_python_38(py38):
    code = (
        "import json\n"
        "from edge_common.vocabulary import AnalysisRoute, Param, WorkloadState, live_params\n"
        "s = WorkloadState('stopped')\n"
        "print(json.dumps([str(s), f'{AnalysisRoute.EDGE}', s == 'stopped',\n"
        "    json.loads(json.dumps({Param.ANALYSIS_ROUTE: AnalysisRoute.SERVER})),\n"
        "    live_params({'focus_until': 'x', 'MODE': 'a', Param.ANALYSIS_EDGE: '0x02'})]))"
    )
    proc = run38(py38, code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [
        "stopped",
        "edge",
        True,
        {"analysis_route": "server"},
        {"focus_until": "x", "analysis_edge": "0x02"},
    ]


def test_the_agent_reads_a_toml_manifest_on_python_38(py38, tmp_path):
    """A package whose manifest is aipackage.toml: the agent (tomli, the same parser on every
    Python) reads its requirements and wheelhouse as from aipackage.yaml."""
    (tmp_path / "wheels").mkdir()
    (tmp_path / "aipackage.toml").write_text(
        'name = "counter"\nrequirements = ["msgpack==1.0.8", "pyyaml>=6"]\nwheelhouse = "wheels"\n'
    )
    code = (
        "import json, pathlib, sys\n"
        "from edge_ai.agent.deps import read_requirements\n"
        f"reqs, folder = read_requirements(pathlib.Path({str(tmp_path)!r}))\n"
        "print(json.dumps([reqs, str(folder), '%d.%d' % sys.version_info[:2]]))"
    )
    proc = run38(py38, code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [
        ["msgpack==1.0.8", "pyyaml>=6"],
        str((tmp_path / "wheels").resolve()),
        "3.8",
    ]


def test_the_agent_runs_a_built_package_on_python_38(py38, tmp_path):
    """The monitoring package as the platform builds it, fetched by digest by an agent running
    under Python 3.8; its program runs under the agent's interpreter and posts usage records."""
    from shared.edge_tokens import issue_edge_token

    out = tmp_path / "packages"
    built = subprocess.run(
        edgectl("edge", "build-packages", "--out", str(out), "--only", "monitoring-02"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    archive = out / "monitoring-02-01.tar.gz"
    vms = Recorder(free_port()).start()
    artifacts = ArtifactServer()
    digest = artifacts.add(archive.read_bytes())
    agent = Agent(tmp_path, artifacts.url, python=py38).start()
    try:
        assert agent.client.get("/openapi.json").status_code == 200
        nid = "0x38"
        edgeconfig = (
            f"<Configuration><vms><IP>127.0.0.1</IP><Port>{vms.port}</Port><Path>usage</Path>"
            f"</vms><node><NID>{nid}</NID><Name>edge-38</Name>"
            f"<Token>{issue_edge_token(nid, EDGE_TOKEN_SECRET)}</Token></node></Configuration>"
        )
        manifest = yaml.safe_load(
            (REPO / "edge_ai" / "packages" / "monitoring-02" / "aipackage.yaml").read_text()
        )
        body = spec(
            "monitoring-02",
            digest,
            manifest["version"],
            command=manifest["command"],
            env=manifest.get("env") or {},
            edgeconfig=edgeconfig,
        )
        r = agent.client.put("/workloads/monitoring-02", json=body)
        assert r.status_code in (200, 201, 202), r.text
        deadline = time.monotonic() + 60
        while len(vms.of_kind("usage")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        usage = vms.of_kind("usage")
        assert len(usage) >= 2, agent.status("monitoring-02")
        assert {r["nid"] for r in usage} == {nid}
        wait_until(lambda: agent.status("monitoring-02")["state"] == "running", what="running")
        pid = agent.status("monitoring-02")["pid"]
        assert "python3.8" in psutil.Process(pid).exe()  # the program ran on 3.8 too
    finally:
        agent.close()
        kill_leftovers(agent.workdir)
        artifacts.close()
        vms.stop()


def test_the_agent_wheel_is_complete_and_says_python_38(py38, tmp_path):
    """The agent as a box installs it (scripts/test.sh installs its wheel into .venv-py38): with
    neither the checkout nor PYTHONPATH on the path, it imports, its metadata says 3.8+, and its
    command answers."""
    from edge_ai.agent import AGENT_VERSION

    isolated = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import importlib.metadata as m, edge_ai, edge_ai.agent.app, edge_ai.agent.puller\n"
        "print(m.version('edge-agent'), m.metadata('edge-agent')['Requires-Python'])\n"
        "print(edge_ai.__file__)"
    )
    proc = subprocess.run(
        [py38, "-I", "-c", code], cwd=tmp_path, env=isolated, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    version_line, where = proc.stdout.splitlines()
    assert version_line == f"{AGENT_VERSION} >=3.8"
    assert Path(where).parent.parent.name == "site-packages"  # the wheel's copy, not the checkout
    command = Path(py38).parent / "edge-agent"
    helped = subprocess.run(
        [str(command), "--help"], cwd=tmp_path, env=isolated, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--master-url" in helped.stdout, helped.stderr


def test_an_older_python_refuses_the_agent_wheel(tmp_path):
    from edge_ai.packages.agent_wheel import build_agent_wheel

    older = sorted(Path.home().glob(".pyenv/versions/3.7*/bin/python"))
    if not older:
        pytest.skip("no Python 3.7 on this machine")
    wheel = build_agent_wheel(tmp_path / "dist")
    target = str(tmp_path / "site")
    install = ["-m", "pip", "install", "--no-deps", "--no-index", "--target", target, str(wheel)]
    proc = subprocess.run(
        [str(older[-1]), *install],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert ">=3.8" in proc.stderr + proc.stdout
