"""Policies 1 and 2 meet here: the condition picks the ai_class, the rollout picks the version,
and one lookup turns (filename, class, version) into the AI a deployment should run."""

from __future__ import annotations

from services.optimizer.model.context import Cycle, RolloutStatus
from services.optimizer.policies import environment, version
from shared.contracts.decisions import Action


def apply(cycle: Cycle) -> None:
    state, plan = cycle.state, cycle.plan
    env_on = cycle.config.environment.enabled
    governing = cycle.governing if cycle.config.version.enabled else {}
    for edge in cycle.edges():
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
