"""Policy 2, version waves: when a newer version of a deployed AI is ready, roll it out in waves
(``first_wave`` edges, each wave ``growth`` times the previous). A wave is judged once every member
runs the new generation (or ``wave_timeout_s`` passed): if more than ``failure_threshold`` of it
failed, the rollout halts; failed members always go back to the version they ran before. A rollout
an operator paused starts no wave (and is not judged) until resumed; one an operator rolled back
sends every member back to the version it ran before and upgrades no edge again."""

from __future__ import annotations

import math

from services.optimizer.model.config import VersionConfig
from services.optimizer.model.context import Cycle, RolloutState, RolloutStatus
from services.optimizer.model.state import Deployment, Package
from shared.contracts.decisions import Action, Policy
from shared.contracts.fleet import ObservedState

NAME = Policy.VERSION


def governing(cycle: Cycle) -> dict[str, RolloutState]:
    """The rollout that governs each filename: the newest one not superseded."""
    found: dict[str, RolloutState] = {}
    for r in cycle.inp.rollouts:
        if r.status == RolloutStatus.SUPERSEDED:
            continue
        cur = found.get(r.filename)
        if cur is None or r.to_version_key > cur.to_version_key:
            found[r.filename] = r
    return found


def target_version(
    cycle: Cycle, edge_id: int, filename: str
) -> tuple[str, Action, RolloutState] | None:
    """(version_key, upgrade or rollback, rollout) this edge should run for filename; None:
    keep."""
    if not cycle.config.version.enabled:
        return None
    r = cycle.governing.get(filename)
    if r is None:
        return None
    if (edge_id in r.failed or r.status == RolloutStatus.ROLLED_BACK) and edge_id in r.previous:
        return r.previous[edge_id], Action.ROLLBACK, r
    if edge_id in r.members and r.status != RolloutStatus.SUPERSEDED:
        return r.to_version_key, Action.UPGRADE, r
    return None


def _wave_size(cfg: VersionConfig, wave: int) -> int:
    return max(1, math.ceil(cfg.first_wave * cfg.growth**wave))


def _judge(cycle: Cycle, d: Deployment | None, r: RolloutState) -> str:
    """ok | failed | pending, for one wave member."""
    if d is None:
        return "ok"  # the operator removed it: nothing to judge
    pkg = cycle.state.packages.get(d.ai_id)
    if pkg is None or pkg.version_key != r.to_version_key or d.observed_generation < d.generation:
        return "pending"
    if d.observed == ObservedState.FAILED or d.restarts >= cycle.config.version.crash_restarts:
        return "failed"
    return "ok" if d.observed == ObservedState.RUNNING else "pending"


def progress(cycle: Cycle, deps_by_filename: dict[str, list[Deployment]]) -> None:
    """Start, advance, halt or complete rollouts (whole-fleet cycles only: waves span the fleet)."""
    cfg = cycle.config.version
    if not cfg.enabled or not cycle.full:
        return
    for filename, deps in deps_by_filename.items():
        newest = cycle.state.newest.get(filename)
        if newest is None:
            continue
        r = next(
            (
                x
                for x in cycle.inp.rollouts
                if x.filename == filename and x.to_version_key == newest.version_key
            ),
            None,
        )
        on_edge = {d.edge_id: d for d in deps}
        if r is None:
            _start(cycle, cfg, newest, deps, on_edge)
        elif r.status == RolloutStatus.COMPLETED:
            # Stragglers (deployed later on an old version) follow without waves.
            late = _outdated_edges(cycle, deps, newest, r)
            if late:
                _enrol(cycle, r, late, on_edge)
        elif r.status == RolloutStatus.ACTIVE:
            _judge_wave(cycle, cfg, r, deps, newest, on_edge)


def _outdated_edges(
    cycle: Cycle, deps: list[Deployment], newest: Package, r: RolloutState | None
) -> list[int]:
    """Edges running an older version than ``newest``, not pinned, not yet in the rollout."""
    out = []
    for d in deps:
        pkg = cycle.state.packages.get(d.ai_id)
        if pkg is None or d.edge_id in cycle.inp.pins or pkg.version_key >= newest.version_key:
            continue
        if r is not None and (d.edge_id in r.members or d.edge_id in r.failed):
            continue
        out.append(d.edge_id)
    return sorted(set(out))


