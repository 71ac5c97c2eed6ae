"""The reconcile loop: read the desired state from setup, make every edge's runtime match it,
and record what runs back in setup.

Each pass is idempotent and keeps nothing it needs between passes: desired state comes from
setup, actual state from the runtimes, and "has the observed state changed" is answered against
setup's own rows. A master killed at any point and started again just runs the next pass.
Passes run on a timer (MASTER_RECONCILE_SECONDS) and at once when ``trigger()`` is called
(POST /reconcile); triggers during a pass fold into one more pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends

from services.master.artifacts.access import ArtifactAccess
from services.master.builds.service import BuildRunner
from services.master.context import MasterContext
from services.master.drivers.base import (
    DriverError,
    DriverUnavailable,
    EdgeTarget,
    ObservedWorkload,
    RuntimeDriver,
    WorkloadState,
)
from services.master.pull.runtime import PullRuntime
from services.master.reconcile.desired import (
    EdgePlan,
    NamedWorkload,
    helped_edge,
    plan,
    runtime_of,
)
from services.master.reconcile.drivers import DriverSet
from services.master.reconcile.workload_token import WorkloadTokens
from services.master.sites.copies import SiteCopies
from services.master.sites.membership import Membership
from shared.contracts.events import Event, EventType
from shared.contracts.fleet import (
    DesiredState,
    FleetDeployment,
    FleetEdge,
    FleetSnapshot,
    ObservedState,
    PackageStatus,
)
from shared.contracts.master import ClusterHealth, MasterHealth, ObservedReport, Runtime
from shared.contracts.updates import ObservedSet
from shared.deps import from_app_state
from shared.errors import DomainError

log = logging.getLogger("edge.master.reconcile")

EDGE_CONCURRENCY = 16
# Agent-pull edges converge one after the other in the pass's own task (each is a few dict
# operations on the board, no I/O), giving the event loop back after this many: the agents'
# fetches of the sets just committed are served meanwhile.
PULL_EDGES_PER_SLICE = 25
REASON_MAX = 4000
RuntimeFailure = (DriverError, DriverUnavailable)


@dataclass(frozen=True, slots=True)
class Observation:
    """What a pass saw of one deployment; reported to setup (an ObservedReport) when it differs
    from setup's row. A plain object: a pass at 100,000 deployments builds one for each."""

    id: int
    observed: ObservedState
    reason: str | None
    generation: int
    restarts: int

    def report(self) -> ObservedReport:
        return ObservedReport(
            id=self.id,
            observed=self.observed,
            reason=self.reason,
            generation=self.generation,
            restarts=self.restarts,
        )


@dataclass
class EdgeOutcome:
    """One edge after its pass: what was seen of its deployments, and what the summary shows."""

    observations: list[Observation]
    info: dict[str, Any] = field(default_factory=dict)


def report(
    dep: FleetDeployment,
    observed: ObservedState,
    reason: str | None,
    *,
    generation: int | None = None,
    restarts: int | None = None,
) -> Observation:
    """What to report for ``dep``; generation and restarts default to what setup has."""
    return Observation(
        id=dep["id"],
        observed=observed,
        reason=reason[:REASON_MAX] if reason else reason,
        generation=dep.get("observed_generation") or 0 if generation is None else generation,
        restarts=dep.get("restarts") or 0 if restarts is None else restarts,
    )


def to_setup_state(ow: ObservedWorkload) -> tuple[ObservedState, str | None]:
    """Setup knows pending, running, failed and removed; a restarting workload is pending."""
    if ow.state == WorkloadState.RUNNING:
        return ObservedState.RUNNING, ow.reason
    if ow.state == WorkloadState.RESTARTING:
        why = f": {ow.reason}" if ow.reason else ""
        return ObservedState.PENDING, f"restarting after {ow.restarts} restart(s){why}"
    if ow.state == WorkloadState.FAILED:
        parts = [ow.reason or "failed"]
        if ow.exit_code is not None and "exit" not in (ow.reason or ""):
            parts.append(f"exit code {ow.exit_code}")
        if ow.log_tail:
            parts.append("last lines: " + " | ".join(ow.log_tail[-5:]))
        return ObservedState.FAILED, "; ".join(parts)[:REASON_MAX]
    return ObservedState.PENDING, ow.reason


