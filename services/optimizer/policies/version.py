"""Policy 2, version waves: when a newer version of a deployed AI is ready, roll it out in waves
(``first_wave`` edges, each wave ``growth`` times the previous). A wave is judged once every member
runs the new generation (or ``wave_timeout_s`` passed): if more than ``failure_threshold`` of it
failed, the rollout halts; failed members always go back to the version they ran before. A rollout
an operator paused starts no wave (and is not judged) until resumed; one an operator rolled back
sends every member back to the version it ran before and upgrades no edge again."""

from __future__ import annotations

import math

import numpy as np

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


class FileDeps:
    """The running deployments of one filename (helper copies aside), as the rollouts need them:
    the whole list only when a rollout starts; otherwise the deployment on one edge, and the
    outdated edges (over the mirror's columns when the cycle is ``filtered``)."""

    def __init__(self, cycle: Cycle, filename: str) -> None:
        self.cycle, self.filename = cycle, filename
        self._deps: list[Deployment] | None = None
        self._on_edge: dict[int, Deployment] | None = None

    @property
    def deps(self) -> list[Deployment]:
        if self._deps is None:
            self._deps = [
                d
                for deps in self.cycle.state.by_edge.values()
                for d in deps
                if d.filename == self.filename and not d.helps
            ]
        return self._deps

    def on(self, edge_id: int) -> Deployment | None:
        """The edge's deployment of the filename (the last by id when it has several)."""
        if self._on_edge is not None:
            return self._on_edge.get(edge_id)
        found = None
        for d in self.cycle.state.by_edge.get(edge_id, ()):
            if d.filename == self.filename and not d.helps:
                found = d
        return found

    def outdated(self, newest: Package, r: RolloutState | None) -> list[int]:
        """Edges running an older version than ``newest``, not pinned, not yet in the rollout."""
        cycle = self.cycle
        if cycle.filtered:
            cols = cycle.state.columns
            d = cols.deployments
            packages = sorted(cycle.state.packages.values(), key=lambda p: p.id)
            code = cols.filenames.get(self.filename)
            if not packages or code is None:
                return []
            idx, known = cols.package_lookup(d["ai_id"], np.array([p.id for p in packages]))
            older = np.array([p.version_key < newest.version_key for p in packages])[idx]
            mask = known & older & ~d["helper"] & (d["filename"] == code)
            found = cols.unique_edges_of(mask)
            # Most of a large fleet, when a new version comes: left out as an array.
            skip = set(cycle.inp.pins)
            if r is not None:
                skip |= set(r.members) | r.failed
            if skip:
                found = found[~np.isin(found, np.fromiter(skip, np.int64, len(skip)))]
            ids: list[int] = found.tolist()
            return ids
        candidates = []
        for dep in self.deps:
            pkg = cycle.state.packages.get(dep.ai_id)
            if pkg is not None and pkg.version_key < newest.version_key:
                candidates.append(dep.edge_id)
        out = set()
        for edge_id in candidates:
            if edge_id in cycle.inp.pins:
                continue
            if r is not None and (edge_id in r.members or edge_id in r.failed):
                continue
            out.add(edge_id)
        return sorted(out)


def filenames(cycle: Cycle) -> list[str]:
    """The filenames with a running deployment (helper copies aside), sorted."""
    if cycle.filtered:
        cols = cycle.state.columns
        d = cols.deployments
        codes = set(np.unique(d["filename"][d["alive"] & ~d["helper"]]).tolist())
        return sorted(name for name, code in cols.filenames.items() if code in codes)
    by_edge = cycle.state.by_edge
    return sorted({d.filename for deps in by_edge.values() for d in deps if not d.helps})


def progress(cycle: Cycle) -> None:
    """Start, advance, halt or complete rollouts (whole-fleet cycles only: waves span the fleet)."""
    cfg = cycle.config.version
    if not cfg.enabled or not cycle.full:
        return
    for filename in filenames(cycle):
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
        deps = FileDeps(cycle, filename)
        if r is None:
            _start(cycle, cfg, newest, deps)
        elif r.status == RolloutStatus.COMPLETED:
            # Stragglers (deployed later on an old version) follow without waves.
            late = deps.outdated(newest, r)
            if late:
                _enrol(cycle, r, late, deps)
        elif r.status == RolloutStatus.ACTIVE:
            _judge_wave(cycle, cfg, r, deps, newest)


def _start(
    cycle: Cycle,
    cfg: VersionConfig,
    newest: Package,
    deps: FileDeps,
) -> None:
    """A newer version is ready: a rollout whose wave 0 starts now (older active ones are
    superseded)."""
    candidates = deps.outdated(newest, None)
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
    _enrol(cycle, r, candidates[: _wave_size(cfg, 0)], deps)
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
    deps: FileDeps,
    newest: Package,
) -> None:
    """Once the current wave has run (or timed out): halt, complete, or start the next wave."""
    plan, now, filename = cycle.plan, cycle.now, r.filename
    wave = [e for e, w in r.members.items() if w == r.wave]
    verdicts = {e: _judge(cycle, deps.on(e), r) for e in wave}
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
    candidates = deps.outdated(newest, r)
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
    _enrol(cycle, r, candidates[: _wave_size(cfg, r.wave)], deps)
    plan.decide(
        NAME,
        Action.ROLLOUT_WAVE,
        f"{filename} {r.to_version}: wave {r.wave - 1} passed, wave {r.wave} starts",
        inputs=inputs,
        acts_on_setup=False,
    )


def _enrol(cycle: Cycle, r: RolloutState, edge_ids: list[int], deps: FileDeps) -> None:
    for e in edge_ids:
        r.members[e] = r.wave
        dep = deps.on(e)
        assert dep is not None  # an outdated edge runs the filename
        pkg = cycle.state.packages.get(dep.ai_id)
        if pkg is not None:
            r.previous[e] = pkg.version_key
    r.dirty = True
