"""The node's desired set of workloads made real: packages prepared, processes run, versions
switched without a gap, state persisted so a restarted agent picks up where it was."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

from edge_ai.agent.deps import (
    DependencyError,
    ensure_environment,
    prune_environments,
    read_requirements,
)
from edge_ai.agent.fetcher import DigestMismatch, FetchError, PackageFetcher
from edge_ai.agent.process import (
    MARK_WORKDIR,
    ProcessInstance,
    SupervisionPolicy,
    child_argv,
    child_env,
    describe_exit,
)
from edge_ai.agent.schemas import PreviousInstance, WorkloadSpec, WorkloadStatus
from edge_ai.agent.settings import AgentSettings
from edge_ai.agent.state import ChildRecord, SavedState, StateStore
from edge_ai.agent.unpack import UnsafePackage, unpack
from edge_common.compat import to_thread
from edge_common.vocabulary import WorkloadState
from shared.contracts.live_view import VIEW_FILE

log = logging.getLogger("edge.agent.supervisor")

STATUS_LOG_LINES = 20


class PrepareError(Exception):
    """A workload's package could not be made ready (fetch, verify or unpack failed)."""

    def __init__(self, name: str, message: str, *, kind: str):
        super().__init__(message)
        self.name = name
        # "unavailable" (master unreachable), "mismatch" (bad bytes), "refused" (unsafe package)
        self.kind = kind


class WorkloadRunner:
    """One named workload: the instance matching the desired spec, and older versions still serving
    until it is up."""

    def __init__(self, spec: WorkloadSpec):
        self.spec = spec
        self.current: ProcessInstance | None = None
        self.previous: list[ProcessInstance] = []
        self.prepare_error: str | None = None
        self.retire_task: asyncio.Task | None = None

    def instances(self) -> list[ProcessInstance]:
        return [i for i in (self.current, *self.previous) if i is not None]

    def up_to_date(self, spec: WorkloadSpec) -> bool:
        """Nothing to do: same program and config, and either healthy or failed at this very
        generation (a failed workload starts again only when the master bumps the generation)."""
        if self.current is None or self.spec.fingerprint() != spec.fingerprint():
            return False
        return self.current.state != WorkloadState.FAILED or spec.generation <= self.spec.generation

    def switch_to(
        self, spec: WorkloadSpec, new: ProcessInstance, on_retired
    ) -> list[ProcessInstance]:
        """Make ``new`` current. Returns instances to stop now (those that never served); serving
        ones stay until ``new`` is running."""
        self.spec = spec
        self.prepare_error = None
        stop_now: list[ProcessInstance] = []
        keep: list[ProcessInstance] = []
        for inst in self.instances():
            serving = inst.ready.is_set() and not inst.finished.is_set()
            (keep if serving else stop_now).append(inst)
        self.current = new
        self.previous = keep
        if self.retire_task is not None:
            self.retire_task.cancel()
        if keep:
            self.retire_task = asyncio.create_task(self._retire_when_ready(new, on_retired))
        return stop_now

    async def _retire_when_ready(self, new: ProcessInstance, on_retired) -> None:
        if not await new.wait_ready_or_finished():
            return  # the new version never came up: the old one keeps serving
        old, self.previous = self.previous, []
        # Shielded: a newer switch cancelling this task must not leave a half-stopped process.
        await asyncio.shield(asyncio.gather(*(inst.stop() for inst in old)))
        log.info(
            "%s now runs %s; %d old instance(s) stopped", self.spec.name, new.version, len(old)
        )
        await on_retired(self)

    def status(self, *, log_lines: int = STATUS_LOG_LINES) -> WorkloadStatus:
        spec = self.spec
        base = dict(
            name=spec.name,
            deployment_id=spec.deployment_id,
            generation=spec.generation,
            version=spec.version,
            package_digest=spec.package_digest,
        )
        previous = [
            PreviousInstance(version=i.version, pid=i.pid, state=i.state) for i in self.previous
        ]
        inst = self.current
        if inst is None:
            return WorkloadStatus(
                **base,
                state=WorkloadState.PENDING,
                reason=self.prepare_error or "preparing",
                previous=previous,
            )
        reason = inst.reason
        failed, running = WorkloadState.FAILED, WorkloadState.RUNNING
        if inst.state == failed and any(p.state == running for p in previous):
            reason = f"{reason}; version {previous[0].version} still running"
        troubled = inst.state in (failed, WorkloadState.RESTARTING)
        tail = inst.tail(log_lines) if troubled else []
        return WorkloadStatus(
            **base,
            live=spec.live,
            state=inst.state,
            reason=reason,
            restarts=inst.restarts,
            exit_code=inst.exit_code,
            pid=inst.pid,
            started_at=inst.started_at,
            log_tail=tail,
            previous=previous,
        )


