"""Issue 22 item 6: the Docker driver against a real engine. `podman system service` serves the
Docker Engine API on a private socket over the session's private storage; setup, the master and
the VMS are processes. The master builds the project's own weather and monitoring packages with
buildah (their own Dockerfiles, `RUN pip install -r requirements.txt` included), pushes them to
the local registry and deploys them through the engine as containers (host network), which post
to the VMS. A killed container is restarted by the engine and its restarts reported; a version
switch leaves no gap; an undeploy leaves no container, network or volume."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from edge_ai.packages.build import PACKAGES_DIR, build_package
from tests.helpers.containers import CACHE_DIR, ContainerEnv, PodmanService
from tests.helpers.env import OPERATOR, SERVICE, free_port, service_env
from tests.helpers.processes import Proc, start_service
from tests.helpers.registry import RunningRegistry

MONITORING_NID, WEATHER_NID = "0x51", "0x52"


def site_wheels() -> Path:
    """The wheels of the packages' requirements for the base's Python (3.11, x86_64), downloaded
    once per machine with this machine's pip settings and cached (``CACHE_DIR``): a LAN's own
    wheelhouse, so that the builds below reach no index."""
    requirements = sorted(
        {
            line.strip()
            for folder in ("monitoring-01", "weatherai")
            for line in (PACKAGES_DIR / folder / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        }
    )
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    target = CACHE_DIR / f"wheels-cp311-x86_64-{key}"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_dir():
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--only-binary",
                    ":all:",
                    "--python-version",
                    "3.11",
                    "--implementation",
                    "cp",
                    "--platform",
                    "manylinux2014_x86_64",
                    "--dest",
                    str(partial),
                    *requirements,
                ],
                check=True,
                timeout=600,
            )
            partial.rename(target)
    return target


def python_base(cenv: ContainerEnv, base_image: str, target: str) -> str:
    """What the packages' `FROM python:3.11-slim` means in this LAN without Docker Hub or an
    index: the site's Debian base with `python`, a pip allowed to install into the system (as the
    official image has) and the site's wheelhouse as pip's only source (PIP_NO_INDEX,
    PIP_FIND_LINKS), pushed where the FROM line resolves (the private registry)."""
    ctr = cenv.buildah("from", "--tls-verify=false", base_image).stdout.strip()
    try:
        cenv.buildah("run", ctr, "--", "ln", "-sf", "/usr/bin/python3", "/usr/bin/python")
        cenv.buildah("copy", ctr, str(site_wheels()), "/opt/site-wheels")
        for env in ("PIP_BREAK_SYSTEM_PACKAGES=1", "PIP_NO_INDEX=1"):
            cenv.buildah("config", "--env", env, ctr)
        cenv.buildah("config", "--env", "PIP_FIND_LINKS=/opt/site-wheels", ctr)
        cenv.buildah("commit", ctr, target)
    finally:
        cenv.buildah("rm", ctr, check=False)
    cenv.buildah("push", "--tls-verify=false", target, f"docker://{target}")
    return target


async def pg_rows(db: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def wait_for(check, *, timeout: float = 60, what: str, api: httpx.Client | None = None):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.5)
    logs = container_logs(api) if api is not None else ""
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{logs}")


def container_logs(api: httpx.Client) -> str:
    out = []
    for c in managed(api):
        r = api.get(f"/containers/{c['Id']}/logs", params={"stdout": "1", "stderr": "1"})
        info = api.get(f"/containers/{c['Id']}/json").json()
        out.append(f"--- {c['Image']} {c['State']} env={info['Config']['Env']}\n{r.text[-2000:]}")
    return "\n".join(out)


def engine(svc: PodmanService) -> httpx.Client:
    """The Engine API as the test reads it (an independent client of the same socket)."""
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(svc.socket)), base_url="http://d/v1.41", timeout=30
    )


def managed(api: httpx.Client) -> list[dict]:
    label = json.dumps({"label": ["app.kubernetes.io/managed-by=edge-master"]})
    return api.get("/containers/json", params={"all": "true", "filters": label}).json()


def container_events(
    api: httpx.Client, since: int, ids: set[str]
) -> dict[tuple[str, str], list[int]]:
    """The engine's record of the containers' starts and deaths since ``since``, in order
    (nanoseconds): ``{(id, "start" | "died"): [time, ...]}``."""
    params = {
        "since": str(since),
        "until": str(int(time.time()) + 1),
        "filters": json.dumps({"type": ["container"]}),
    }
    seen: dict[tuple[str, str], list[int]] = {}
    with api.stream("GET", "/events", params=params) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            cid = event.get("id") or event["Actor"]["ID"]
            kind = {"start": "start", "die": "died"}.get(event["Action"])
            if cid in ids and kind is not None:  # (podman 4.3 ignores an "event" filter)
                seen.setdefault((cid, kind), []).append(int(event["timeNano"]))
    return seen


async def test_the_master_runs_its_weather_and_monitoring_ais_as_containers_on_podman(
    db: str,
    tmp_path: Path,
    container_env: ContainerEnv,
    container_registry: RunningRegistry,
    base_image: str,
    podman_service: PodmanService,
) -> None:
    python_base(container_env, base_image, f"{container_registry.host}/python:3.11-slim")
    api = engine(podman_service)
    networks_before = {n["Name"] for n in api.get("/networks").json()}
    volumes_before = {v["Name"] for v in api.get("/volumes").json()["Volumes"] or []}

    ports = {name: free_port() for name in ("setup", "master", "vms")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    common = dict(
        EDGE_SETUP_URL=urls["setup"],
        EDGE_MASTER_URL=urls["master"],
        EDGE_OPTIMIZER_URL=f"http://127.0.0.1:{free_port()}",
    )
    procs: list[Proc] = []
    try:
        procs.append(
            start_service(
                "setup", env=service_env(db, **common), port=ports["setup"], tmp_path=tmp_path
            )
        )
        procs.append(
            start_service(
                "vms",
                env=service_env(db, **common, VMS_GROUP_COMMIT_WINDOW_MS="2"),
                port=ports["vms"],
                tmp_path=tmp_path,
            )
        )
        master_env = service_env(
            db,
            **common,
            **container_env.env,
            MASTER_ARTIFACT_DIR=str(tmp_path / "artifacts"),
            MASTER_PACKAGE_DIR=str(tmp_path / "packages"),
            MASTER_REGISTRY_URL=container_registry.url,
            MASTER_BUILDER="buildah",
            MASTER_DOCKER_HOST=podman_service.docker_host,
            MASTER_DOCKER_NETWORK="host",  # the containers reach the VMS on 127.0.0.1
            MASTER_VMS_PUBLIC_URL=urls["vms"],
            MASTER_RECONCILE_ON_START="false",
            MASTER_RECONCILE_SECONDS="3600",
            MASTER_NOTIFY_OPTIMIZER="false",
        )
        procs.append(
            start_service("master", env=master_env, port=ports["master"], tmp_path=tmp_path)
        )
        async with (
            httpx.AsyncClient(base_url=urls["setup"], headers=OPERATOR, timeout=60) as setup,
            httpx.AsyncClient(base_url=urls["master"], headers=OPERATOR, timeout=600) as master,
        ):
            # The project's own packages, built from their folders as they are.
            archives = tmp_path / "archives"
            ais: dict[str, dict] = {}
            for folder, version in (("monitoring-01", "01"), ("weatherai", "01")):
                built = build_package(PACKAGES_DIR / folder, archives)
                r = await master.post(
                    f"/ai-packages?filename={built.filename}&version={version}"
                    f"&ai_class={built.ai_class}",
                    content=built.path.read_bytes(),
                    headers={"Content-Type": "application/gzip"},
                )
                assert r.status_code == 202, r.text
                r = await master.post(
                    f"/ai-packages/{r.json()['ai']['id']}/build?wait=true", headers=SERVICE
                )
                ai = r.json()["ai"]
                log = (await master.get(f"/builds/{ai['id']}/log")).text
                if ai["status"] != "ready":
                    print(log)  # shown by pytest with the failure
                assert ai["status"] == "ready", ai
                assert "RUN pip install" in log, log[-3000:]
                ais[folder] = ai

            cluster = await setup.post("/clusters", json={"name": "box", "runtime": "docker"})
            assert cluster.status_code == 201, cluster.text
            edges = {}
            for folder, nid in (("monitoring-01", MONITORING_NID), ("weatherai", WEATHER_NID)):
                r = await setup.post(
                    "/edges",
                    json={"name": f"edge-{nid}", "nid": nid, "cluster_id": cluster.json()["id"]},
                )
                assert r.status_code == 201, r.text
                edges[folder] = r.json()
                r = await setup.post(
                    "/deployments",
                    json={"edge_id": edges[folder]["id"], "ai_id": ais[folder]["id"]},
                )
                assert r.status_code == 201, r.text
            summary = (await master.post("/reconcile?wait=true", headers=SERVICE)).json()
            assert summary["state"] == "ok", summary

            # Both containers run the pushed images and post to the VMS.
            images = {c["Image"] for c in managed(api)}
            assert images == {ais[f]["image_ref"] for f in ais}, managed(api)
            await wait_for(
                lambda: pg_rows(db, "SELECT 1 FROM vms.usage WHERE nid = $1", MONITORING_NID),
                what="monitoring's posts",
                api=api,
            )
            await wait_for(
                lambda: pg_rows(db, "SELECT 1 FROM vms.environment WHERE nid = $1", WEATHER_NID),
                what="weather's posts",
                api=api,
            )

            # A killed container is restarted by the engine; the restart is reported to setup.
            [mon] = [c for c in managed(api) if c["Image"] == ais["monitoring-01"]["image_ref"]]
            # Killed from outside, as a crash or the OOM killer would (an API kill is a stop by
            # the user, which a restart policy leaves alone).
            pid = api.get(f"/containers/{mon['Id']}/json").json()["State"]["Pid"]
            os.kill(pid, signal.SIGKILL)

            async def restarted() -> dict | None:
                info = api.get(f"/containers/{mon['Id']}/json").json()
                return info if info["State"]["Running"] and info["RestartCount"] >= 1 else None

            await wait_for(restarted, what="the engine restarting the killed container")
            deployment = edges["monitoring-01"]["id"]

            async def reported() -> dict | None:
                await master.post("/reconcile?wait=true", headers=SERVICE)
                items = (await setup.get(f"/deployments?edge_id={deployment}")).json()["items"]
                return items[0] if items and items[0]["restarts"] >= 1 else None

            dep = await wait_for(reported, what="the restart reported")
            assert dep["observed"] == "running", dep

            # Version 02 of monitoring: a switch that leaves no gap (a running container at every
            # look at the engine while the master replaces it).
            source = tmp_path / "monitoring-02"
            shutil.copytree(PACKAGES_DIR / "monitoring-01", source)
            manifest = (source / "aipackage.yaml").read_text()
            (source / "aipackage.yaml").write_text(
                manifest.replace('version: "01"', 'version: "02"')
            )
            v2 = build_package(source, archives)
            r = await master.post(
                f"/ai-packages?filename={v2.filename}&version=02&ai_class={v2.ai_class}",
                content=v2.path.read_bytes(),
                headers={"Content-Type": "application/gzip"},
            )
            assert r.status_code == 202, r.text
            r = await master.post(
                f"/ai-packages/{r.json()['ai']['id']}/build?wait=true", headers=SERVICE
            )
            ai2 = r.json()["ai"]
            assert ai2["status"] == "ready", ai2
            r = await setup.patch(f"/deployments/{dep['id']}", json={"ai_id": ai2["id"]})
            assert r.status_code == 200, r.text
            gaps: list[float] = []
            looks = 0
            old_id = next(
                c["Id"]
                for c in managed(api)
                if c["State"] == "running" and c["Image"] == ais["monitoring-01"]["image_ref"]
            )
            since = int(time.time()) - 1
            switch = asyncio.create_task(master.post("/reconcile?wait=true", headers=SERVICE))
            while not switch.done():
                running = [
                    c
                    for c in managed(api)
                    if c["State"] == "running"
                    and c["Image"] in (ais["monitoring-01"]["image_ref"], ai2["image_ref"])
                ]
                looks += 1
                if not running:
                    gaps.append(time.monotonic())
                await asyncio.sleep(0.05)
            assert (await switch).json()["state"] == "ok"
            # The looks above sample; the engine's own record is exact: the new container
            # started before the old one last died.
            assert looks >= 1 and gaps == [], (looks, gaps)
            mon_now = [c for c in managed(api) if "monitoring" in c["Image"]]
            assert [c["Image"] for c in mon_now] == [ai2["image_ref"]], mon_now
            assert mon_now[0]["State"] == "running"
            events = container_events(api, since, {mon_now[0]["Id"], old_id})
            assert events[(mon_now[0]["Id"], "start")][0] < events[(old_id, "died")][-1], events

            # Undeploy: nothing is left, no container, no network, no volume.
            for edge in edges.values():
                items = (await setup.get(f"/deployments?edge_id={edge['id']}")).json()["items"]
                for d in items:
                    assert (await setup.delete(f"/deployments/{d['id']}")).status_code == 200
            assert (await master.post("/reconcile?wait=true", headers=SERVICE)).json()[
                "state"
            ] == "ok"
            assert managed(api) == []
            assert {n["Name"] for n in api.get("/networks").json()} == networks_before
            volumes = {v["Name"] for v in api.get("/volumes").json()["Volumes"] or []}
            assert volumes == volumes_before
    finally:
        for proc in reversed(procs):
            proc.stop()
        for c in managed(api):
            api.delete(f"/containers/{c['Id']}", params={"force": "true", "v": "true"})
        api.close()
