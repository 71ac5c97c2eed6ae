"""Analysis test helpers: a Redis key prefix of the test's own, the gateway in-process, real
worker processes, ultralytics' bundled images."""

from __future__ import annotations

import contextlib
import struct
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import ultralytics

from services.analysis.app import create_app
from tests.conftest import running_app
from tests.helpers.env import free_port, service_env, settings_for
from tests.helpers.processes import Proc, edgectl

REDIS_URL = "redis://127.0.0.1:6379/0"
ASSETS = Path(ultralytics.__file__).parent / "assets"
BUS = (ASSETS / "bus.jpg").read_bytes()
ZIDANE = (ASSETS / "zidane.jpg").read_bytes()
TEST_MODEL = "yolov8n.yaml"


def variant(jpeg: bytes, tag: str) -> bytes:
    """The same picture with a JPEG comment segment: a different hash, so no cache hit."""
    comment = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` (no pixel data): what a dimension check meets."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def drop_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def prefix() -> Iterator[str]:
    """Every Redis key of this test under a prefix of its own (parallel runs never collide)."""
    name = f"edgetest:{uuid.uuid4().hex[:10]}"
    yield name
    drop_keys(name)


def analysis_settings(db: str, prefix: str, **overrides):
    values = dict(
        redis_url=REDIS_URL,
        key_prefix=prefix,
        model=TEST_MODEL,
        rate_per_s=0.0,
        sync_timeout_s=60.0,
    )
    values.update(overrides)
    return settings_for("analysis", db, **values)


@contextlib.asynccontextmanager
async def gateway(db: str, prefix: str, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(analysis_settings(db, prefix, **overrides))
    async with running_app(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def start_worker(
    db: str,
    prefix: str,
    tmp_path: Path,
    *,
    name: str = "worker",
    imgsz: int = 320,
    batch_size: int = 8,
    batch_wait_ms: float = 20,
    model: str = TEST_MODEL,
    lease_s: float = 30,
    metrics_port: int | None = None,
    redis_url: str = REDIS_URL,
    **env_extra: str,
) -> Proc:
    """A real ``edgectl analysis-worker`` process, returned once it reads from the queue."""
    env = service_env(
        db,
        EDGE_REDIS_URL=redis_url,
        ANALYSIS_KEY_PREFIX=prefix,
        ANALYSIS_LEASE_S=str(lease_s),
        OMP_NUM_THREADS="1",
        **env_extra,
    )
    args = [
        "analysis-worker",
        "--model",
        model,
        "--imgsz",
        str(imgsz),
        "--batch-size",
        str(batch_size),
        "--batch-wait-ms",
        str(batch_wait_ms),
        "--threads",
        "1",
    ]
    if metrics_port:
        args += ["--metrics-port", str(metrics_port)]
    proc = Proc(edgectl(*args), env=env, log_path=tmp_path / f"{name}.log")
    wait_consumer(prefix, proc, redis_url=redis_url)
    return proc


def consumers(prefix: str, redis_url: str = REDIS_URL) -> list[dict]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return client.xinfo_consumers(f"{prefix}:jobs", "workers")
    except redis.ResponseError:
        return []
    finally:
        client.close()


def wait_consumer(prefix: str, proc: Proc, timeout: float = 60, redis_url: str = REDIS_URL) -> None:
    """Until the worker's consumer shows in the group (it has read once), failing if it died."""
    names = {c["name"] for c in consumers(prefix, redis_url)}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"worker exited:\n{proc.log_text()[-3000:]}")
        if any(
            c["name"] not in names and c["name"].endswith(f"-{proc.pid}")
            for c in consumers(prefix, redis_url)
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"worker not reading after {timeout}s:\n{proc.log_text()[-3000:]}")


@pytest.fixture
def worker(db: str, prefix: str, tmp_path: Path) -> Iterator[Proc]:
    proc = start_worker(db, prefix, tmp_path)
    yield proc
    proc.stop()


def dead_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def start_private_redis(port: int, tmp_path: Path) -> Proc:
    """A Redis of the test's own (no persistence), to kill and restart: never the shared one."""
    import os

    proc = Proc(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        env=dict(os.environ),
        log_path=tmp_path / f"redis-{port}.log",
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                return proc
            except redis.ConnectionError:
                if time.monotonic() > deadline or not proc.alive():
                    raise RuntimeError(proc.log_text()) from None
                time.sleep(0.05)
    finally:
        client.close()
