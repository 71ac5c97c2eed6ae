"""One supervised run of a workload version: the child process, its restarts and its logs."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from edge_common.vocabulary import WorkloadState
from shared.contracts.live_view import VIEW_FILE

log = logging.getLogger("edge.agent.process")

# Markers in every child's environment: they let a restarted agent find leftovers of a previous run
# even when state.json missed them (a crash between spawn and the state write).
MARK_WORKDIR = "EDGE_AGENT_WORKDIR"
MARK_WORKLOAD = "EDGE_AGENT_WORKLOAD"

_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


@dataclass
class SupervisionPolicy:
    ready_grace_s: float
    backoff_base_s: float
    backoff_cap_s: float
    stable_after_s: float
    crash_loop_limit: int
    stop_timeout_s: float
    ring_lines: int
    log_max_bytes: int

    def backoff(self, quick_failures: int) -> float:
        return min(self.backoff_cap_s, self.backoff_base_s * (2 ** max(quick_failures - 1, 0)))


def child_argv(command: list[str]) -> list[str]:
    """The manifest's command; a leading python/python3 runs under this agent's interpreter."""
    argv = list(command)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


def child_env(
    workdir: Path,
    name: str,
    directory: Path,
    env: dict[str, str],
    *,
    live_file: Path | None = None,
    live_secrets_file: Path | None = None,
    python_paths: list[Path] | None = None,
) -> dict[str, str]:
    """The agent's environment minus its secrets, plus the workload's env and the program's
    directory on PYTHONPATH.
    ``EDGE_LIVE_FILE`` names the JSON file the agent rewrites when the live settings change,
    ``EDGE_VIEW_FILE`` the live-view request (shared.contracts.live_view),
    ``EDGE_LIVE_SECRETS_FILE`` the 0600 one for the live secrets (it may not exist).
    ``python_paths``: the package's dependency environment, after its directory."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENT_") and not any(word in k.upper() for word in _SECRET_WORDS)
    }
    base.update(env)
    existing = base.get("PYTHONPATH")
    paths = [str(directory), *(str(p) for p in python_paths or [])]
    base["PYTHONPATH"] = os.pathsep.join(paths + ([existing] if existing else []))
    base["EDGE_CONFIG"] = str(directory / "edgeconfig.xml")
    if live_file is not None:
        base["EDGE_LIVE_FILE"] = str(live_file)
        # The edge's live-view request (one for every workload; the agent writes it).
        base["EDGE_VIEW_FILE"] = str(live_file.parent / VIEW_FILE)
    if live_secrets_file is not None:
        base["EDGE_LIVE_SECRETS_FILE"] = str(live_secrets_file)
    base[MARK_WORKDIR] = str(workdir)
    base[MARK_WORKLOAD] = name
    base.setdefault("PYTHONUNBUFFERED", "1")
    return base


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class ProcessInstance:
    """Runs ``argv`` in ``directory`` as its own process group, restarting it with backoff until
    stopped, or until it crash-loops (``crash_loop_limit`` quick failures in a row), which marks it
    failed."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        argv: list[str],
        env: dict[str, str],
        directory: Path,
        log_path: Path,
        policy: SupervisionPolicy,
        on_change: Callable[[], None],
    ):
        self.name = name
        self.version = version
        self.argv = argv
        self.env = env
        self.directory = directory
        self.log_path = log_path
        self.policy = policy
        self.on_change = on_change  # persist pids when a child starts or ends

        self.state: WorkloadState = WorkloadState.PENDING
        self.reason: str | None = None
        self.restarts = 0
        self.exit_code: int | None = None
        self.pid: int | None = None
        self.pid_start: float | None = None
        self.started_at: float | None = None
        self.ring: collections.deque[str] = collections.deque(maxlen=policy.ring_lines)
        self.ready = asyncio.Event()  # set once the process has been up for the grace period
        self.finished = asyncio.Event()  # set when stopped or failed for good
        self._stop = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None
        self._partial = b""

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(
            self._guarded(), name=f"supervise:{self.name}:{self.version}"
        )

    async def _guarded(self) -> None:
        """A bug in supervision must show as a failed workload, not as one silently left alone."""
        try:
            await self._supervise()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("supervision of %s %s broke", self.name, self.version)
            await self._terminate()
            self.state, self.reason, self.pid = (
                WorkloadState.FAILED,
                f"agent error: {exc.__class__.__name__}: {exc}",
                None,
            )
            self.finished.set()
            self.on_change()

    async def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after the timeout; then nothing of it is left."""
        self._stop.set()
        await self._terminate()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.state = WorkloadState.STOPPED if self.state != WorkloadState.FAILED else self.state
        self.finished.set()

    async def wait_ready_or_finished(self) -> bool:
        """True once running, False if it failed or was stopped first."""
        ready = asyncio.create_task(self.ready.wait())
        done = asyncio.create_task(self.finished.wait())
        try:
            await asyncio.wait({ready, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            done.cancel()
        return self.ready.is_set() and not self.finished.is_set()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def tail(self, n: int) -> list[str]:
        lines = list(self.ring)
        return lines[-n:] if n > 0 else []

    # -- supervision loop --------------------------------------------------------------------------
    async def _supervise(self) -> None:
        quick_failures = 0
        while not self._stop.is_set():
            try:
                await self._spawn()
            except OSError as exc:
                self.exit_code = None
                self._log_line(f"[agent] cannot start {self.argv[0]!r}: {exc}")
                self.state, self.reason = WorkloadState.FAILED, f"cannot start the command: {exc}"
                self.finished.set()
                self.on_change()
                return
            if self._stop.is_set():  # stop() arrived while the process was being created
                await self._terminate()
            started = time.monotonic()
            code = await self._wait_exit_with_grace()
            self.pid = None
            self.on_change()
            if self._stop.is_set():
                return
            ran = time.monotonic() - started
            self.exit_code = code
            self._log_line(
                f"[agent] {self.name} {self.version} {describe_exit(code)} after {ran:.1f}s"
            )
            quick_failures = 0 if ran >= self.policy.stable_after_s else quick_failures + 1
            if quick_failures >= self.policy.crash_loop_limit:
                self.state = WorkloadState.FAILED
                self.reason = (
                    f"crash loop: {describe_exit(code)}, {quick_failures} quick failures in a row"
                )
                self.finished.set()
                self.on_change()
                log.warning("%s %s failed: %s", self.name, self.version, self.reason)
                return
            self.state = WorkloadState.RESTARTING
            self.reason = f"{describe_exit(code)}; restarting"
            delay = self.policy.backoff(quick_failures)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            if self._stop.is_set():
                return
            self.restarts += 1

    async def _spawn(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=str(self.directory),
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it reaches its children too
        )
        self.pid = self._proc.pid
        self.pid_start = process_start_time(self._proc.pid)
        self.started_at = time.time()
        self.on_change()
        log.info("started %s %s pid %s", self.name, self.version, self.pid)

    async def _wait_exit_with_grace(self) -> int | None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        reader = asyncio.create_task(self._pump(proc.stdout))
        waiter = asyncio.create_task(proc.wait())
        done, _ = await asyncio.wait({waiter}, timeout=self.policy.ready_grace_s)
        if not done and not self._stop.is_set():
            self.state, self.reason = WorkloadState.RUNNING, None
            self.ready.set()
            self.on_change()
        code = await waiter
        # The leader is gone; anything it left in its group goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reader, timeout=2)
        return code

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=self.policy.stop_timeout_s)
        except asyncio.TimeoutError:  # not the builtin before Python 3.11
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    # -- logs --------------------------------------------------------------------------------------
    async def _pump(self, stream: asyncio.StreamReader) -> None:
        """Child output into the ring buffer and the log file, in chunks (no line-length limit)."""
        while chunk := await stream.read(65536):
            self._write_file(chunk)
            data = self._partial + chunk
            *lines, self._partial = data.split(b"\n")
            for line in lines:
                self.ring.append(line.decode(errors="replace").rstrip("\r"))
            if len(self._partial) > 65536:
                self.ring.append(self._partial.decode(errors="replace"))
                self._partial = b""
        if self._partial:
            self.ring.append(self._partial.decode(errors="replace"))
            self._partial = b""

    def _log_line(self, text: str) -> None:
        self.ring.append(text)
        self._write_file((text + "\n").encode())

    def _write_file(self, data: bytes) -> None:
        # Appends of at most 64 KiB to a local file land in the page cache: cheap enough inline.
        try:
            if self.log_path.exists() and self.log_path.stat().st_size > self.policy.log_max_bytes:
                os.replace(self.log_path, self.log_path.with_suffix(self.log_path.suffix + ".1"))
            with open(self.log_path, "ab") as f:
                f.write(data)
        except OSError as exc:  # a full disk must not stop supervision
            log.warning("cannot write log %s: %s", self.log_path, exc)
