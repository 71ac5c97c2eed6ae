"""The pure decision engine: each policy over in-memory fleets, and idempotency (a second cycle
on the written result changes nothing)."""

from __future__ import annotations

import math
import random
from datetime import timedelta

from services.optimizer.engine.cycle import decide
from services.optimizer.model.config import PoliciesConfig
from services.optimizer.model.context import CycleInput, FocusRequest
from services.optimizer.model.geo import GeoGrid, haversine_km
from services.optimizer.model.state import FleetState
from tests.optimizer.fleet import NOW, Fleet, later


class Runner:
    """Feeds a Fleet through cycles, carrying memory/rollouts/routes like the service does."""

    def __init__(self, fleet: Fleet, **overrides):
        self.fleet = fleet
        self.config = PoliciesConfig().merged(overrides)
        self.memory: dict = {}
        self.rollouts: list = []
        self.routes: dict = {}
        self.focus: list = []
        self.pins: set = set()
        self.trends: dict = {}
        self.analysis_trouble: str | None = None

    def cycle(self, now=NOW, scope=None, apply=True):
        state = FleetState.from_wire(self.fleet.snapshot(), self.fleet.node_list())
        result = decide(
            CycleInput(
                state=state,
                config=self.config,
                now=now,
                scope=scope,
                pins=self.pins,
                memory=dict(self.memory),
                rollouts=self.rollouts,
                routes=dict(self.routes),
                focus=self.focus,
                trends=self.trends,
                analysis_trouble=self.analysis_trouble,
            )
        )
        result.carry_into(self.memory, self.routes)
        if apply:
            self.fleet.apply(result.wire_operations())
        return result


def monitoring(fleet: Fleet, version: str = "01"):
    return fleet.package("monitoring", version, "01"), fleet.package("monitoring", version, "02")


def test_weather_flip_swaps_variant_after_hysteresis_and_is_idempotent():
    f = Fleet()
    sunny, rainy = monitoring(f)
    weather = f.package("weatherai", "01", "00")
    e = f.edge("e1", condition="RAINY", streak=2)
    d = f.deploy(e, sunny)
    f.deploy(e, weather)
    run = Runner(f, environment={"hysteresis_samples": 3})
    assert run.cycle().wire_operations() == []  # 2 samples: held back
    f.nodes[e["nid"]]["streak"] = 3
    result = run.cycle()
    assert [(o["op"], o["id"], o["ai_id"]) for o in result.wire_operations()] == [
        ("update", d["id"], rainy["id"])
    ]
    [decision] = result.decisions
    assert decision.policy == "environment" and decision.action == "switch_variant"
    assert decision.inputs["condition"] == "RAINY" and decision.inputs["streak"] == 3
    assert result.wire_operations()[0]["decision_id"] == decision.id
    assert run.cycle().wire_operations() == []  # idempotent


def test_pinned_edge_is_left_alone():
    f = Fleet()
    sunny, _ = monitoring(f)
    e = f.edge("e1", condition="RAINY", streak=9)
    f.deploy(e, sunny)
    run = Runner(f)
    run.pins.add(e["id"])
    assert run.cycle().wire_operations() == []


def test_version_rolls_out_in_waves_and_rolls_back_failures():
    f = Fleet()
    v1 = f.package("monitoring", "01", "01")
    edges = [f.edge(f"e{i}") for i in range(7)]
    deps = [f.deploy(e, v1) for e in edges]
    run = Runner(f, version={"first_wave": 1, "growth": 2.0, "failure_threshold": 0.3})
    assert run.cycle().wire_operations() == []
    v2 = f.package("monitoring", "02", "01")
    r = run.cycle()
    assert [(o["id"], o["ai_id"]) for o in r.wire_operations()] == [(deps[0]["id"], v2["id"])]
    assert run.cycle().wire_operations() == []  # wave 0 pending: nothing new
    f.observe(deps[0])
    r = run.cycle()  # wave 0 ok -> wave 1 (2 edges)
    assert sorted(o["id"] for o in r.wire_operations()) == [deps[1]["id"], deps[2]["id"]]
    f.observe(deps[1])
    f.observe(deps[2], "failed")
    r = run.cycle()  # 1 of 2 failed = 50 % > 30 %: halt, roll back deps[2]
    assert [(o["id"], o["ai_id"]) for o in r.wire_operations()] == [(deps[2]["id"], v1["id"])]
    actions = {d.action for d in r.decisions}
    assert {"rollout_halted", "rollback"} <= actions
    assert run.rollouts[0].status == "halted"
    assert run.cycle(now=later(5)).wire_operations() == []  # halted: the rest stay on 01
    assert [d["ai_id"] for d in deps] == [v2["id"], v2["id"], v1["id"]] + [v1["id"]] * 4