class Reconciler:
    def __init__(
        self,
        ctx: MasterContext,
        builds: BuildRunner,
        membership: Membership,
        remove_ai: Callable[[int], Awaitable[object]] | None = None,
    ):
        self.ctx = ctx
        self.builds = builds
        self.membership = membership
        self.copies = SiteCopies(ctx)
        self._remove_ai = remove_ai
        self.served: dict[int, str] = {}  # cluster id -> name, as of the last pass
        # The agent-pull runtime's board and notices, shared with the routes its agents call.
        self.pull = PullRuntime(ctx)
        self.drivers = DriverSet(ctx.settings, pull=self.pull.driver)
        # Each edge's runtime driver and target, as the last pass found them (live view).
        self.reached: dict[str, tuple[RuntimeDriver, EdgeTarget]] = {}
        self._wake = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # (ai id, digest) -> manifest: content-addressed, never stale.
        self._manifests: dict[tuple[int, str | None], dict[str, Any]] = {}
        self.passes = 0
        self.last: dict[str, Any] = {"state": "never run"}
        self._workload_tokens = WorkloadTokens(ctx.setup)
        # Which archives each edge may fetch (GET /artifacts), refreshed by every pass.
        self.artifact_access = ArtifactAccess(ctx.setup)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self.ctx.settings.reconcile_on_start:
            self._wake.set()
        self._task = asyncio.create_task(self._loop(), name="reconcile")
        self.pull.start()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.drivers.aclose()
        await self.pull.stop()

    async def open(self) -> None:
        """Several processes serve the site: join the shared board before the first pass."""
        shared = self.pull.shared
        if shared is not None:

            def on_report(nid: str, observed: ObservedSet, at: float) -> None:
                if self.pull.take_report(nid, observed, at=at):
                    self.trigger()

            await shared.start(on_report=on_report, on_reconcile=self.trigger)

    def leads(self) -> bool:
        """This process reconciles (always, unless another process of the site leads)."""
        return self.pull.shared is None or self.pull.shared.leads

    def trigger(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        period = self.ctx.settings.reconcile_seconds
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=period)
            self._wake.clear()
            if self._stopping:
                break
            if not self.leads():
                continue  # another process of this site reconciles
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a pass that breaks must not end the loop
                log.exception("reconcile pass failed")

    # --- one pass -----------------------------------------------------------------------
    async def run_once(self) -> dict[str, Any]:
        async with self._pass_lock:
            started = time.time()
            summary: dict[str, Any] = {"started_at": started, "state": "running"}
            try:
                summary.update(await self._pass())
                summary["state"] = "ok"
            except DomainError as exc:
                summary.update(state="error", error=exc.message)
                log.warning("reconcile pass stopped: %s", exc.message)
            summary["finished_at"] = time.time()
            summary["duration_s"] = round(summary["finished_at"] - started, 3)
            self.passes += 1
            summary["pass"] = self.passes
            self.last = summary
            return summary

    async def _pass(self) -> dict[str, Any]:
        ctx = self.ctx
        every_cluster = await ctx.setup.clusters()
        served = self.membership.served(every_cluster)
        clusters = {c.id: c for c in every_cluster if c.id in served}
        self.served = {c.id: c.name for c in clusters.values()}
        # Only the edges of the clusters this master serves (its site).
        snapshot = await ctx.setup.snapshot(cluster_ids=served)
        self.artifact_access.remember(snapshot)  # before apply: the agents fetch what it names
        if ctx.settings.builds_for_fleet:
            self._restart_stalled_builds(snapshot)
        manifests = await self._manifests_for(snapshot)
        await self._site_copies(snapshot, manifests)
        runtimes = {e["id"]: runtime_of(e, clusters) for e in snapshot["edges"]}
        tokens = await self._workload_tokens.for_edges(_edges_running(snapshot), runtimes)
        helped = _edges_helped(snapshot)
        cameras = await self._helped_cameras(helped)
        site_problems = {i: (p.observed, p.reason) for i, p in self.copies.problems.items()}
        # Pure work on this pass's own snapshot (about 0.1 s a thousand edges): in a thread, so
        # the agents' requests are answered meanwhile.
        plans = await asyncio.to_thread(
            plan,
            snapshot,
            clusters,
            manifests,
            vms=ctx.settings.vms_host_port,
            vms_path=ctx.settings.vms_path,
            # none on the agent runtime: the agent hands over the edge's own
            token_for=lambda nid, runtime: tokens.get(nid),
            cameras=cameras,
            site_problems=site_problems,
        )
        outcomes = await self._converge_all(p for p in plans.values() if p.has_work)
        previous = {d["id"]: d for d in snapshot["deployments"]}
        reports = [
            seen.report()
            for o in outcomes
            for seen in o.observations
            if _changed(previous.get(seen.id), seen)
        ]
        await ctx.setup.report_observed(reports)
        if ctx.metrics is not None:
            ctx.metrics.observe_pass(previous, reports)
        self._announce(reports, previous)
        edges = {str(o.info["edge_id"]): o.info for o in outcomes}
        await self._catch_up_removals(snapshot)
        return {
            "clusters": sorted(self.served.values()),
            "edges": edges,
            "reported": len(reports),
            "deployments": len(previous),
            "site_problems": {str(i): p.reason for i, p in self.copies.problems.items()},
        }

    async def _site_copies(
        self, snapshot: FleetSnapshot, manifests: dict[int, dict[str, Any]]
    ) -> None:
        """This site's copy of every package its deployments need (archive, and image in the
        site registry); the workloads then name the site registry's image."""
        needed = [ai for ai in snapshot["ai_packages"] if ai["id"] in manifests]
        await self.copies.ensure(needed, manifests)
        for ai in needed:
            ref = self.copies.site_image(ai)
            if ref:
                ai["image_ref"] = ref

    async def _catch_up_removals(self, snapshot: FleetSnapshot) -> None:
        """AIs removed while this master was away: their image in the site registry and their
        archive here go now (the archive's presence says the clean-up is still to do)."""
        if self._remove_ai is None:
            return
        in_use = {a.get("package_digest") for a in snapshot["ai_packages"]}
        try:
            removed = await self.ctx.setup.list_ais(status=PackageStatus.REMOVED.value)
        except DomainError as exc:
            log.info("removed AIs not listed: %s", exc.message)
            return
        for ai in removed:
            digest = ai.package_digest
            if digest and digest not in in_use and self.ctx.store.exists(digest):
                self.copies.forget(ai.id)
                try:
                    await self._remove_ai(ai.id)
                except DomainError as exc:
                    log.warning("clean-up of removed AI %s: %s", ai.id, exc.message)

    def health(self) -> MasterHealth:
        """What this master reports to setup with each heartbeat: per cluster it serves, its
        edges and how many are unreachable; the AIs this site cannot run now, and why."""
        last = self.last
        per_cluster = {name: ClusterHealth() for name in self.served.values()}
        for info in (last.get("edges") or {}).values():
            entry = per_cluster.get(info.get("cluster") or "")
            if entry is not None:
                entry.edges += 1
                entry.unreachable += 0 if info.get("reachable", True) else 1
        state: Literal["ok", "degraded", "error"] = (
            "ok" if last.get("state") in ("ok", "never run") else "error"
        )
        if self.copies.problems:
            state = "degraded"
        return MasterHealth(
            state=state,
            pass_number=last.get("pass"),
            pass_state=last.get("state"),
            error=last.get("error"),
            clusters=per_cluster,
            registry=self.ctx.registry.host if self.ctx.registry else None,
            site_problems={str(i): p.reason for i, p in self.copies.problems.items()},
        )

    async def _converge_all(self, plans: Iterable[EdgePlan]) -> list[EdgeOutcome]:
        """Every edge's pass: those reached through a runtime (network calls) concurrently,
        ``EDGE_CONCURRENCY`` at a time; the agent-pull edges, whose driver only stages and
        commits sets on the board, in the pass's own task, slice by slice."""
        limiter = asyncio.Semaphore(EDGE_CONCURRENCY)
        pull: list[EdgePlan] = []
        others: list[EdgePlan] = []
        for p in plans:
            (pull if p.runtime == Runtime.AGENT_PULL else others).append(p)
        self.pull.board.plan(len(pull))  # the notices' spread is for all of them

        async def one(p: EdgePlan) -> EdgeOutcome:
            async with limiter:
                return await self._converge_edge(p)

        async def pulled() -> list[EdgeOutcome]:
            outcomes = []
            for i, p in enumerate(pull, 1):
                outcomes.append(await self._converge_edge(p))  # never waits: no I/O
                if i % PULL_EDGES_PER_SLICE == 0:
                    await asyncio.sleep(0)  # the agents' fetches, the notices go out
            return outcomes

        reached, from_board = await asyncio.gather(
            asyncio.gather(*(one(p) for p in others)), pulled()
        )
        return [*reached, *from_board]

    def _announce(
        self, reports: list[ObservedReport], previous: dict[int, FleetDeployment]
    ) -> None:
        """Log every change; tell the optimizer about deployments that have just failed."""
        for r in reports:
            why = f" ({r.reason})" if r.reason else ""
            log.info("deployment %s observed %s%s", r.id, r.observed, why)
            before = previous[r.id]
            if r.observed == ObservedState.FAILED and before["observed"] != ObservedState.FAILED:
                self.ctx.optimizer.send(
                    Event(
                        type=EventType.DEPLOYMENT_FAILED,
                        edge_id=before["edge_id"],
                        deployment_id=r.id,
                        ai_id=before["ai_id"],
                        data={"reason": r.reason},
                    )
                )

    async def _helped_cameras(self, edges: list[FleetEdge]) -> dict[int, str | None]:
        """The camera URL of every edge a helper copy analyses for (setup's
        GET /edges/{id}/camera); an edge whose camera cannot be read now is left out."""
        cameras: dict[int, str | None] = {}
        for edge in edges:
            try:
                cameras[edge["id"]] = await self.ctx.setup.camera_url(edge["id"])
            except DomainError as exc:
                log.warning(
                    "camera of edge %s not available for its helper: %s", edge["id"], exc.message
                )
        return cameras

    def _restart_stalled_builds(self, snapshot: FleetSnapshot) -> None:
        """Builds left half-way (a master killed mid-build, setup down for a moment) run again."""
        running = self.builds.in_flight()
        stalled = (PackageStatus.UPLOADED, PackageStatus.BUILDING)
        for ai in snapshot["ai_packages"]:
            if ai["status"] in stalled and ai["id"] not in running:
                self.builds.kick(ai["id"])

    async def _manifests_for(self, snapshot: FleetSnapshot) -> dict[int, dict[str, Any]]:
        """The manifest (command, env, resources) of every ready AI a desired deployment names."""
        needed = {
            d["ai_id"] for d in snapshot["deployments"] if d["desired"] == DesiredState.RUNNING
        }
        out: dict[int, dict[str, Any]] = {}
        for ai in snapshot["ai_packages"]:
            if ai["id"] not in needed or ai["status"] != PackageStatus.READY:
                continue
            key = (ai["id"], ai.get("package_digest"))
            if key not in self._manifests:
                full = await self.ctx.setup.get_ai(ai["id"])
                if not full.manifest:
                    continue
                self._manifests[key] = full.manifest
            out[ai["id"]] = self._manifests[key]
        return out

    # --- one edge -----------------------------------------------------------------------
    async def _converge_edge(self, p: EdgePlan) -> EdgeOutcome:
        """Apply the desired workloads, remove the rest, observe: the reports for this edge."""
        outcome = EdgeOutcome(
            observations=[report(b.deployment, b.observed, b.reason) for b in p.blocked],
            info={
                "edge_id": p.edge["id"],
                "name": p.edge["name"],
                "cluster": p.cluster,
                "runtime": p.runtime,
                "workloads": [],
            },
        )
        try:
            driver = await self.drivers.get(p.runtime, p.namespace, p.cluster)
            self.reached[p.target.nid] = (driver, p.target)
            before = await driver.observe(p.target)
        except RuntimeFailure as exc:
            outcome.info.update(error=str(exc), reachable=False)
            outcome.observations += [
                report(dep, ObservedState.PENDING, f"edge unreachable: {exc}")
                for dep, _wl in p.workloads
            ]
            return outcome
        outcome.info["reachable"] = True
        apply_errors = await self._apply(driver, p)
        await self._remove_unwanted(driver, p, before, outcome.info)
        waiting = any(b.observed == ObservedState.PENDING for b in p.blocked)
        await driver.commit(p.target, waiting=waiting)
        after = (
            await self._observe(driver, p, outcome.info)
            if (p.workloads or p.removed or before)
            else []
        )
        present = {ow.name: ow for ow in after if ow.state != WorkloadState.STOPPED}
        outcome.observations += [
            _workload_report(dep, wl, present.get(wl.name), apply_errors.get(dep["id"]))
            for dep, wl in p.workloads
        ]
        outcome.observations += [
            _attached_report(dep, host, present.get(host.name), apply_errors)
            for dep, host in p.attached
        ]
        outcome.observations += [
            report(dep, ObservedState.REMOVED, None, generation=dep["generation"])
            for dep in p.removed
            if _gone(dep, p, present)
        ]
        outcome.info["workloads"] = [_workload_info(ow) for ow in after]
        return outcome

    async def _apply(
        self, driver: RuntimeDriver, p: EdgePlan
    ) -> dict[int, tuple[ObservedState, str]]:
        """Hand every desired workload to the runtime; deployment id -> what to report when it
        refused (failed for good, or pending until the next pass)."""
        errors: dict[int, tuple[ObservedState, str]] = {}
        for dep, wl in p.workloads:
            try:
                await driver.apply(wl)
            except DriverError as exc:
                errors[dep["id"]] = (ObservedState.FAILED, str(exc))
                log.warning(
                    "deployment %s refused by the %s runtime: %s", dep["id"], p.runtime, exc
                )
            except DriverUnavailable as exc:
                errors[dep["id"]] = (ObservedState.PENDING, f"will retry: {exc}")
                log.info("deployment %s not applied yet: %s", dep["id"], exc)
        return errors

    async def _remove_unwanted(
        self,
        driver: RuntimeDriver,
        p: EdgePlan,
        before: list[ObservedWorkload],
        info: dict[str, Any],
    ) -> None:
        """Take away what runs but is not wanted. A deployment waiting for its new AI to build
        keeps what it runs now (no gap on a switch)."""
        wanted = {wl.name for _, wl in p.workloads}
        waiting = {b.deployment["id"] for b in p.blocked if b.observed == ObservedState.PENDING}
        for ow in before:
            if ow.name in wanted or ow.state == WorkloadState.STOPPED:
                continue
            if ow.deployment_id in waiting:
                continue
            try:
                await driver.remove(p.target, ow.name)
            except RuntimeFailure as exc:
                info.setdefault("errors", []).append(f"remove {ow.name}: {exc}")

    async def _observe(
        self, driver: RuntimeDriver, p: EdgePlan, info: dict[str, Any]
    ) -> list[ObservedWorkload]:
        try:
            return await driver.observe(p.target)
        except RuntimeFailure as exc:
            info["error"] = str(exc)
            return []


