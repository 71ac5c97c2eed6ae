"""Dependencies on the agent path (issue 22 item 2): a field folder whose Dockerfile does
`RUN pip install -r requirements.txt` is packed with its wheels (`edgectl ai pack`), uploaded to
the master as the field does, deployed through setup to an edge agent (a real process) and runs
there with its dependency installed from the shipped wheels, no package index reachable; a
dependency that cannot be installed fails the deployment with pip's message, no process started.
A package with native code is packed per architecture (`--platform linux/arm64 --platform
linux/amd64`): the agent installs its own architecture's wheels, and the master refuses a package
whose native code is for another architecture than the edge's, with the reason in the deployment.
setup, the master and the agent are processes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from edge_ai.agent.deps import DependencyError, ensure_environment, wheel_folders
from edge_common.platforms import architecture
from tests.agent.helpers import Agent, kill_leftovers, wait_until, workload_processes
from tests.helpers.env import OPERATOR, SERVICE, free_port, master_env, service_env
from tests.helpers.processes import REPO, edgectl, start_service
from tests.helpers.wheels import make_wheel

PROGRAM = """import time
import fielddep
print("fielddep", fielddep.VALUE, fielddep.__file__, flush=True)
while True:
    time.sleep(1)
"""
# The "native" dependency: a wheel per machine (tagged for it), each saying which it is.
ARCH_PROGRAM = """import time
import archprobe
print("archprobe", archprobe.ARCH, archprobe.__file__, flush=True)
while True:
    time.sleep(1)
