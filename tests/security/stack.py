"""The four services as real processes (and, where asked, the analysis gateway with a CPU
worker on Redis), for the tests of this folder.

They run on a database of their own, dropped afterwards: fuzzing rewrites reference data (the
condition map) that other tests rely on. Body limits are small (``BODY_LIMIT``, and
``UPLOAD_LIMIT`` on the master's uploads) so that an over-limit body is cheap to send.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import migrations
from tests.helpers.database import create_database, drop_database
from tests.helpers.env import console_env, free_port, service_env
from tests.helpers.processes import Proc, edgectl, start_service

SERVICES = ("setup", "master", "vms", "optimizer")
BODY_LIMIT = 200_000
UPLOAD_LIMIT = 400_000


def running_services(
    tmp_path_factory: pytest.TempPathFactory, *, analysis: bool = False, console: bool = False
) -> Iterator[dict[str, str]]:
    """A module-scoped fixture body: {service: base URL}; the logs of a 5xx are printed at the end.

    ``analysis``: the analysis gateway too (Redis keys under a prefix of its own, dropped after),
    with one CPU worker on a small random-weights model so that a synchronous call is answered.
    ``console``: the web console too, in front of them."""
    name = f"edgesec_{uuid.uuid4().hex[:10]}"
    database_url = asyncio.run(create_database(name))
    try:
        for service in (*SERVICES, "console") if console else SERVICES:
            migrations.upgrade(f"services.{service}", database_url)
        yield from _services(database_url, tmp_path_factory, analysis=analysis, console=console)
    finally:
        asyncio.run(drop_database(name))


def _services(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, *, analysis: bool, console: bool
) -> Iterator[dict[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("stack")
    names = (*SERVICES, *(["analysis"] if analysis else []), *(["console"] if console else []))
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    common = dict(
        EDGE_SETUP_URL=urls["setup"],
        EDGE_MASTER_URL=urls["master"],
        EDGE_OPTIMIZER_URL=urls["optimizer"],
        EDGE_VMS_URL=urls["vms"],
        EDGE_MIGRATE_ON_START="false",
    )
    if analysis:
        common["EDGE_ANALYSIS_URL"] = urls["analysis"]
    extra = {
        "setup": {"SETUP_NOTIFY_MASTER": "false", "SETUP_MAX_BODY_BYTES": str(BODY_LIMIT)},
        "master": {
            "MASTER_ARTIFACT_DIR": str(tmp / "artifacts"),
            "MASTER_PACKAGE_DIR": str(tmp / "packages"),
            "MASTER_NOTIFY_OPTIMIZER": "false",
            "MASTER_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
            "MASTER_MAX_BODY_BYTES": str(BODY_LIMIT),
        },
        "optimizer": {"OPTIMIZER_MAX_BODY_BYTES": str(BODY_LIMIT)},
        "vms": {"VMS_UNKNOWN_NODES": "flag", "VMS_MAX_BODY_BYTES": str(BODY_LIMIT)},
        "analysis": {
            "ANALYSIS_KEY_PREFIX": f"edgesec:{uuid.uuid4().hex[:10]}",
            "ANALYSIS_MAX_BODY_BYTES": str(BODY_LIMIT),
            "ANALYSIS_VIDEO_MAX_BYTES": str(BODY_LIMIT),
            "ANALYSIS_VIDEO_DIR": str(tmp / "videos"),
            "ANALYSIS_MODEL": "yolov8n.yaml",
            "ANALYSIS_IMGSZ": "160",
            "ANALYSIS_RATE_PER_S": "0",
            "ANALYSIS_SYNC_TIMEOUT_S": "20",
            "OMP_NUM_THREADS": "1",
        },
        "console": {"CONSOLE_MAX_BODY_BYTES": str(BODY_LIMIT), "CONSOLE_LIVE_INTERVAL_S": "60"},
    }
    procs: list[Proc] = []
    try:
        for name in names:
            starter = console_env if name == "console" else service_env
            env = starter(database_url, **common, **extra[name])
            procs.append(start_service(name, env=env, port=ports[name], tmp_path=tmp))
        if analysis:
            env = service_env(database_url, **extra["analysis"])
            worker = edgectl("analysis-worker", "--threads", "1")
            procs.append(Proc(worker, env=env, log_path=tmp / "analysis-worker.log"))
        yield urls
    finally:
        for proc in procs:
            proc.stop()
        if analysis:
            _drop_redis_keys(extra["analysis"]["ANALYSIS_KEY_PREFIX"])
        for proc in procs:
            text = proc.log_text()
            if "unhandled error" in text or "Exception in ASGI application" in text:
                print(f"--- {proc.log_path.name} ---\n{text[-6000:]}")


def _drop_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
