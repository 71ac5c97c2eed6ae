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
from typing import Any

from services.master.context import MasterContext
from services.master.drivers.base import DriverError, DriverUnavailable, ObservedWorkload, RuntimeDriver
from services.master.reconcile.desired import HELPER, EdgePlan, helped_edge, plan
from services.master.reconcile.drivers import DriverSet
from services.master.reconcile.workload_token import WorkloadTokens
from shared.errors import DomainError

log = logging.getLogger("edge.master.reconcile")

EDGE_CONCURRENCY = 16
REASON_MAX = 4000


def to_setup_state(ow: ObservedWorkload) -> tuple[str, str | None]:
    """Setup knows pending, running, failed and removed; a restarting workload is pending."""
    if ow.state == "running":
        return "running", ow.reason
    if ow.state == "restarting":
        return "pending", f"restarting after {ow.restarts} restart(s)" + (f": {ow.reason}" if ow.reason else "")
    if ow.state == "failed":
        parts = [ow.reason or "failed"]
        if ow.exit_code is not None and "exit" not in (ow.reason or ""):
            parts.append(f"exit code {ow.exit_code}")
        if ow.log_tail:
            parts.append("last lines: " + " | ".join(ow.log_tail[-5:]))
        return "failed", "; ".join(parts)[:REASON_MAX]
    return "pending", ow.reason