def test_version_rollout_completes():
    f = Fleet()
    v1 = f.package("monitoring", "1.9", "01")
    deps = [f.deploy(f.edge(f"e{i}"), v1) for i in range(3)]
    run = Runner(f, version={"first_wave": 2})
    v2 = f.package("monitoring", "1.10", "01")  # newer as numbers, older as text
    for _ in range(4):
        run.cycle()
        for d in deps:
            if d["ai_id"] == v2["id"]:
                f.observe(d)
    assert all(d["ai_id"] == v2["id"] for d in deps)
    assert run.rollouts[0].status == "completed"


def test_recovery_redeploys_then_marks_degraded_then_active():
    f = Fleet()
    sunny, _ = monitoring(f)
    e = f.edge("e1")
    d = f.deploy(e, sunny, observed="failed")
    run = Runner(f, recovery={"max_redeploys": 2, "retry_after_s": 10}, overload={"enabled": False})
    r = run.cycle()
    assert [
        (o["op"], o["id"], o["redeploy"], o["expected_generation"]) for o in r.wire_operations()
    ] == [("update", d["id"], True, 1)]
    assert r.decisions[0].action == "redeploy"
    assert run.cycle(now=later(1)).wire_operations() == []  # new generation not yet observed
    f.observe(d, "failed")
    assert run.cycle(now=later(5)).wire_operations() == []  # retry_after_s not yet passed
    assert run.cycle(now=later(11)).wire_operations()[0]["op"] == "update"
    f.observe(d, "failed")
    r = run.cycle(now=later(30))
    assert [(o["op"], o["status"]) for o in r.wire_operations()] == [("edge_status", "degraded")]
    f.observe(d, "running")
    r = run.cycle(now=later(40))
    assert [(o["op"], o["status"]) for o in r.wire_operations()] == [("edge_status", "active")]
    assert run.cycle(now=later(50)).wire_operations() == []


def test_recovery_crash_loop_and_silent_edge():
    f = Fleet()
    sunny, _ = monitoring(f)
    e1 = f.edge("e1")
    e2 = f.edge("e2", last_seen=(NOW - timedelta(seconds=600)).isoformat())
    d1 = f.deploy(e1, sunny, restarts=5)
    d2 = f.deploy(e2, sunny)
    r = Runner(f).cycle()
    assert sorted(o["id"] for o in r.wire_operations()) == [d1["id"], d2["id"]]
    reasons = " ".join(d.reason for d in r.decisions)
    assert "crash loop" in reasons and "silent" in reasons


def _overload_fleet():
    f = Fleet()
    sunny, _ = monitoring(f)
    hot = f.edge("hot", lat=37.50, lon=127.00, cpu_avg=95.0)
    near_busy = f.edge("near-busy", lat=37.501, lon=127.001, cpu_avg=80.0)  # nearest but no room
    near = f.edge("near", lat=37.51, lon=127.01)
    f.edge("far", lat=37.60, lon=127.10)
    f.edge("other-cluster", lat=37.5001, lon=127.0001, cluster=2)
    f.edge("no-analysis", lat=37.5002, lon=127.0002, analysis=False)
    d = f.deploy(hot, sunny)
    return f, hot, near, d, near_busy


