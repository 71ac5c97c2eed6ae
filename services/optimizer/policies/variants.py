"""Policies 1 and 2 meet here: the condition picks the ai_class, the rollout picks the version,
and one lookup turns (filename, class, version) into the AI a deployment should run."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from services.optimizer.model.context import Cycle, RolloutState, RolloutStatus
from services.optimizer.policies import environment, version
from shared.contracts.decisions import Action


def _candidates(cycle: Cycle, governing: dict[str, RolloutState]) -> list[Iterable[int]]:
    """Edges with a deployment whose variant the condition would switch (its class is not the
    asked one, and its filename offers the asked one), or whose version a governing rollout would
    move (a member away from the new version, or one going back)."""
    state = cycle.state
    cols = state.columns
    e, d = cols.edges, cols.deployments
    packages = sorted(state.packages.values(), key=lambda p: p.id)
    if not packages:
        return []
    idx, known = cols.package_lookup(d["ai_id"], np.array([p.id for p in packages], np.int64))
    own = known & ~d["helper"]
    found: list[Iterable[int]] = []
    if cycle.config.environment.enabled:
        classes: dict[str, int] = {}
        pkg_class = np.array([classes.setdefault(p.ai_class, len(classes)) for p in packages])
        conditions = sorted(cols.conditions, key=cols.conditions.__getitem__)
        asked_of = np.array(
            [
                classes.setdefault(state.ai_classes[w], len(classes))
                if w in state.ai_classes
                else -1
                for w in conditions
            ]
            + [-1],  # condition code -1 (none): nothing asked
            np.int64,
        )
        # offers[p, c]: package p may switch to class c (the last column: nothing asked)
        offers = np.zeros((len(packages), len(classes) + 1), np.bool_)
        for i, p in enumerate(packages):
            if p.ai_class != cycle.inp.environment_ai_class and state.is_adaptive(p.filename):
                for c in state.classes_of.get(p.filename, ()):
                    if c in classes:
                        offers[i, classes[c]] = True
        asked_by_edge = np.where(e["node"] & ~e["stale"], asked_of[e["condition"]], -1)
        asked = asked_by_edge[d["edge"]]
        switch = own & (asked >= 0) & (asked != pkg_class[idx]) & offers[idx, asked]
        found.append(cols.edges_of(switch))
    for filename, r in governing.items():
        code = cols.filenames.get(filename)
        if code is None:
            continue
        of_file = own & (d["filename"] == code)
        away = np.array([p.version_key != r.to_version_key for p in packages])[idx]
        moving = cols.edges_of(of_file & away)
        found.append(moving[np.isin(moving, np.fromiter(r.members, np.int64, len(r.members)))])
        back = set(r.previous) if r.status == RolloutStatus.ROLLED_BACK else r.failed
        if back:
            going = cols.edges_of(of_file)
            found.append(going[np.isin(going, np.fromiter(back, np.int64, len(back)))])
    return found


def apply(cycle: Cycle) -> None:
    state, plan = cycle.state, cycle.plan
    env_on = cycle.config.environment.enabled
    governing = cycle.governing if cycle.config.version.enabled else {}
    for edge in cycle.candidates(lambda: _candidates(cycle, governing)):
        deps = cycle.running(edge.id)
        if not deps:
            continue
        node = state.nodes.get(edge.nid)
        # The class this edge's condition asks for, once per edge (None: the condition moves
        # nothing).
        asked = (
            state.ai_classes.get(node.condition)
            if env_on and node is not None and node.condition is not None and not node.stale
            else None
        )
        for d in deps:
            if d.helps:
                continue  # helper copies follow their source edge, not this edge's condition
            pkg = state.packages.get(plan.ai_id(d))
            if pkg is None:
                continue
            if (asked is None or asked == pkg.ai_class) and d.filename not in governing:
                # The common case, cheaply: wanted_class and target_version would both answer None.
                continue
            env = environment.wanted_class(cycle, edge, pkg)
            ver = version.target_version(cycle, edge.id, d.filename)
            ai_class = env[0] if env else pkg.ai_class
            version_key = ver[0] if ver and ver[0] != pkg.version_key else pkg.version_key
            if ai_class == pkg.ai_class and version_key == pkg.version_key:
                continue
            target = state.resolve(d.filename, ai_class, version_key)
            if target is None or target.id == pkg.id:
                continue
            seen = cycle.inputs(
                edge,
                filename=d.filename,
                from_ai_id=pkg.id,
                from_version=pkg.version,
                from_ai_class=pkg.ai_class,
                to_ai_id=target.id,
                to_version=target.version,
                to_ai_class=target.ai_class,
            )
            # Each change is the policy's that caused it: the rollout moves the version only when
            # it would move it on this class alone; otherwise a new version comes with the variant
            # (no RAINY 02 after a SUNNY-only 02: the switch lands on RAINY 01, not a "downgrade").
            by_rollout = None
            if ver is not None and ver[0] != pkg.version_key:
                by_rollout = state.resolve(d.filename, pkg.ai_class, ver[0])
            rollout_moves = by_rollout is not None and by_rollout.id != pkg.id
            if (
                target.ai_class != pkg.ai_class and node is not None
            ):  # (a class follows a condition)
                at = f" at version {target.version}" if target.version != pkg.version else ""
                if at and not rollout_moves:
                    wanted = ver[2].to_version if ver is not None else pkg.version
                    at += f" (the newest class {target.ai_class} at or below {wanted})"
                decision = plan.decide(
                    environment.NAME,
                    Action.SWITCH_VARIANT,
                    f"condition {node.condition} held {node.streak} samples: "
                    f"{d.filename} class {pkg.ai_class} -> {target.ai_class}{at}",
                    edge=edge,
                    deployment=d,
                    inputs={**seen, **(env[1] if env else {})},
                )
                plan.set_ai(d, target.id, decision)
            if target.version_key != pkg.version_key and ver is not None and rollout_moves:
                _, action, rollout = ver
                if action == Action.UPGRADE:
                    wave = rollout.members.get(edge.id, 0)
                    why = f"wave {wave} of the {d.filename} {rollout.to_version} rollout"
                elif rollout.status == RolloutStatus.ROLLED_BACK:
                    why = f"an operator rolled back the {d.filename} {rollout.to_version} "
                    why += "rollout: back to the previous version"
                else:
                    why = f"{d.filename} {rollout.to_version} failed here: "
                    why += "back to the previous version"
                decision = plan.decide(
                    version.NAME,
                    action,
                    f"{d.filename} {pkg.version} -> {target.version}: {why}",
                    edge=edge,
                    deployment=d,
                    inputs={**seen, "rollout_status": rollout.status},
                )
                plan.set_ai(d, target.id, decision)
