"""Policy 3, recovery: redeploy an AI that does not run (failed, crash-looping, or its edge silent
past a timeout); after K redeploys that did not help, mark the edge degraded (policy 4 then moves
its work). The edge is marked active again once everything on it runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.optimizer.model.config import RecoveryConfig
from services.optimizer.model.context import Cycle, RolloutStatus
from services.optimizer.model.state import Deployment, Edge, parse_ts
from shared.contracts.decisions import Action, Policy
from shared.contracts.fleet import EdgeStatus, ObservedState

NAME = Policy.RECOVERY


def _owned_by_rollout(cycle: Cycle, d: Deployment) -> bool:
    """A wave member on the new version is judged by the version policy (it rolls back failures)."""
    pkg = cycle.state.packages.get(d.ai_id)
    if pkg is None:
        return False
    return any(
        r.status == RolloutStatus.ACTIVE
        and r.filename == d.filename
        and r.to_version_key == pkg.version_key
        and d.edge_id in r.members
        for r in cycle.inp.rollouts
    )


def _candidates(cycle: Cycle, cfg: RecoveryConfig) -> list[Iterable[int]]:
    """Edges silent past the timeout (with a margin), with a deployment that does not run or
    restarted ``crash_restarts`` times, or remembered."""
    cols = cycle.state.columns
    e, d = cols.edges, cols.deployments
    silent = e["seen"] < cycle.now.timestamp() - cfg.silent_after_s + 0.001
    troubled = ~d["running"] | (d["restarts"] >= cfg.crash_restarts)
    return [cols.edge_ids(silent), cols.edges_of(troubled), cycle.remembered(NAME)]


def apply(cycle: Cycle) -> None:
    cfg = cycle.config.recovery
    if not cfg.enabled:
        return
    memory, nodes = cycle.inp.memory, cycle.state.nodes
    running, crash_restarts = ObservedState.RUNNING, cfg.crash_restarts
    for edge in cycle.candidates(lambda: _candidates(cycle, cfg)):
        deps = cycle.running(edge.id)
        node = nodes.get(edge.nid)
        heard = node.last_seen if node is not None else None
        # The common case, cheaply (inline: once per edge of the fleet): everything runs, nothing
        # crash-loops, the edge is heard, nothing is remembered.
        if (NAME, edge.id) not in memory and (
            heard is None or (cycle.now - heard).total_seconds() <= cfg.silent_after_s
        ):
            for d in deps:
                if d.observed != running or d.restarts >= crash_restarts:
                    break
            else:
                continue
        mem = cycle.recall(NAME, edge.id)
        if not deps:
            if mem:
                cycle.remember(NAME, edge.id, None)
            continue
        silent_for = (
            (cycle.now - node.last_seen).total_seconds() if node and node.last_seen else 0.0
        )
        silent = silent_for > cfg.silent_after_s
        failing = _failing(cycle, cfg, deps, mem, silent_for if silent else None)
        if not failing:
            _recovered(cycle, edge, deps, mem, silent=silent)
            continue
        last = parse_ts(mem.get("last_at"))
        if last is not None and (cycle.now - last).total_seconds() < cfg.retry_after_s:
            continue
        attempts = int(mem.get("attempts", 0))
        if attempts >= cfg.max_redeploys:
            _give_up(cycle, edge, mem, attempts, failing)
        else:
            _redeploy(cycle, cfg, edge, mem, attempts, failing)


def _failing(
    cycle: Cycle,
    cfg: RecoveryConfig,
    deps: list[Deployment],
    mem: dict[str, Any],
    silent_for: float | None,
) -> list[tuple[Deployment, str]]:
    """The deployments that do not run, each with why (``silent_for``: the edge is silent)."""
    baselines: dict[str, int] = mem.get("restarts", {})
    failing: list[tuple[Deployment, str]] = []
    for d in deps:
        if _owned_by_rollout(cycle, d):
            continue
        current = d.observed_generation >= d.generation
        restarts = d.restarts - baselines.get(str(d.id), 0)
        if silent_for is not None:
            failing.append((d, f"edge silent for {silent_for:.0f} s"))
        elif current and d.observed == ObservedState.FAILED:
            failing.append((d, f"observed failed: {d.observed_reason or 'no reason given'}"))
        elif current and restarts >= cfg.crash_restarts:
            failing.append((d, f"crash loop: {restarts} restarts"))
    return failing


def _recovered(
    cycle: Cycle, edge: Edge, deps: list[Deployment], mem: dict[str, Any], *, silent: bool
) -> None:
    """Nothing fails: once everything runs at its generation, forget, and mark a degraded edge
    active."""
    healthy = not silent and all(
        d.observed == ObservedState.RUNNING and d.observed_generation >= d.generation for d in deps
    )
    if not healthy or not mem:
        return
    plan = cycle.plan
    if mem.get("degraded") and plan.status_of(edge) == EdgeStatus.DEGRADED:
        decision = plan.decide(
            NAME,
            Action.MARK_ACTIVE,
            "every AI on the edge runs again after recovery",
            edge=edge,
            inputs=cycle.inputs(edge, redeploys=mem.get("attempts", 0)),
        )
        plan.set_edge_status(edge, EdgeStatus.ACTIVE, decision)
    cycle.remember(NAME, edge.id, None)


def _give_up(
    cycle: Cycle,
    edge: Edge,
    mem: dict[str, Any],
    attempts: int,
    failing: list[tuple[Deployment, str]],
) -> None:
    """K redeploys did not help: the edge is marked degraded (overload moves its work)."""
    plan = cycle.plan
    if plan.status_of(edge) == EdgeStatus.DEGRADED:
        return
    why = _why(failing)
    decision = plan.decide(
        NAME,
        Action.MARK_DEGRADED,
        f"{attempts} redeploys did not help: {why}",
        edge=edge,
        inputs=cycle.inputs(edge, redeploys=attempts, failing=why),
    )
    plan.set_edge_status(edge, EdgeStatus.DEGRADED, decision)
    mem["degraded"] = True
    cycle.remember(NAME, edge.id, mem)


def _redeploy(
    cycle: Cycle,
    cfg: RecoveryConfig,
    edge: Edge,
    mem: dict[str, Any],
    attempts: int,
    failing: list[tuple[Deployment, str]],
) -> None:
    plan = cycle.plan
    for d, reason in failing:
        decision = plan.decide(
            NAME,
            Action.REDEPLOY,
            f"{d.filename}: {reason}; redeploy {attempts + 1} of {cfg.max_redeploys}",
            edge=edge,
            deployment=d,
            inputs=cycle.inputs(
                edge,
                observed=d.observed,
                observed_reason=d.observed_reason,
                generation=d.generation,
                observed_generation=d.observed_generation,
                restarts=d.restarts,
                attempt=attempts + 1,
            ),
        )
        plan.redeploy(d, decision)
    mem.update(
        attempts=attempts + 1,
        last_at=cycle.now.isoformat(),
        restarts={str(d.id): d.restarts for d, _ in failing},
    )
    cycle.remember(NAME, edge.id, mem)


def _why(failing: list[tuple[Deployment, str]]) -> str:
    return "; ".join(f"{d.filename} (deployment {d.id}): {reason}" for d, reason in failing)