def test_overload_moves_to_nearest_edge_with_room_then_hands_back():
    f, hot, near, _d, _ = _overload_fleet()
    run = Runner(f, overload={"window_s": 30, "recover_window_s": 20}, recovery={"enabled": False})
    assert run.cycle().wire_operations() == []  # window starts
    r = run.cycle(now=later(31))
    ops = {o["op"]: o for o in r.wire_operations()}
    assert (
        ops["create"]["edge_id"] == near["id"]
        and ops["create"]["params"]["analysis_for"] == hot["nid"]
    )
    assert ops["create"]["allow_multiple"] is True
    assert ops["update"]["params"] == {"analysis_route": "edge", "analysis_edge": near["nid"]}
    assert r.decisions[0].action == "handoff_to_edge" and r.decisions[0].inputs["helper"] == "near"
    assert [(x.nid, x.analysis, x.helper_nid) for x in r.routes] == [
        (hot["nid"], "edge", near["nid"])
    ]
    assert run.cycle(now=later(32)).wire_operations() == []
    f.nodes[hot["nid"]]["cpu_avg"] = 30.0
    assert run.cycle(now=later(40)).wire_operations() == []
    r = run.cycle(now=later(61))
    assert sorted(o["op"] for o in r.wire_operations()) == ["remove", "update"]
    assert next(o for o in r.wire_operations() if o["op"] == "update")["params"] == {}
    assert run.cycle(now=later(70)).wire_operations() == []


def test_overload_goes_to_server_when_no_edge_has_room():
    f, _hot, near, _d, _ = _overload_fleet()
    f.nodes[near["nid"]]["memory_avg"] = 90.0
    f.nodes["0x04"]["cpu_avg"] = 99.0  # far
    run = Runner(f, overload={"window_s": 0})
    r = run.cycle()
    assert [(o["op"], o.get("params")) for o in r.wire_operations()] == [
        ("update", {"analysis_route": "server"})
    ]
    assert r.decisions[0].action == "handoff_to_server"


def test_degraded_edge_is_handed_over_at_once():
    f, hot, near, _d, _ = _overload_fleet()
    f.nodes[hot["nid"]]["cpu_avg"] = 10.0
    hot["status"] = "degraded"
    r = Runner(f).cycle()
    assert any(o["op"] == "create" and o["edge_id"] == near["id"] for o in r.wire_operations())


def test_low_confidence_routes_up_and_back():
    f = Fleet()
    sunny, _ = monitoring(f)
    e = f.edge("e1", low_confidence_share=0.6, frames_sent_up_share=0.4)
    f.deploy(e, sunny)
    run = Runner(f, low_confidence={"window_s": 10}, recovery={"enabled": False})
    assert run.cycle().decisions == []
    r = run.cycle(now=later(10))
    [up] = r.decisions
    assert up.action == "route_up"
    # The route reaches the edge as a live param of its analysis deployment.
    assert [(o["op"], o["params"], o["decision_id"]) for o in r.wire_operations()] == [
        ("update", {"route_low_confidence": True}, up.id)
    ]
    assert r.routes[0].route_low_confidence and r.routes[0].frames_sent_up_share == 0.4
    assert run.cycle(now=later(11)).decisions == []
    f.nodes[e["nid"]]["low_confidence_share"] = 0.05
    run.cycle(now=later(12))
    r = run.cycle(now=later(23))
    assert r.decisions[0].action == "route_local" and not r.routes[0].route_low_confidence
    assert [o["params"] for o in r.wire_operations()] == [{}]
    assert run.cycle(now=later(24)).wire_operations() == []


def test_low_confidence_route_is_reapplied_to_a_deployment_that_lacks_it():
    f = Fleet()
    sunny, _ = monitoring(f)
    e = f.edge("e1", low_confidence_share=0.6)
    d = f.deploy(e, sunny)
    run = Runner(f, low_confidence={"window_s": 0}, recovery={"enabled": False})
    r = run.cycle()
    assert r.decisions[0].action == "route_up"
    d["params"] = {}  # replaced by hand, without the route
    r = run.cycle(now=later(1))
    [again] = r.decisions
    assert again.action == "route_up" and "re-applied" in again.reason
    assert [o["params"] for o in r.wire_operations()] == [{"route_low_confidence": True}]


