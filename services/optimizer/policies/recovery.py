"""Policy 3, recovery: redeploy an AI that does not run (failed, crash-looping, or its edge silent
past a timeout); after K redeploys that did not help, mark the edge degraded (policy 4 then moves
its work). The edge is marked active again once everything on it runs."""
from __future__ import annotations

from services.optimizer.engine.context import Cycle
from services.optimizer.engine.state import Deployment, parse_ts
from shared.contracts.decisions import Action, Policy

NAME = Policy.RECOVERY


def _owned_by_rollout(cycle: Cycle, d: Deployment) -> bool:
    """A wave member on the new version is judged by the version policy (it rolls back failures)."""
    pkg = cycle.state.packages.get(d.ai_id)
    if pkg is None:
        return False
    for r in cycle.inp.rollouts:
        if r.status == "active" and r.filename == d.filename and r.to_version_key == pkg.version_key and d.edge_id in r.members:
            return True
    return False


def apply(cycle: Cycle) -> None:
    cfg = cycle.config.recovery
    if not cfg.enabled:
        return
    plan = cycle.plan
    memory = cycle.inp.memory
    nodes = cycle.state.nodes
    crash_restarts = cfg.crash_restarts
    for edge in cycle.edges():
        deps = cycle.running(edge.id)
        node = nodes.get(edge.nid)
        # The common case, cheaply: everything runs at its generation, the edge is heard, nothing remembered.
        if (NAME, edge.id) not in memory and (node is None or node.last_seen is None or (cycle.now - node.last_seen).total_seconds() <= cfg.silent_after_s):
            for d in deps:
                if d.observed != "running" or d.restarts >= crash_restarts:
                    break
            else:
                continue
        mem = cycle.recall(NAME, edge.id)
        if not deps:
            if mem:
                cycle.remember(NAME, edge.id, None)
            continue
        silent_for = (cycle.now - node.last_seen).total_seconds() if node and node.last_seen else 0.0
        silent = silent_for > cfg.silent_after_s
        baselines: dict[str, int] = mem.get("restarts", {})
        failing: list[tuple[Deployment, str]] = []
        for d in deps:
            if _owned_by_rollout(cycle, d):
                continue
            current = d.observed_generation >= d.generation
            restarts = d.restarts - baselines.get(str(d.id), 0)
            if silent:
                failing.append((d, f"edge silent for {silent_for:.0f} s"))
            elif current and d.observed == "failed":
                failing.append((d, f"observed failed: {d.observed_reason or 'no reason given'}"))
            elif current and restarts >= cfg.crash_restarts:
                failing.append((d, f"crash loop: {restarts} restarts"))
        if not failing:
            healthy = not silent and all(d.observed == "running" and d.observed_generation >= d.generation for d in deps)
            if healthy and mem:
                if mem.get("degraded") and plan.status_of(edge) == "degraded":
                    decision = plan.decide(
                        NAME, Action.MARK_ACTIVE, "every AI on the edge runs again after recovery",
                        edge=edge, inputs=cycle.inputs(edge, redeploys=mem.get("attempts", 0)),
                    )
                    plan.set_edge_status(edge, "active", decision)
                cycle.remember(NAME, edge.id, None)
            continue
        last = parse_ts(mem.get("last_at"))
        if last is not None and (cycle.now - last).total_seconds() < cfg.retry_after_s:
            continue
        attempts = int(mem.get("attempts", 0))
        why = "; ".join(f"{d.filename} (deployment {d.id}): {reason}" for d, reason in failing)
        if attempts >= cfg.max_redeploys:
            if plan.status_of(edge) != "degraded":
                decision = plan.decide(
                    NAME, Action.MARK_DEGRADED, f"{attempts} redeploys did not help: {why}",
                    edge=edge, inputs=cycle.inputs(edge, redeploys=attempts, failing=why),
                )
                plan.set_edge_status(edge, "degraded", decision)
                mem["degraded"] = True
                cycle.remember(NAME, edge.id, mem)
            continue
        for d, reason in failing:
            decision = plan.decide(
                NAME, Action.REDEPLOY, f"{d.filename}: {reason}; redeploy {attempts + 1} of {cfg.max_redeploys}",
                edge=edge, deployment=d,
                inputs=cycle.inputs(
                    edge, observed=d.observed, observed_reason=d.observed_reason, generation=d.generation,
                    observed_generation=d.observed_generation, restarts=d.restarts, attempt=attempts + 1,
                ),
            )
            plan.redeploy(d, decision)
        mem.update(
            attempts=attempts + 1,
            last_at=cycle.now.isoformat(),
            restarts={str(d.id): d.restarts for d, _ in failing},
        )
        cycle.remember(NAME, edge.id, mem)
