"""Deciding over the candidates (each policy's per-edge code run only on the edges the mirror's
columns point at) equals deciding over every edge: randomized fleets through many cycles, the
mirror kept as the service keeps it (folded answers, its own writes applied in place), against a
mirror built afresh each cycle and decided edge by edge."""

from __future__ import annotations

import copy
import itertools
import random
from collections import Counter
from dataclasses import asdict
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.optimizer.engine.cycle import CycleResult, decide
from services.optimizer.engine.runner import DecisionRunner
from services.optimizer.model.config import PoliciesConfig
from services.optimizer.model.context import CycleInput, FocusRequest
from services.optimizer.model.state import FleetState
from services.optimizer.policies.forecast import ForecastMemo
from shared.contracts.decisions import BulkResult
from tests.optimizer.fleet import NOW, Fleet

CONDITIONS = ["SUNNY", "CLOUDY", "RAINY", "SNOWY", "FOGGY", "NIGHT"]


def random_fleet(rnd: random.Random, n: int) -> tuple[Fleet, list[dict[str, Any]]]:
    f = Fleet()
    mon = [f.package("monitoring", v, c) for v in ("01", "02") for c in ("01", "02")]
    weather = f.package("weatherai", "01", "00")
    counter = f.package("counter", "01", "03")  # one class only: follows no condition
    for i in range(n):
        e = f.edge(
            f"e{i}",
            lat=37.5 + rnd.random() * 0.05,
            lon=127.0 + rnd.random() * 0.05,
            cluster=1 + i % 2,
            analysis=rnd.random() < 0.8,
        )
        node_randomly(rnd, f.nodes[e["nid"]], NOW)
        f.deploy(
            e,
            rnd.choice(mon),
            observed=rnd.choice(["running"] * 12 + ["failed", "pending"]),
            restarts=rnd.choice([0] * 10 + [3, 9]),
        )
        f.deploy(e, weather)
        if rnd.random() < 0.3:
            f.deploy(e, counter)
    return f, mon


def node_randomly(rnd: random.Random, node: dict[str, Any], now: Any) -> None:
    node.update(
        condition=rnd.choice(CONDITIONS),
        streak=rnd.choice([1, 2, 5, 30]),
        cpu_avg=rnd.choice([rnd.random() * 50, rnd.random() * 100, None]),
        memory_avg=rnd.random() * 100,
        low_confidence_share=rnd.choice([rnd.random() * 0.2, rnd.random(), None]),
        last_seen=(now - timedelta(seconds=rnd.choice([1, 5, 200, 5000]))).isoformat(),
        stale=rnd.random() < 0.05,
    )


def churn(rnd: random.Random, f: Fleet, mon: list[dict[str, Any]], now: Any, step: int) -> None:
    """What happens between cycles: some nodes report, some deployments change state, now and
    then a new version, a new edge, a rollout's members report."""
    for node in f.nodes.values():
        if rnd.random() < 0.15:
            node_randomly(rnd, node, now)
    for d in f.deployments:
        if d["desired"] != "running":
            continue
        roll = rnd.random()
        if roll < 0.3:
            d["observed_generation"], d["observed"] = d["generation"], "running"
        elif roll < 0.33:
            d["observed"], d["observed_generation"] = "failed", d["generation"]
        elif roll < 0.36:
            d["restarts"] += 3
    if step == 2:
        mon.append(f.package("monitoring", "03", "01"))
        mon.append(f.package("monitoring", "03", "02"))
    if step == 4:
        e = f.edge("late", lat=37.52, lon=127.02)
        f.deploy(e, mon[0])


def collect(result: CycleResult, inp: CycleInput) -> dict[str, Any]:
    return {
        "operations": result.wire_operations(),
        "decisions": [
            (d.id, d.policy, d.action, d.reason, d.edge_id, d.deployment_id, d.inputs)
            for d in result.decisions
        ],
        "memory": result.memory,
        "routes": [vars(r) for r in result.routes],
        "rollouts": [vars(r) for r in inp.rollouts],
        "trends": {k: asdict(t) for k, t in inp.trends.items()},
        "wakeup": result.next_wakeup,
    }


def assert_columns_match(state: FleetState) -> None:
    """The mirror's columns say what its objects say."""
    cols = state.columns
    running = [
        d for d in state.deployments.values() if d.desired == "running" and d.edge_id in state.edges
    ]
    statuses = cols.edge_statuses()
    by_status = Counter(e.status for e in state.edges.values())
    assert {k: v for k, v in statuses.items() if v} == by_status
    observed = cols.observed_states()
    assert {k: v for k, v in observed.items() if v} == Counter(d.observed for d in running)
    assert cols.with_params == {
        d.id for d in state.deployments.values() if d.desired == "running" and d.params
    }
    e, dep = cols.edges, cols.deployments
    for edge in state.edges.values():
        row = e.rows[edge.id]
        node = state.node_of(edge)
        assert e["alive"][row] and e["degraded"][row] == (edge.status == "degraded")
        assert e["node"][row] == (node is not None)
        if node is not None:
            assert e["stale"][row] == node.stale
            cpu = e["cpu"][row]
            assert (node.cpu_avg is None and cpu != cpu) or cpu == node.cpu_avg
    for d in running:
        row = dep.rows[d.id]
        assert dep["alive"][row] and dep["ai_id"][row] == d.ai_id
        assert dep["restarts"][row] == d.restarts and dep["helper"][row] == bool(d.helps)