def test_focus_raises_neighbours_within_radius_and_ttl_lowers_them():
    f = Fleet()
    sunny, _ = monitoring(f)
    src = f.edge("src", lat=37.5, lon=127.0)
    close = f.edge("close", lat=37.504, lon=127.0)  # ~0.45 km
    away = f.edge("away", lat=37.6, lon=127.0)  # ~11 km
    for e in (src, close, away):
        f.deploy(e, sunny)
    run = Runner(
        f,
        focus={"radius_km": 1.0, "params": {"focus": True, "detect_fps": 10}},
        recovery={"enabled": False},
    )
    run.focus.append(FocusRequest(src["nid"], later(300), ["person"]))
    r = run.cycle()
    assert [
        (o["id"], o["params"]["focus"], o["params"]["detect_fps"]) for o in r.wire_operations()
    ] == [(2, True, 10)]
    assert r.next_wakeup == later(300)
    assert run.cycle(now=later(100)).wire_operations() == []
    r = run.cycle(now=later(301))
    assert [(o["id"], o["params"]) for o in r.wire_operations()] == [(2, {})]
    assert r.decisions[0].action == "focus_off"


def test_scoped_cycle_only_touches_the_scope():
    f = Fleet()
    sunny, _ = monitoring(f)
    a = f.edge("a", condition="RAINY")
    b = f.edge("b", condition="RAINY")
    f.deploy(a, sunny)
    f.deploy(b, sunny)
    r = Runner(f).cycle(scope={b["id"]})
    assert [o["id"] for o in r.wire_operations()] == [2]


def test_grid_nearest_and_within_match_brute_force():
    rnd = random.Random(7)
    pts = [(i, 37 + rnd.random() * 0.5, 127 + rnd.random() * 0.5) for i in range(2000)]
    grid = GeoGrid.build(pts)
    for _ in range(50):
        lat, lon = 37 + rnd.random() * 0.5, 127 + rnd.random() * 0.5
        accept = lambda k: k % 3 == 0  # noqa: E731
        brute = min(
            ((k, haversine_km(lat, lon, a, b)) for k, a, b in pts if accept(k)),
            key=lambda kd: kd[1],
        )
        found = grid.nearest(lat, lon, accept, 100.0)
        assert found is not None and found[0] == brute[0]
        within = {k for k, _ in grid.within(lat, lon, 3.0)}
        assert within == {k for k, a, b in pts if haversine_km(lat, lon, a, b) <= 3.0}


def test_each_clusters_grid_finds_what_a_scan_of_its_edges_finds():
    """The overload policy searches a helper in its edge's cluster's grid (built with array
    operations): the nearest accepted edge of that cluster, as a scan of every edge would give;
    edges without a position are in no grid; the fleet-wide grid buckets as ``GeoGrid.build``."""
    rnd = random.Random(11)
    f = Fleet()
    for i in range(1500):
        located = rnd.random() < 0.95
        e = f.edge(
            f"e{i}",
            lat=37 + rnd.random() * 0.3 if located else None,
            lon=127 + rnd.random() * 0.3 if located else None,
            cluster=rnd.choice([1, 2, 3, 7]),
        )
        if i % 50 == 0:
            e["cluster_id"] = None
    state = FleetState.from_wire(f.snapshot(), f.node_list())
    by_id = {e["id"]: e for e in f.edges}
    for _ in range(60):
        lat, lon = 37 + rnd.random() * 0.3, 127 + rnd.random() * 0.3
        cluster = rnd.choice([1, 2, 3, 7, None])
        accept = lambda k: k % 4 != 0  # noqa: E731
        candidates = [
            (haversine_km(lat, lon, e["latitude"], e["longitude"]), e["id"])
            for e in f.edges
            if e["cluster_id"] == cluster and e["latitude"] is not None and accept(e["id"])
        ]
        found = state.cluster_grid(cluster).nearest(lat, lon, accept, 100.0)
        assert found is not None and by_id[found[0]]["cluster_id"] == cluster
        assert (found[1], found[0]) == min(candidates)
    assert state.cluster_grid(99).nearest(37.1, 127.1, lambda k: True, 100.0) is None
    located = [(e["id"], e["latitude"], e["longitude"]) for e in f.edges if e["latitude"]]
    lats, lons = [a for _, a, _ in located], [b for _, _, b in located]
    area = (max(lats) - min(lats)) * (max(lons) - min(lons))
    cell = state.grid.cell_deg
    assert cell == math.sqrt(area * 6 / len(located))  # about six edges a cell
    buckets: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
    for k, a, b in located:  # in the fleet's order within each cell
        buckets.setdefault((math.floor(a / cell), math.floor(b / cell)), []).append((k, a, b))
    assert state.grid.cells == buckets