def _workload_report(
    dep: FleetDeployment,
    wl: NamedWorkload,
    ow: ObservedWorkload | None,
    apply_error: tuple[ObservedState, str] | None,
) -> Observation:
    """A desired workload's report: the runtime's refusal, not there yet, or what it runs."""
    if apply_error is not None:
        state, reason = apply_error
        return report(dep, state, reason, restarts=ow.restarts if ow else None)
    if ow is None:
        return report(dep, ObservedState.PENDING, "not yet started", restarts=0)
    state, why = to_setup_state(ow)
    generation = ow.generation if ow.generation is not None else wl.generation
    return report(dep, state, why, generation=generation, restarts=ow.restarts)


def _attached_report(
    dep: FleetDeployment,
    host: NamedWorkload,
    ow: ObservedWorkload | None,
    apply_errors: dict[int, tuple[ObservedState, str]],
) -> Observation:
    """A helper copy taken on by a running workload (hot hand-off): running, at its own
    generation, once that workload runs with the hand-off in its live settings; else what holds
    that workload up."""
    error = apply_errors.get(host.deployment_id)
    if error is not None:
        return report(dep, error[0], f"{host.name}: {error[1]}", restarts=0)
    if ow is None:
        return report(dep, ObservedState.PENDING, f"{host.name} not yet started", restarts=0)
    state, why = to_setup_state(ow)
    if state == ObservedState.RUNNING:
        why = f"analysed by {host.name}'s running process (hot hand-off, no new process)"
        return report(dep, state, why, generation=dep["generation"], restarts=0)
    return report(dep, state, f"{host.name}: {why or state}", restarts=0)