class Supervisor:
    def __init__(
        self,
        settings: AgentSettings,
        fetcher: PackageFetcher,
        edge_token: Callable[[], str | None] = lambda: None,
    ):
        self.settings = settings
        self.edge_token = edge_token  # the edge's current token, handed to workloads as EDGE_TOKEN
        self.workdir = settings.workdir.resolve()
        self.fetcher = fetcher
        self.store = StateStore(self.workdir / "state.json")
        self.runners: dict[str, WorkloadRunner] = {}
        # A package version's dependency environment (when it has requirements), by its directory.
        self.environments: dict[Path, Path] = {}
        self.policy = SupervisionPolicy(
            ready_grace_s=settings.ready_grace_s,
            backoff_base_s=settings.backoff_base_s,
            backoff_cap_s=settings.backoff_cap_s,
            stable_after_s=settings.stable_after_s,
            crash_loop_limit=settings.crash_loop_limit,
            stop_timeout_s=settings.stop_timeout_s,
            ring_lines=settings.log_ring_lines,
            log_max_bytes=settings.log_file_max_bytes,
        )
        self._lock = asyncio.Lock()  # one change of the desired set at a time
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._snapshots = 0  # orders the state.json writes
        self._tasks: list[asyncio.Task] = []
        # Called after each state change is saved (the pull agent reports then).
        self.listeners: list[Callable[[], None]] = []

    # -- startup and shutdown ----------------------------------------------------------------------
    async def start(self) -> None:
        """Clear leftovers of a previous run, then bring the saved desired set back."""
        for sub in ("workloads", "logs", "cache", "live"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        saved = await to_thread(self.store.load)
        reaped = await to_thread(
            reap_leftovers, self.workdir, saved.children, self.settings.stop_timeout_s
        )
        if reaped:
            log.warning(
                "stopped %d process(es) left over from a previous run: %s", len(reaped), reaped
            )
        self._tasks.append(asyncio.create_task(self._persist_loop(), name="persist-state"))
        pending = []
        async with self._lock:
            for spec in saved.workloads:
                try:
                    await self._apply_one(spec, force=True)
                except PrepareError as exc:
                    self._runner_waiting(spec, str(exc))
                    pending.append(spec)
            self._dirty.set()
        if pending:
            self._tasks.append(
                asyncio.create_task(self._retry_prepare(pending), name="retry-prepare")
            )
        log.info(
            "agent for node %s re-adopted %d workload(s)", self.settings.node, len(saved.workloads)
        )

    async def shutdown(self) -> None:
        self._closing.set()
        async with self._lock:
            await asyncio.gather(
                *(inst.stop() for r in self.runners.values() for inst in r.instances())
            )
            for runner in self.runners.values():
                if runner.retire_task is not None:
                    self._tasks.append(runner.retire_task)
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # The desired set stays on disk: the next start re-adopts it.
            await to_thread(self.store.save, self.settings.node, self._snapshot())

    # -- changes of the desired set ----------------------------------------------------------------
    async def replace_all(self, specs: list[WorkloadSpec]) -> None:
        """Full replace: every package is prepared first (all or nothing), then workloads not in the
        set go, the others are applied."""
        async with self._lock:
            for spec in specs:
                runner = self.runners.get(spec.name)
                if runner is None or not runner.up_to_date(spec):
                    await self._prepare(spec)
            wanted = {s.name for s in specs}
            await asyncio.gather(
                *(self._remove(name) for name in list(self.runners) if name not in wanted)
            )
            for spec in specs:
                await self._apply_one(spec)
            await self.flush()

    async def apply(self, spec: WorkloadSpec) -> None:
        async with self._lock:
            await self._apply_one(spec)
            await self.flush()

    async def remove(self, name: str) -> bool:
        async with self._lock:
            if name not in self.runners:
                return False
            await self._remove(name)
            await self.flush()
            return True

    async def _apply_one(self, spec: WorkloadSpec, *, force: bool = False) -> None:
        runner = self.runners.get(spec.name)
        if runner is not None and not force and runner.up_to_date(spec):
            # Bookkeeping (deployment id, generation) and the live settings; the process is left
            # alone and picks the live settings up from its files (the secrets first: a live
            # setting may name one).
            if spec.live_secrets != runner.spec.live_secrets:
                await to_thread(
                    write_live_secrets, self.live_secrets_path(spec.name), spec.live_secrets
                )
                log.info("%s: live secrets changed (no restart)", spec.name)
            if spec.live != runner.spec.live:
                await to_thread(write_live, self.live_path(spec.name), spec.live)
                log.info("%s: live settings now %s (no restart)", spec.name, spec.live)
            runner.spec = spec.model_copy(
                update={"generation": max(spec.generation, runner.spec.generation)}
            )
            return
        directory = await self._prepare(spec)
        await to_thread(write_live_secrets, self.live_secrets_path(spec.name), spec.live_secrets)
        await to_thread(write_live, self.live_path(spec.name), spec.live)
        instance = ProcessInstance(
            name=spec.name,
            version=spec.version,
            argv=child_argv(spec.command),
            env=child_env(
                self.workdir,
                spec.name,
                directory,
                self._workload_env(spec),
                live_file=self.live_path(spec.name),
                live_secrets_file=self.live_secrets_path(spec.name),
                python_paths=[self.environments[directory]]
                if directory in self.environments
                else [],
            ),
            directory=directory,
            log_path=self.workdir / "logs" / f"{spec.name}.log",
            policy=self.policy,
            on_change=self._dirty.set,
        )
        instance.start()
        if runner is None:
            runner = self.runners[spec.name] = WorkloadRunner(spec)
        stop_now = runner.switch_to(spec, instance, self._after_retire)
        if stop_now:
            await asyncio.gather(*(inst.stop() for inst in stop_now))
        log.info("%s: started version %s (generation %s)", spec.name, spec.version, spec.generation)

    def _workload_env(self, spec: WorkloadSpec) -> dict[str, str]:
        """The spec's env plus the edge's own token (the master sends none on this runtime), unless
        the deployment brings its own (in env or in edgeconfig.xml)."""
        token = self.edge_token()
        if token is None or "EDGE_TOKEN" in spec.env or "<Token>" in (spec.edgeconfig_xml or ""):
            return spec.env
        return {**spec.env, "EDGE_TOKEN": token}

    async def restart_all(self) -> None:
        """A new edge token: every workload restarts with it (blue/green, as an update does)."""
        async with self._lock:
            for runner in list(self.runners.values()):
                try:
                    await self._apply_one(runner.spec, force=True)
                except PrepareError as exc:
                    log.warning(
                        "%s: not restarted with the renewed token: %s", runner.spec.name, exc
                    )
            await self.flush()

    async def _remove(self, name: str) -> None:
        runner = self.runners.pop(name)
        await asyncio.gather(*(inst.stop() for inst in runner.instances()))
        await to_thread(shutil.rmtree, self.workdir / "workloads" / name, True)
        self.live_path(name).unlink(missing_ok=True)
        self.live_secrets_path(name).unlink(missing_ok=True)
        await to_thread(self._prune_environments)
        log.info("%s removed", name)

    def _runner_waiting(self, spec: WorkloadSpec, reason: str) -> None:
        runner = self.runners.setdefault(spec.name, WorkloadRunner(spec))
        runner.spec = spec
        runner.prepare_error = reason

    async def _after_retire(self, runner: WorkloadRunner) -> None:
        """Old versions stopped: drop their directories and archives nobody needs."""
        async with self._lock:
            if runner.current is None or self.runners.get(runner.spec.name) is not runner:
                return
            keep = {inst.directory for inst in runner.instances()}
            base = self.workdir / "workloads" / runner.spec.name
            await to_thread(_remove_dirs_except, base, keep)
            await to_thread(self._prune_environments)
            in_use = {r.spec.package_digest for r in self.runners.values()}
            await to_thread(self.fetcher.prune, in_use, self.settings.cache_keep)
            self._dirty.set()

    async def _retry_prepare(self, specs: list[WorkloadSpec]) -> None:
        """Packages a restarted agent could not get (master down): try again with backoff."""
        delay = 2.0
        while specs and not self._closing.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=delay)
            if self._closing.is_set():
                return
            still = []
            async with self._lock:
                for spec in specs:
                    runner = self.runners.get(spec.name)
                    if runner is None or runner.current is not None:
                        continue  # removed or replaced by the master meanwhile
                    try:
                        await self._apply_one(spec, force=True)
                    except PrepareError as exc:
                        runner.prepare_error = str(exc)
                        still.append(spec)
                self._dirty.set()
            specs = still
            delay = min(delay * 2, 60.0)

    def live_path(self, name: str) -> Path:
        """The workload's live settings file: one path for every version (no restart cause)."""
        return self.workdir / "live" / f"{name}.json"

    def request_live_view(self, fps: float, width: int, budget_bps: int, ttl_s: float) -> None:
        """A live-view request (MQTT or the agent's API): written for the workers, with its end
        on this edge's clock (receipt + ``ttl_s``; 0 ends a view at once)."""
        view = {"fps": fps, "width": width, "budget_bps": budget_bps, "until": time.time() + ttl_s}
        write_live(self.view_path(), view)

    def view_path(self) -> Path:
        """The live-view request the workers watch (shared.contracts.live_view.LiveViewFile)."""
        return self.workdir / "live" / VIEW_FILE

    def live_secrets_path(self, name: str) -> Path:
        """The workload's live secrets file (0600; absent while there are none)."""
        return self.workdir / "live" / f"{name}.secrets.json"

    # -- packages ----------------------------------------------------------------------------------
    def directory_for(self, spec: WorkloadSpec) -> Path:
        digest12 = spec.package_digest.split(":", 1)[1][:12]
        return self.workdir / "workloads" / spec.name / f"{spec.version}-{digest12}"

    def _base_for(self, spec: WorkloadSpec) -> str | None:
        """The archive a patch to ``spec``'s may start from: the one this workload runs now."""
        runner = self.runners.get(spec.name)
        if runner is None or runner.spec.package_digest == spec.package_digest:
            return None
        return runner.spec.package_digest

    async def _prepare(self, spec: WorkloadSpec) -> Path:
        """Package fetched (or cached), verified, unpacked into its version directory,
        edgeconfig.xml written."""
        directory = self.directory_for(spec)
        try:
            if not directory.is_dir():
                archive = await self.fetcher.fetch(spec.package_digest, base=self._base_for(spec))
                directory.parent.mkdir(parents=True, exist_ok=True)
                await to_thread(
                    unpack,
                    archive,
                    directory,
                    max_files=self.settings.max_files,
                    max_bytes=self.settings.max_unpacked_bytes,
                )
            await to_thread(_write_edgeconfig, directory, spec.edgeconfig_xml)
            await self._prepare_environment(directory)
        except DependencyError as exc:
            raise PrepareError(spec.name, f"dependencies: {exc}", kind="refused") from exc
        except DigestMismatch as exc:
            raise PrepareError(spec.name, str(exc), kind="mismatch") from exc
        except FetchError as exc:
            raise PrepareError(spec.name, str(exc), kind="unavailable") from exc
        except UnsafePackage as exc:
            raise PrepareError(spec.name, f"package refused: {exc}", kind="refused") from exc
        return directory

    async def _prepare_environment(self, directory: Path) -> None:
        """The package's requirements installed (or found cached) before it is switched to: the
        running version keeps serving meanwhile."""
        requirements, wheelhouse = await to_thread(read_requirements, directory)
        if not requirements:
            self.environments.pop(directory, None)
            return
        self.environments[directory] = await to_thread(
            ensure_environment,
            self.workdir / "envs",
            requirements,
            wheelhouse,
            index_url=self.settings.pip_index_url,
            timeout_s=self.settings.pip_timeout_s,
        )

    def _prune_environments(self) -> None:
        in_use = {inst.directory for r in self.runners.values() for inst in r.instances()}
        for directory in list(self.environments):
            if directory not in in_use:
                del self.environments[directory]
        prune_environments(self.workdir / "envs", set(self.environments.values()))

    # -- state -------------------------------------------------------------------------------------
    def _snapshot(self) -> SavedState:
        children = [
            ChildRecord(name=r.spec.name, version=i.version, pid=i.pid, start_time=i.pid_start)
            for r in self.runners.values()
            for i in r.instances()
            if i.pid is not None
        ]
        self._snapshots += 1
        return SavedState(
            workloads=[r.spec for r in self.runners.values()],
            children=children,
            seq=self._snapshots,
        )

    async def _persist_loop(self) -> None:
        """Writes state.json whenever something changed (pids included), coalescing bursts."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await to_thread(self.store.save, self.settings.node, self._snapshot())
            except OSError as exc:
                log.error("cannot write %s: %s", self.store.path, exc)
            for listener in self.listeners:
                listener()
            await asyncio.sleep(0.05)

    async def flush(self) -> None:
        """Desired-set changes are on disk before the API answers: an accepted change survives a
        crash."""
        await to_thread(self.store.save, self.settings.node, self._snapshot())

    # -- reads -------------------------------------------------------------------------------------
    def statuses(self) -> list[WorkloadStatus]:
        return [self.runners[name].status() for name in sorted(self.runners)]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in self.statuses():
            counts[status.state] = counts.get(status.state, 0) + 1
        return counts


def _write_edgeconfig(directory: Path, xml: str) -> None:
    if not xml:
        return
    target = directory / "edgeconfig.xml"
    tmp = directory / ".edgeconfig.xml.tmp"
    tmp.write_text(xml)
    os.replace(tmp, target)


def write_live(path: Path, live: dict) -> None:
    """Atomically (temporary file, rename): a program re-reading it never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(live, sort_keys=True))
    os.replace(tmp, path)