def test_focus_storm_extends_at_most_every_half_ttl():
    f = Fleet()
    sunny, _ = monitoring(f)
    src = f.edge("src", lat=37.5, lon=127.0)
    close = f.edge("close", lat=37.504, lon=127.0)
    f.deploy(src, sunny)
    f.deploy(close, sunny)
    run = Runner(f, focus={"radius_km": 1.0, "ttl_s": 60}, recovery={"enabled": False})
    actions = []
    for second in range(0, 45):  # the same person seen every second for 45 s
        run.focus.append(FocusRequest(src["nid"], later(second + 60), ["person"]))
        actions += [d.action for d in run.cycle(now=later(second)).decisions]
    assert actions == ["focus_on", "focus_extend"]  # at 0 s, then once past half the TTL (31 s)


def test_weather_flip_after_a_sunny_only_upgrade_is_one_variant_switch():
    """Monitoring SUNNY 02 uploaded (no RAINY 02): the edge runs SUNNY 02; a flip to RAINY goes to
    RAINY 01, the newest RAINY. That is the environment's switch, with its operation: no version
    'upgrade 02 -> 01' beside it."""
    f = Fleet()
    sunny1, rainy1 = monitoring(f)
    e = f.edge("e1")
    d = f.deploy(e, sunny1)
    run = Runner(f, environment={"hysteresis_samples": 3}, recovery={"enabled": False})
    sunny2 = f.package("monitoring", "02", "01")
    r = run.cycle()
    assert [(o["id"], o["ai_id"]) for o in r.wire_operations()] == [(d["id"], sunny2["id"])]
    f.observe(d)
    run.cycle(now=later(1))
    f.nodes[e["nid"]].update(condition="RAINY", streak=3)
    r = run.cycle(now=later(2))
    [switch] = r.decisions
    assert (switch.policy, switch.action) == ("environment", "switch_variant")
    assert [(o["op"], o["id"], o["ai_id"], o["decision_id"]) for o in r.wire_operations()] == [
        ("update", d["id"], rainy1["id"], switch.id)
    ]
    assert [op.ai_id for op in switch.operations] == [rainy1["id"]]
    assert switch.reason.endswith(
        "monitoring class 01 -> 02 at version 01 (the newest class 02 at or below 02)"
    )
    # Back to SUNNY: the rollout's version (02) again, still the environment's doing.
    f.nodes[e["nid"]].update(condition="SUNNY", streak=3)
    r = run.cycle(now=later(3))
    [back] = r.decisions
    assert (back.policy, back.action) == ("environment", "switch_variant")
    assert [o["ai_id"] for o in r.wire_operations()] == [sunny2["id"]]


def test_overload_falls_back_to_local_when_the_helper_fails_or_vanishes():
    f, _hot, near, _d, _ = _overload_fleet()
    run = Runner(f, overload={"window_s": 0, "recover_window_s": 60}, recovery={"enabled": False})
    run.cycle()
    [copy] = [d for d in f.deployments if d["params"].get("analysis_for")]
    f.observe(copy, "failed")
    copy["observed_reason"] = "camera unreachable"
    r = run.cycle(now=later(1))
    [back] = r.decisions
    assert back.action == "hand_back" and back.inputs["fallback"] is True
    assert back.reason.startswith("the helper copy on near failed (camera unreachable)")
    assert sorted(o["op"] for o in r.wire_operations()) == ["remove", "update"]
    # Still overloaded: the failed helper is not asked again; the next nearest one is.
    r = run.cycle(now=later(2))
    [again] = r.decisions
    assert again.action == "handoff_to_edge" and again.inputs["helper"] != "near"
    f.observe(copy, "removed")
    # Its helper's edge then vanishes.
    near = next(e for e in f.edges if e["name"] == again.inputs["helper"])
    f.edges.remove(near)
    f.deployments[:] = [d for d in f.deployments if d["edge_id"] != near["id"]]
    r = run.cycle(now=later(3))
    assert any(d.action == "hand_back" and "is gone" in d.reason for d in r.decisions), r.decisions