class Reconciler:
    def __init__(self, ctx: MasterContext):
        self.ctx = ctx
        self.drivers = DriverSet(ctx.settings)
        self._wake = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._manifests: dict[tuple[int, str | None], dict[str, Any]] = {}  # (ai id, digest): content-addressed cache
        self.passes = 0
        self.last: dict[str, Any] = {"state": "never run"}
        self._workload_tokens = WorkloadTokens(ctx.setup)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self.ctx.settings.reconcile_on_start:
            self._wake.set()
        self._task = asyncio.create_task(self._loop(), name="reconcile")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.drivers.aclose()

    def trigger(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        period = self.ctx.settings.reconcile_seconds
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=period)
            self._wake.clear()
            if self._stopping:
                break
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
        snapshot = await ctx.setup.snapshot()
        self._restart_stalled_builds(snapshot)
        clusters = {c["id"]: c for c in await ctx.setup.clusters()}
        manifests = await self._manifests_for(snapshot)
        runtimes = _runtimes(snapshot, clusters)
        tokens = await self._workload_tokens.for_edges(_edges_running(snapshot), runtimes)
        helped = _edges_helped(snapshot)
        helped_tokens = await self._workload_tokens.for_edges(
            helped, {e["id"]: HELPER for e in helped}
        )
        plans = plan(
            snapshot, clusters, manifests, vms=ctx.settings.vms_host_port, vms_path=ctx.settings.vms_path,
            # none on the agent runtime: the agent hands over the edge's own; a helper copy gets
            # the helped edge's (its detections are that node's)
            token_for=lambda nid, runtime: (
                helped_tokens if runtime == HELPER else tokens
            ).get(nid),
            cameras=await self._helped_cameras(snapshot),
        )
        limiter = asyncio.Semaphore(EDGE_CONCURRENCY)

        async def one(p: EdgePlan) -> tuple[list[dict[str, Any]], dict[str, Any]]:
            async with limiter:
                return await self._converge_edge(p)

        results = await asyncio.gather(*(one(p) for p in plans.values() if p.workloads or p.removed or p.blocked or p.edge.get("agent_url")))
        previous = {d["id"]: d for d in snapshot.get("deployments", [])}
        reports = [r for rs, _ in results for r in rs if _changed(previous.get(r["id"]), r)]
        await ctx.setup.report_observed(reports)
        for r in reports:
            log.info("deployment %s observed %s%s", r["id"], r["observed"], f" ({r['reason']})" if r["reason"] else "")
        for r in reports:
            before = previous.get(r["id"]) or {}
            if r["observed"] == "failed" and before.get("observed") != "failed":
                asyncio.create_task(ctx.optimizer.send(
                    {"type": "deployment_failed", "edge_id": before.get("edge_id"), "deployment_id": r["id"],
                     "ai_id": before.get("ai_id"), "data": {"reason": r["reason"]}}
                ))
        edges = {str(e["edge_id"]): e for _, e in results}
        return {"edges": edges, "reported": len(reports), "deployments": len(previous)}

    async def _helped_cameras(self, snapshot: dict[str, Any]) -> dict[int, str | None]:
        """The camera URL of every edge a helper copy analyses for (setup's
        GET /edges/{id}/camera)."""
        wanted = {e["id"] for e in _edges_helped(snapshot)}
        cameras: dict[int, str | None] = {}
        for edge_id in sorted(wanted):
            try:
                cameras[edge_id] = await self.ctx.setup.camera_url(edge_id)
            except DomainError as exc:
                log.warning("camera of edge %s not available for its helper: %s",
                            edge_id, exc.message)
        return cameras

    def _restart_stalled_builds(self, snapshot: dict[str, Any]) -> None:
        """Builds left half-way (a master killed mid-build, setup down for a moment) run again."""
        running = self.ctx.builds.in_flight()
        for ai in snapshot.get("ai_packages", []):
            if ai["status"] in ("uploaded", "building") and ai["id"] not in running:
                self.ctx.builds.kick(ai["id"])

    async def _manifests_for(self, snapshot: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """The manifest (command, env, resources) of every ready AI a desired deployment names."""
        needed = {d["ai_id"] for d in snapshot.get("deployments", []) if d["desired"] == "running"}
        out: dict[int, dict[str, Any]] = {}
        for ai in snapshot.get("ai_packages", []):
            if ai["id"] not in needed or ai["status"] != "ready":
                continue
            key = (ai["id"], ai.get("package_digest"))
            if key not in self._manifests:
                full = await self.ctx.setup.get_ai(ai["id"])
                if not full.get("manifest"):
                    continue
                self._manifests[key] = full["manifest"]
            out[ai["id"]] = self._manifests[key]
        return out

    async def _converge_edge(self, p: EdgePlan) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Apply the desired workloads, remove the rest, observe: the reports for this edge's deployments."""
        info: dict[str, Any] = {"edge_id": p.edge["id"], "name": p.edge["name"], "runtime": p.runtime, "workloads": []}
        reports = [
            {"id": b.deployment["id"], "observed": b.observed, "reason": b.reason,
             "generation": b.deployment.get("observed_generation") or 0, "restarts": b.deployment.get("restarts") or 0}
            for b in p.blocked
        ]
        try:
            driver = await self.drivers.get(p.runtime, p.namespace)
            before = await driver.observe(p.target)
        except (DriverError, DriverUnavailable) as exc:
            info["error"] = str(exc)
            info["reachable"] = False
            for dep, _wl in p.workloads:
                reports.append({"id": dep["id"], "observed": "pending", "reason": f"edge unreachable: {exc}"[:REASON_MAX],
                                "generation": dep.get("observed_generation") or 0, "restarts": dep.get("restarts") or 0})
            return reports, info
        info["reachable"] = True
        apply_errors: dict[int, tuple[str, str]] = {}
        for dep, wl in p.workloads:
            try:
                await driver.apply(wl)
            except DriverError as exc:
                apply_errors[dep["id"]] = ("failed", str(exc))
                log.warning("deployment %s refused by the %s runtime: %s", dep["id"], p.runtime, exc)
            except DriverUnavailable as exc:
                apply_errors[dep["id"]] = ("pending", f"will retry: {exc}")
                log.info("deployment %s not applied yet: %s", dep["id"], exc)
        wanted = {wl.name for _, wl in p.workloads}
        # A deployment waiting for its new AI to build keeps what it runs now (no gap on a switch).
        waiting = {b.deployment["id"] for b in p.blocked if b.observed == "pending"}
        for ow in before:
            if ow.name not in wanted and ow.state != "removed" and ow.deployment_id not in waiting:
                await self._remove(driver, p, ow.name, info)
        after = await self._observe(driver, p, info) if (p.workloads or p.removed or before) else []
        by_name = {ow.name: ow for ow in after if ow.state != "removed"}
        for dep, wl in p.workloads:
            ow = by_name.get(wl.name)
            if dep["id"] in apply_errors:
                state, reason = apply_errors[dep["id"]]
                generation = dep.get("observed_generation") or 0
                restarts = ow.restarts if ow else dep.get("restarts") or 0
            elif ow is None:
                state, reason, generation, restarts = "pending", "not yet started", dep.get("observed_generation") or 0, 0
            else:
                state, reason = to_setup_state(ow)
                generation = ow.generation if ow.generation is not None else wl.generation
                restarts = ow.restarts
            reports.append({"id": dep["id"], "observed": state, "reason": reason, "generation": generation, "restarts": restarts})
        for dep in p.removed:
            still_there = any(ow.deployment_id == dep["id"] for ow in by_name.values())
            named = by_name.get(p.removed_names.get(dep["id"], ""))
            if named is not None and named.deployment_id is None:
                still_there = True  # a runtime that does not report deployment ids: go by name
            if not still_there:
                reports.append({"id": dep["id"], "observed": "removed", "reason": None,
                                "generation": dep["generation"], "restarts": dep.get("restarts") or 0})
        info["workloads"] = [
            {"name": ow.name, "deployment_id": ow.deployment_id, "state": ow.state, "version": ow.version,
             "restarts": ow.restarts, "reason": ow.reason}
            for ow in after
        ]
        return reports, info

    async def _remove(self, driver: RuntimeDriver, p: EdgePlan, name: str, info: dict[str, Any]) -> None:
        try:
            await driver.remove(p.target, name)
        except (DriverError, DriverUnavailable) as exc:
            info.setdefault("errors", []).append(f"remove {name}: {exc}")

    async def _observe(self, driver: RuntimeDriver, p: EdgePlan, info: dict[str, Any]) -> list[ObservedWorkload]:
        try:
            return await driver.observe(p.target)
        except (DriverError, DriverUnavailable) as exc:
            info["error"] = str(exc)
            return []


def _changed(before: dict[str, Any] | None, report: dict[str, Any]) -> bool:
    if before is None:
        return False  # deployment not in the snapshot: nothing to report against
    return (
        before.get("observed") != report["observed"]
        or (before.get("observed_reason") or None) != (report["reason"] or None)
        or int(before.get("restarts") or 0) != int(report["restarts"])
        or int(before.get("observed_generation") or 0) != int(report["generation"])
    )


def _edges_running(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The edges with a deployment that should run (those whose workloads need a token)."""
    wanted = {d["edge_id"] for d in snapshot.get("deployments", []) if d["desired"] == "running"}
    return [e for e in snapshot.get("edges", []) if e["id"] in wanted]


def _edges_helped(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The edges a running helper copy analyses for (the optimizer's hand-over)."""
    wanted = {
        h[0]
        for d in snapshot.get("deployments", [])
        if d["desired"] == "running" and (h := helped_edge(d))
    }
    return [e for e in snapshot.get("edges", []) if e["id"] in wanted]


def _runtimes(snapshot: dict[str, Any], clusters: dict[int, dict[str, Any]]) -> dict[int, str]:
    """edge id -> its cluster's runtime."""
    return {
        e["id"]: (clusters.get(e.get("cluster_id")) or {}).get("runtime", "agent")
        for e in snapshot.get("edges", [])
    }