def _start(
    cycle: Cycle,
    cfg: VersionConfig,
    newest: Package,
    deps: list[Deployment],
    on_edge: dict[int, Deployment],
) -> None:
    """A newer version is ready: a rollout whose wave 0 starts now (older active ones are
    superseded)."""
    candidates = _outdated_edges(cycle, deps, newest, None)
    if not candidates:
        return
    filename, now = newest.filename, cycle.now
    for old in cycle.inp.rollouts:
        if old.filename == filename and old.status in (RolloutStatus.ACTIVE, RolloutStatus.PAUSED):
            old.status, old.dirty = RolloutStatus.SUPERSEDED, True
    r = RolloutState(
        filename, newest.version, newest.version_key, RolloutStatus.ACTIVE, 0, now, now, dirty=True
    )
    cycle.inp.rollouts.append(r)
    _enrol(cycle, r, candidates[: _wave_size(cfg, 0)], on_edge)
    cycle.plan.decide(
        NAME,
        Action.ROLLOUT_STARTED,
        f"{filename} {newest.version} is ready: wave 0 of {len(r.members)} edge(s), "
        f"{len(candidates)} to update",
        inputs={
            "filename": filename,
            "to_version": newest.version,
            "outdated_edges": len(candidates),
            "first_wave": cfg.first_wave,
            "growth": cfg.growth,
        },
        acts_on_setup=False,
    )


def _judge_wave(
    cycle: Cycle,
    cfg: VersionConfig,
    r: RolloutState,
    deps: list[Deployment],
    newest: Package,
    on_edge: dict[int, Deployment],
) -> None:
    """Once the current wave has run (or timed out): halt, complete, or start the next wave."""
    plan, now, filename = cycle.plan, cycle.now, r.filename
    wave = [e for e, w in r.members.items() if w == r.wave]
    verdicts = {e: _judge(cycle, on_edge.get(e), r) for e in wave}
    waited = (now - r.wave_started_at).total_seconds()
    pending = [e for e, v in verdicts.items() if v == "pending"]
    if pending and waited < cfg.wave_timeout_s:
        return
    failed = sorted(e for e, v in verdicts.items() if v == "failed") + sorted(pending)
    share = len(failed) / len(wave) if wave else 0.0
    inputs = {
        "filename": filename,
        "to_version": r.to_version,
        "wave": r.wave,
        "members": len(wave),
        "failed": failed,
        "failed_share": round(share, 4),
        "failure_threshold": cfg.failure_threshold,
        "timed_out": sorted(pending),
    }
    if failed:
        r.failed.update(failed)
        r.dirty = True
    if share > cfg.failure_threshold:
        r.status, r.dirty = RolloutStatus.HALTED, True
        plan.decide(
            NAME,
            Action.ROLLOUT_HALTED,
            f"{filename} {r.to_version}: {len(failed)} of {len(wave)} in wave {r.wave} failed "
            f"({share:.0%} > {cfg.failure_threshold:.0%}); failed edges go back",
            inputs=inputs,
            acts_on_setup=False,
        )
        return
    candidates = _outdated_edges(cycle, deps, newest, r)
    if not candidates:
        r.status, r.dirty = RolloutStatus.COMPLETED, True
        plan.decide(
            NAME,
            Action.ROLLOUT_COMPLETED,
            f"{filename} {r.to_version}: every edge updated",
            inputs=inputs,
            acts_on_setup=False,
        )
        return
    r.wave += 1
    r.wave_started_at, r.dirty = now, True
    _enrol(cycle, r, candidates[: _wave_size(cfg, r.wave)], on_edge)
    plan.decide(
        NAME,
        Action.ROLLOUT_WAVE,
        f"{filename} {r.to_version}: wave {r.wave - 1} passed, wave {r.wave} starts",
        inputs=inputs,
        acts_on_setup=False,
    )


def _enrol(
    cycle: Cycle, r: RolloutState, edge_ids: list[int], on_edge: dict[int, Deployment]
) -> None:
    for e in edge_ids:
        r.members[e] = r.wave
        pkg = cycle.state.packages.get(on_edge[e].ai_id)
        if pkg is not None:
            r.previous[e] = pkg.version_key
    r.dirty = True