def test_overload_acts_on_the_forecast_before_the_average_crosses():
    """A steady ramp (5 % every 5 s) below the 85 % threshold: the helper is asked for while the
    smoothed cpu is still below it; a flat 80 % never triggers."""
    f, hot, _near, _d, _ = _overload_fleet()
    flat = f.edge("flat", lat=37.7, lon=127.3, cpu_avg=80.0)
    f.deploy(flat, f.packages[0])
    run = Runner(f, overload={"window_s": 0, "forecast_s": 30}, recovery={"enabled": False})
    decided = []
    for step in range(8):
        cpu = 55.0 + 5 * step
        f.nodes[hot["nid"]].update(cpu_avg=cpu, last_seen=later(5 * step).isoformat())
        f.nodes[flat["nid"]].update(last_seen=later(5 * step).isoformat())
        r = run.cycle(now=later(5 * step))
        decided += [(cpu, d) for d in r.decisions]
    [(cpu, handoff)] = decided
    assert handoff.action == "handoff_to_edge" and handoff.edge_name == "hot"
    assert cpu < 85 and "forecast to cross" in handoff.reason
    assert handoff.inputs["cpu_forecast"] > 85 and handoff.inputs["cpu_avg"] < 85
    assert handoff.inputs["forecast_s"] == 30
    # Off: only the average counts, later.
    f2, hot2, *_ = _overload_fleet()
    run2 = Runner(f2, overload={"window_s": 0, "forecast_s": 0}, recovery={"enabled": False})
    for step in range(8):
        f2.nodes[hot2["nid"]].update(cpu_avg=55.0 + 5 * step, last_seen=later(5 * step).isoformat())
        if run2.cycle(now=later(5 * step)).decisions:
            assert 55.0 + 5 * step > 85
            break
    else:
        raise AssertionError("the average-based trigger never fired")


def test_overload_falls_back_to_local_when_the_helper_stops_reporting():
    f, _hot, near, _d, _ = _overload_fleet()
    run = Runner(f, overload={"window_s": 0, "recover_window_s": 60}, recovery={"enabled": False})
    [handoff] = run.cycle().decisions
    assert handoff.inputs["helper"] == "near"
    f.nodes[near["nid"]]["stale"] = True  # the helper edge went silent
    r = run.cycle(now=later(1))
    [back] = r.decisions
    assert back.action == "hand_back" and back.inputs["fallback"] is True
    assert back.reason == "the helper edge near stopped reporting: analysis back on the edge"
    assert sorted(o["op"] for o in r.wire_operations()) == ["remove", "update"]
    assert next(o for o in r.wire_operations() if o["op"] == "update")["params"] == {}


def test_low_confidence_route_falls_back_when_the_analysis_service_is_down_or_throttles():
    f = Fleet()
    sunny, _ = monitoring(f)
    e = f.edge("e1", low_confidence_share=0.6)
    f.deploy(e, sunny)
    run = Runner(f, low_confidence={"window_s": 0}, recovery={"enabled": False})
    assert run.cycle().decisions[0].action == "route_up"
    run.analysis_trouble = "the analysis service throttles (429)"
    r = run.cycle(now=later(1))
    [down] = r.decisions
    assert down.action == "route_local" and down.inputs["fallback"] is True
    assert down.reason.startswith("the analysis service throttles (429): frames stay on the edge")
    assert [o["params"] for o in r.wire_operations()] == [{}]
    assert not r.routes[0].route_low_confidence
    # While it stays in trouble: not routed up again, nothing more logged.
    assert run.cycle(now=later(2)).decisions == []
    assert run.cycle(now=later(3)).wire_operations() == []
    # Recovered: routed up again by the usual rule.
    run.analysis_trouble = None
    assert run.cycle(now=later(4)).decisions[0].action == "route_up"


def test_overload_on_the_server_falls_back_when_the_analysis_service_is_down():
    f, _hot, near, _d, _ = _overload_fleet()
    f.nodes[near["nid"]]["memory_avg"] = 90.0
    f.nodes["0x04"]["cpu_avg"] = 99.0  # far: no edge has room
    run = Runner(
        f, overload={"window_s": 0}, recovery={"enabled": False}, low_confidence={"enabled": False}
    )
    assert run.cycle().decisions[0].action == "handoff_to_server"
    run.analysis_trouble = "the analysis service is down (ConnectError)"
    r = run.cycle(now=later(1))
    [back] = r.decisions
    assert back.action == "hand_back" and back.inputs["fallback"] is True
    assert back.reason == ("the analysis service is down (ConnectError): analysis back on the edge")
    assert [(o["op"], o["params"]) for o in r.wire_operations()] == [("update", {})]
    # Still overloaded, still no helper, service still down: the edge keeps its own analysis.
    r = run.cycle(now=later(2))
    assert r.decisions == [] and r.wire_operations() == []
    run.analysis_trouble = None
    assert run.cycle(now=later(3)).decisions[0].action == "handoff_to_server"


