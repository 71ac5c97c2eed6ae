"""Policy 1, environment-adaptive: an edge whose condition (from the VMS) no longer matches the
variant it runs gets the variant of the same filename made for that condition, once the condition
has held ``hysteresis_samples`` consecutive samples (no flapping on one odd reading)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.optimizer.model.context import Cycle
from services.optimizer.model.state import Edge, Package
from shared.contracts.decisions import Policy

NAME = Policy.ENVIRONMENT


def wanted_class(cycle: Cycle, edge: Edge, pkg: Package) -> tuple[str, dict[str, Any]] | None:
    """(ai_class, inputs) when the edge should switch variants, None when it should stay."""
    cfg = cycle.config.environment
    state = cycle.state
    if (
        not cfg.enabled
        or pkg.ai_class == cycle.inp.environment_ai_class
        or not state.is_adaptive(pkg.filename)
    ):
        return None
    node = state.node_of(edge)
    if node is None or node.condition is None or node.stale:
        return None
    wanted = state.ai_classes.get(node.condition)
    if (
        wanted is None
        or wanted == pkg.ai_class
        or wanted not in state.classes_of.get(pkg.filename, ())
    ):
        return None
    if node.streak < cfg.hysteresis_samples:
        # Not yet: the condition must hold N samples. Nothing else would bring this edge up again
        # before the next resync, so decide again once N samples can have come (one a second).
        cycle.wake_at(cycle.now + timedelta(seconds=cfg.hysteresis_samples - node.streak + 0.5))
        return None
    return wanted, {"hysteresis_samples": cfg.hysteresis_samples}