def _gone(dep: FleetDeployment, p: EdgePlan, present: dict[str, ObservedWorkload]) -> bool:
    """A removed deployment is gone once nothing on the edge carries its id (or, for a runtime
    that does not report deployment ids, its workload name)."""
    if any(ow.deployment_id == dep["id"] for ow in present.values()):
        return False
    named = present.get(p.removed_names.get(dep["id"], ""))
    return named is None or named.deployment_id is not None


def _workload_info(ow: ObservedWorkload) -> dict[str, Any]:
    return {
        "name": ow.name,
        "deployment_id": ow.deployment_id,
        "state": ow.state,
        "version": ow.version,
        "restarts": ow.restarts,
        "reason": ow.reason,
    }


def _changed(before: FleetDeployment | None, r: Observation) -> bool:
    if before is None:
        return False  # deployment not in the snapshot: nothing to report against
    return (
        before["observed"] != r.observed
        or (before.get("observed_reason") or None) != (r.reason or None)
        or int(before.get("restarts") or 0) != r.restarts
        or int(before.get("observed_generation") or 0) != r.generation
    )


def _edges_helped(snapshot: FleetSnapshot) -> list[FleetEdge]:
    """The edges a running helper copy analyses for (the optimizer's hand-over)."""
    wanted = {
        h[0]
        for d in snapshot["deployments"]
        if d["desired"] == DesiredState.RUNNING and (h := helped_edge(d))
    }
    return [e for e in snapshot["edges"] if e["id"] in wanted]


def _edges_running(snapshot: FleetSnapshot) -> list[FleetEdge]:
    """The edges with a deployment that should run (those whose workloads need a token)."""
    wanted = {d["edge_id"] for d in snapshot["deployments"] if d["desired"] == DesiredState.RUNNING}
    return [e for e in snapshot["edges"] if e["id"] in wanted]


ReconcilerDep = Annotated[Reconciler, Depends(from_app_state("reconciler", Reconciler))]