def test_low_confidence_route_falls_back_when_the_edges_uploads_are_refused():
    """The service's health check is fine but this edge's uploads are refused (a throttling proxy
    only it passes): the worker's analysis_unavailable routes it back, held for refused_hold_s."""
    f = Fleet()
    sunny, _ = monitoring(f)
    e = f.edge("e1", low_confidence_share=0.6)
    f.deploy(e, sunny)
    run = Runner(
        f, low_confidence={"window_s": 0, "refused_hold_s": 60}, recovery={"enabled": False}
    )
    assert run.cycle().decisions[0].action == "route_up"
    f.nodes[e["nid"]]["analysis_unavailable"] = "HTTP 429: slow down"
    r = run.cycle(now=later(1))
    [down] = r.decisions
    assert down.action == "route_local" and down.inputs["fallback"] is True
    assert down.inputs["analysis_unavailable"] == "HTTP 429: slow down"
    assert down.reason.startswith("the analysis service refuses e1's frames (HTTP 429: slow down)")
    assert [o["params"] for o in r.wire_operations()] == [{}]
    # The worker no longer uploads, so no longer reports it; the share is still high, but the
    # edge is held local until the hold ends.
    del f.nodes[e["nid"]]["analysis_unavailable"]
    assert run.cycle(now=later(30)).decisions == []
    assert run.cycle(now=later(62)).decisions[0].action == "route_up"


def test_overload_on_the_server_falls_back_when_the_edges_uploads_are_refused():
    f, hot, near, _d, _ = _overload_fleet()
    f.nodes[near["nid"]]["memory_avg"] = 90.0
    f.nodes["0x04"]["cpu_avg"] = 99.0  # far: no edge has room
    run = Runner(
        f, overload={"window_s": 0}, recovery={"enabled": False}, low_confidence={"enabled": False}
    )
    assert run.cycle().decisions[0].action == "handoff_to_server"
    f.nodes[hot["nid"]]["analysis_unavailable"] = "ConnectError: connection refused"
    r = run.cycle(now=later(1))
    [back] = r.decisions
    assert back.action == "hand_back" and back.inputs["fallback"] is True
    assert back.reason == (
        "the analysis service refuses hot's frames (ConnectError: connection refused): "
        "analysis back on the edge"
    )
    # Still overloaded, no helper: not handed to the server again for a while.
    del f.nodes[hot["nid"]]["analysis_unavailable"]
    assert run.cycle(now=later(2)).decisions == []
    assert run.cycle(now=later(70)).decisions[0].action == "handoff_to_server"


def test_overload_falls_back_when_the_helper_cannot_read_the_camera():
    f, hot, near, _d, _ = _overload_fleet()
    run = Runner(f, overload={"window_s": 0, "recover_window_s": 60}, recovery={"enabled": False})
    [handoff] = run.cycle().decisions
    assert handoff.inputs["helper"] == "near"
    # The helper's summaries under hot's nid say the camera gives no frame.
    f.nodes[hot["nid"]].update(
        analysed_by=near["nid"], source_unavailable="snapshot http://***@cam/f.jpg: URLError"
    )
    r = run.cycle(now=later(1))
    [back] = r.decisions
    assert back.action == "hand_back" and back.inputs["fallback"] is True
    assert back.reason == (
        "the helper near cannot read hot's camera (snapshot http://***@cam/f.jpg: URLError): "
        "analysis back on the edge"
    )
    assert sorted(o["op"] for o in r.wire_operations()) == ["remove", "update"]
    # The same report from another edge's summary (not the helper's) is not the helper's trouble.
    f.nodes[hot["nid"]].update(analysed_by=None)
    [again] = run.cycle(now=later(2)).decisions
    assert again.action == "handoff_to_edge" and again.inputs["helper"] != "near"