"""
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
HOST = architecture()  # the agent's: this machine's
FOREIGN = "arm64" if HOST == "amd64" else "amd64"


def site_wheels(folder: Path) -> Path:
    """The wheels an index would have: fielddep (pure) and archprobe for two machines."""
    make_wheel(folder, "fielddep", "1.0", {"fielddep/__init__.py": "VALUE = 'shipped'\n"})
    for arch, machine in MACHINES.items():
        files = {"archprobe.py": f"ARCH = {arch!r}\n"}
        make_wheel(folder, "archprobe", "1.0", files, tag=f"py3-none-manylinux2014_{machine}")
    return folder


def pack(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*edgectl("ai", "pack", str(folder), *args)],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def field_folder(root: Path, name: str, requirement: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text(
        "FROM python:3.11-slim\nWORKDIR /app\nCOPY requirements.txt .\n"
        "RUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\n"
        'CMD ["python", "main.py"]\n'
    )
    (folder / "requirements.txt").write_text(f"# the field's pins\n{requirement}\n")
    (folder / "main.py").write_text(ARCH_PROGRAM if "archprobe" in requirement else PROGRAM)
    return folder


@pytest.fixture
def platform(db, tmp_path):
    setup_port, master_port = free_port(), free_port()
    urls = {"setup": f"http://127.0.0.1:{setup_port}", "master": f"http://127.0.0.1:{master_port}"}
    common = dict(
        EDGE_SETUP_URL=urls["setup"],
        EDGE_MASTER_URL=urls["master"],
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
    )
    (tmp_path / "pk").mkdir()
    setup = start_service(
        "setup", env=service_env(db, **common), port=setup_port, tmp_path=tmp_path
    )
    master = start_service(
        "master",
        port=master_port,
        tmp_path=tmp_path,
        env=master_env(db, tmp_path, **common),
    )
    try:
        yield urls
    finally:
        master.stop()
        setup.stop()


@pytest.mark.skipif(HOST not in MACHINES, reason=f"no test wheels for {HOST} machines")
def test_a_field_folder_runs_on_an_agent_with_its_dependency_from_wheels_in_the_package(
    tmp_path, platform
):
    packages = tmp_path / "pk"
    shipped = field_folder(packages, "fieldapp", "fielddep==1.0")
    # The dependency exists only as a wheel in a folder (no index has it); `edgectl ai pack`
    # downloads it into the package where an index (here: that folder) is reachable.
    # Packed for the field's edges and this machine: pure Python, one set of wheels for all.
    local = ["--no-index", "--find-links", str(site_wheels(tmp_path / "site-wheels"))]
    both = ["--platform", "linux/arm64", "--platform", "linux/amd64", "--python", "3.8"]
    packed = pack(shipped, *both, *local)
    assert packed.returncode == 0, packed.stderr
    assert [p.name for p in (shipped / "wheels").iterdir()] == ["fielddep-1.0-py3-none-any.whl"]
    field_folder(packages, "brokenapp", "notshipped==2.0")  # no wheels, no index
    # Native code, packed for both architectures (a folder each); and for the other one only.
    packed = pack(field_folder(packages, "archapp", "archprobe==1.0"), *both, *local)
    assert packed.returncode == 0, packed.stderr
    assert sorted(
        p.relative_to(packages / "archapp" / "wheels").as_posix()
        for p in (packages / "archapp" / "wheels").rglob("*.whl")
    ) == [
        f"{arch}/archprobe-1.0-py3-none-manylinux2014_{machine}.whl"
        for arch, machine in MACHINES.items()
    ]
    assert packed.returncode == 0, packed.stderr
    foreign = ["--platform", f"linux/{FOREIGN}"]
    packed = pack(field_folder(packages, "foreignapp", "archprobe==1.0"), *foreign, *local)
    assert packed.returncode == 0, packed.stderr

    setup = httpx.Client(base_url=platform["setup"], headers=OPERATOR, timeout=30)
    master = httpx.Client(base_url=platform["master"], headers=OPERATOR, timeout=120)
    agent_port = free_port()
    cluster = setup.post("/clusters", json={"name": "lan", "runtime": "agent"}).json()
    r = setup.post(
        "/edges",
        json={
            "name": "edge-01",
            "nid": "0x01",
            "cluster_id": cluster["id"],
            "agent_url": f"http://127.0.0.1:{agent_port}",
        },
    )
    assert r.status_code == 201, r.text
    edge = r.json()
    # No index reachable from the agent: none configured, and the box's pip settings ignored.
    agent = Agent(
        tmp_path,
        platform["master"],
        node="edge-01",
        port=agent_port,
        extra_env={
            "AGENT_EDGE_TOKEN": edge["token"],
            "PIP_INDEX_URL": f"http://127.0.0.1:{free_port()}/simple",
        },
    ).start()
    try:
        ais = {}
        for name in ("fieldapp", "brokenapp", "archapp", "foreignapp"):
            r = master.post(
                "/upload_edgeAI", json={"filename": name, "version": "01", "ai_class": "01"}
            )
            assert r.status_code == 200 and r.json()["code"] == "0000", r.text
            built = master.post(
                f"/ai-packages/{r.json()['aid']}/build?wait=true", headers=SERVICE
            ).json()["ai"]
            assert built["status"] == "ready", built
            ais[name] = built
        # The Dockerfile's `RUN pip install -r requirements.txt`, read into the manifest.
        manifest = ais["fieldapp"]["manifest"]
        assert manifest["requirements"] == ["fielddep==1.0"]
        assert manifest["wheelhouse"] == "wheels"
        assert ais["brokenapp"]["manifest"]["requirements"] == ["notshipped==2.0"]
        # What the wheels say, recorded at upload: pure Python runs anywhere.
        platforms = {
            name: (ai["manifest"]["architectures"], ai["manifest"]["native_code"])
            for name, ai in ais.items()
        }
        assert platforms == {
            "fieldapp": ([], False),
            "brokenapp": ([], False),
            "archapp": (["amd64", "arm64"], True),
            "foreignapp": ([FOREIGN], True),
        }

        r = setup.post("/deployments", json={"edge_id": edge["id"], "ai_id": ais["fieldapp"]["id"]})
        assert r.status_code == 201, r.text
        summary = master.post("/reconcile?wait=true", headers=SERVICE).json()
        assert summary["state"] == "ok", summary
        (proc,) = wait_until(
            lambda: workload_processes(agent.workdir, "fieldapp-01"), what="the workload"
        )
        log = agent.workdir / "logs" / "fieldapp-01.log"
        line = wait_until(
            lambda: next(
                (x for x in log.read_text().splitlines() if x.startswith("fielddep ")), None
            ),
            what="the program's line",
        )
        # Imported from the agent's environment for this package, installed from the wheel.
        _, value, where = line.split(" ", 2)
        assert value == "shipped" and Path(where).is_relative_to(agent.workdir / "envs")

        # A dependency nowhere to be had: the deployment fails with pip's message, no process.
        r = setup.post(
            "/deployments", json={"edge_id": edge["id"], "ai_id": ais["brokenapp"]["id"]}
        )
        assert r.status_code == 201, r.text
        master.post("/reconcile?wait=true", headers=SERVICE)
        failed = wait_until(
            lambda: next(
                d
                for d in setup.get(f"/deployments?edge_id={edge['id']}").json()["items"]
                if d["ai_id"] == ais["brokenapp"]["id"] and d["observed"] == "failed"
            ),
            what="the failed deployment",
        )
        assert "notshipped==2.0" in failed["observed_reason"], failed
        assert "No matching distribution" in failed["observed_reason"], failed
        assert workload_processes(agent.workdir, "brokenapp-01") == []
        assert proc.is_running()  # the other workload is untouched

        # Native code: the agent (this machine's architecture) installs its own wheel.
        r = setup.post("/deployments", json={"edge_id": edge["id"], "ai_id": ais["archapp"]["id"]})
        assert r.status_code == 201, r.text
        r = setup.post(
            "/deployments", json={"edge_id": edge["id"], "ai_id": ais["foreignapp"]["id"]}
        )
        assert r.status_code == 201, r.text
        master.post("/reconcile?wait=true", headers=SERVICE)
        log = agent.workdir / "logs" / "archapp-01.log"
        line = wait_until(
            lambda: (
                next((x for x in log.read_text().splitlines() if x.startswith("archprobe ")), None)
                if log.exists()
                else None
            ),
            what="the native program's line",
        )
        _, arch, where = line.split(" ", 2)
        assert arch == HOST and Path(where).is_relative_to(agent.workdir / "envs")
        # Another architecture only: refused by the master, which knows the edge's architecture
        # from its agent's answers.
        refused = next(
            d
            for d in setup.get(f"/deployments?edge_id={edge['id']}").json()["items"]
            if d["ai_id"] == ais["foreignapp"]["id"]
        )
        assert refused["observed"] == "failed", refused
        assert (
            f"carries native code for {FOREIGN} only and edge edge-01 is {HOST}: pack its wheels "
            f"for {HOST} too (edgectl ai pack --platform linux/{HOST})"
        ) in refused["observed_reason"], refused
        assert workload_processes(agent.workdir, "foreignapp-01") == []
    finally:
        agent.close()
        kill_leftovers(agent.workdir)
        setup.close()
        master.close()


@pytest.mark.skipif(HOST not in MACHINES, reason=f"no test wheels for {HOST} machines")
def test_the_agent_installs_from_its_own_architectures_folder(tmp_path):
    """An arm64 box (platform.machine() aarch64) takes wheels/arm64; a box of an architecture
    the package has no folder for refuses it with the reason, before pip runs."""
    wheels = site_wheels(tmp_path / "site")
    house = tmp_path / "pkg" / "wheels"
    for arch, machine in MACHINES.items():
        (house / arch).mkdir(parents=True)
        for name in (
            "fielddep-1.0-py3-none-any.whl",
            f"archprobe-1.0-py3-none-manylinux2014_{machine}.whl",
        ):
            (house / arch / name).write_bytes((wheels / name).read_bytes())
    assert wheel_folders(house, machine="aarch64") == [house / "arm64"]
    assert wheel_folders(house, machine="x86_64") == [house / "amd64"]
    assert wheel_folders(house, machine="AMD64") == [house / "amd64"]
    with pytest.raises(DependencyError) as exc:
        wheel_folders(house, machine="armv7l")
    assert str(exc.value) == (
        "the package carries native code for amd64, arm64 only and this edge is arm (armv7l): "
        "pack its wheels for it too (edgectl ai pack --platform linux/arm)"
    )
    # This machine's folder, installed with no index: the wheel of this machine, not the other.
    env = ensure_environment(tmp_path / "envs", ["archprobe==1.0"], house)
    assert (env / "archprobe.py").read_text() == f"ARCH = {HOST!r}\n"