def write_live_secrets(path: Path, secrets: dict) -> None:
    """Like ``write_live``, created 0600 (only the agent's user reads it); removed when empty."""
    if not secrets:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(json.dumps(secrets, sort_keys=True))
    os.replace(tmp, path)


def _remove_dirs_except(base: Path, keep: set[Path]) -> None:
    if not base.is_dir():
        return
    for child in base.iterdir():
        if child.is_dir() and child not in keep:
            shutil.rmtree(child, ignore_errors=True)


def reap_leftovers(workdir: Path, recorded: Iterable[ChildRecord], timeout: float) -> list[int]:
    """Stop children of a previous agent run (blocking; run in a thread).

    Found two ways: the pids saved in state.json (checked against their start time, so a reused pid
    is left alone) and the workdir marker in every child's environment (covers a crash before the
    save). Each is a process-group leader: its whole group is stopped.
    """
    leaders: dict[int, psutil.Process] = {}
    for rec in recorded:
        try:
            proc = psutil.Process(rec.pid)
            if rec.start_time is None or abs(proc.create_time() - rec.start_time) < 0.05:
                leaders[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me or proc.pid in leaders:
            continue
        try:
            if proc.environ().get(MARK_WORKDIR) == str(workdir):
                leaders[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    if not leaders:
        return []
    groups = []
    for pid in leaders:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                groups.append(pid)
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(list(leaders.values()), timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    for pgid in groups:  # whatever the leaders left in their groups
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return sorted(leaders)


__all__ = ["PrepareError", "Supervisor", "WorkloadRunner", "describe_exit"]