def apply_to_mirror(mirror: FleetState, result: CycleResult, f: Fleet) -> None:
    """The runner's fold of setup's answer into its mirror (created ids as setup gives them)."""
    next_id = len(f.deployments) + 1
    results = []
    for i, p in enumerate(result.operations):
        op = p.op
        if op.op == "create":
            results.append(BulkResult(index=i, op="create", id=next_id, generation=1))
            next_id += 1
        elif op.op == "edge_status":
            results.append(BulkResult(index=i, op=op.op, id=op.edge_id))
        else:
            gen = mirror.deployments[op.id].generation + 1
            results.append(BulkResult(index=i, op=op.op, id=op.id, generation=gen))
    runner = SimpleNamespace(fleet=mirror)
    DecisionRunner._apply(runner, [p.op for p in result.operations], results)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_candidates_decide_as_every_edge_does(seed: int) -> None:
    rnd = random.Random(seed)
    f, mon = random_fleet(rnd, 120)
    config = PoliciesConfig().merged(
        {
            "overload": {"window_s": 30, "recover_window_s": 60, "forecast_min_samples": 2},
            "low_confidence": {"window_s": 20},
            "environment": {"hysteresis_samples": 3},
            "recovery": {"silent_after_s": 600, "max_redeploys": 2, "retry_after_s": 30},
            "version": {"first_wave": 3, "growth": 2.0, "wave_timeout_s": 90},
            "focus": {"radius_km": 2.0, "ttl_s": 120},
        }
    )
    memory: dict[Any, Any] = {}
    rollouts: list[Any] = []
    routes: dict[str, Any] = {}
    # Each way keeps its own trends (and the memo of what it made of them), as the runner does.
    trends: dict[bool, dict[str, Any]] = {False: {}, True: {}}
    memo = ForecastMemo()
    pins = {3, 17}
    mirror: FleetState | None = None
    reported: dict[str, Any] = {}
    policies: set[str] = set()
    now = NOW
    for step in range(10):
        snapshot = dict(f.snapshot())
        snapshot["edge_ids"] = [e["id"] for e in f.edges]
        nodes = f.node_list()
        if mirror is None:
            mirror = FleetState.from_wire(snapshot, nodes)  # type: ignore[arg-type]
        elif step % 3 == 2:  # a whole read: a new mirror, the memo carried over as the runner does
            old, mirror = mirror, FleetState.from_wire(snapshot, nodes)  # type: ignore[arg-type]
            memo.carry(old, mirror, trends[True])
        else:  # the nodes that reported since, as GET /nodes/state?since= answers
            mirror.apply_changes(snapshot, [n for n in nodes if reported.get(n["nid"]) != n])  # type: ignore[arg-type]
        reported = {n["nid"]: n for n in nodes}
        assert_columns_match(mirror)
        focus = []
        if step in (3, 4):
            focus = [FocusRequest(nid=f.edges[5]["nid"], expires_at=now + timedelta(seconds=90))]
        outcomes = []
        for state, filtered in (
            (FleetState.from_wire(snapshot, nodes), False),  # type: ignore[arg-type]
            (mirror, True),
        ):
            inp = CycleInput(
                state=state,
                config=config,
                now=now,
                pins=set(pins),
                memory=copy.deepcopy(memory),
                rollouts=copy.deepcopy(rollouts),
                routes=copy.deepcopy(routes),
                focus=list(focus),
                trends=trends[filtered],
                forecast_memo=memo if filtered else None,
                analysis_trouble="the analysis service is down" if step == 6 else None,
                filtered=filtered,
            )
            ids = (f"d{i}" for i in itertools.count())
            result = decide(inp, new_id=ids.__next__)
            outcomes.append((collect(result, inp), result, inp))
        (every, reference, ref_inp), (candidates, result, _) = outcomes
        assert candidates == every, f"cycle {step}"
        policies |= {d.policy for d in reference.decisions}
        reference.carry_into(memory, routes)
        rollouts = ref_inp.rollouts  # every rollout, saved (the changed ones: carry_into)
        for r in rollouts:
            r.dirty = False
        apply_to_mirror(mirror, result, f)
        assert_columns_match(mirror)  # the runner's own writes, folded in place
        f.apply(reference.wire_operations())
        now += timedelta(seconds=rnd.choice([5, 30, 70]))
        churn(rnd, f, mon, now, step)
    # The comparison means something: most policies decided something along the way.
    assert len(policies) >= 5, policies
