"""The stack's child processes: started in their own process group, logged to files, stopped
together."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge_ai.common.http import CallFailed, EdgeSyncClient


class PortInUse(RuntimeError):
    """A port the stack needs is taken."""


def check_ports_free(ports: dict[str, int]) -> None:
    taken = []
    for name, port in ports.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                taken.append(f"{name} port {port}")
    if taken:
        raise PortInUse(
            "already in use: "
            + ", ".join(taken)
            + " (stop what uses them, or set EDGE_UP_<NAME>_PORT)"
        )


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                self.args,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, timeout: float) -> None:
        if not self.ready_url:
            return
        deadline = time.monotonic() + timeout
        with EdgeSyncClient(self.name, "", timeout=2) as probe:
            while time.monotonic() < deadline:
                if not self.alive():
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"{self.name} exited ({self.exit_code()}); last log lines:\n{tail}"
                    )
                with contextlib.suppress(CallFailed):
                    probe.request("GET", self.ready_url)
                    return
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s (see {self.log_path})")

    def exit_code(self) -> int | None:
        """The process's exit status (None: not started or still running)."""
        return self.popen.returncode if self.popen is not None else None

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def wait(self, timeout: float) -> bool:
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


def edgectl_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgectl.main", *args]


def stop_all(children: list[Child], timeout: float = 20) -> None:
    """SIGTERM every process group (edges first, services last), then SIGKILL what is left."""
    for child in children:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        child.wait(max(0.1, deadline - time.monotonic()))
    for child in children:
        if child.alive():
            child.signal(signal.SIGKILL)
            child.wait(5)
