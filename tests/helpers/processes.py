"""Real processes in tests: start, wait until ready, stop (and make sure nothing is left)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


class Proc:
    def __init__(
        self, args: list[str], *, env: dict[str, str], log_path: Path, cwd: Path | None = None
    ):
        self.args = args
        self.log_path = log_path
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                args,
                env=env,
                cwd=str(cwd or REPO),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        return self.popen.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


# The interpreter the edge programs (the agent, weather, monitoring) run under in these tests:
# ``EDGE_PYTHON`` (the Python 3.8 environment scripts/test.sh makes, .venv-py38), else this one.
EDGE_PYTHON = os.environ.get("EDGE_PYTHON") or sys.executable


def edge_program(module: str, *args: str) -> list[str]:
    """An edge program (``edge_ai.<program>``) as a box runs it: python -m, under EDGE_PYTHON."""
    return [EDGE_PYTHON, "-m", module, *args]


def edgectl(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgectl.main", *args]


def wait_http(
    url: str, *, timeout: float = 30, proc: Proc | None = None, expect: int = 200
) -> None:
    """Wait until ``url`` answers ``expect`` (a ready probe), failing early if the process died."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(
                f"process exited with {proc.popen.returncode}:\n{proc.log_text()[-4000:]}"
            )
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == expect:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    tail = proc.log_text()[-4000:] if proc else ""
    raise TimeoutError(f"{url} not ready after {timeout}s (last: {last})\n{tail}")


def start_service(
    name: str, *, env: dict[str, str], port: int, tmp_path: Path, timeout: float = 40
) -> Proc:
    proc = Proc(
        edgectl("serve", name, "--port", str(port)),
        env=env,
        log_path=tmp_path / f"{name}-{port}.log",
    )
    wait_http(f"http://127.0.0.1:{port}/readyz", timeout=timeout, proc=proc)
    return proc
