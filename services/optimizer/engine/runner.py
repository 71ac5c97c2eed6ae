"""The decision runner: reads the fleet in bulk, runs the pure cycle, writes only the differences
with one bulk call, records every decision, and keeps outcomes up to date.

Triggers: the scheduler's resync (whole fleet) and events (the edges concerned, coalesced within
``debounce_ms``). Cycles never overlap (one lock). Only the replica holding the lease acts.

Event-driven cycles reuse the last whole-fleet state and refresh just the concerned edges: the VMS
answers ``?nids=`` and setup (where it supports ``?edge_ids=``) only those rows; setup's answer to
a write is applied to the cache. A stale cache cannot do harm: updates carry
``expected_generation``, a refused write drops the cache and the cycle reruns on a fresh snapshot.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.optimizer.engine import store
from services.optimizer.engine.context import CycleInput
from services.optimizer.engine.cycle import CycleResult, decide
from services.optimizer.engine.leader import Lease
from services.optimizer.engine.plan import DecisionRecord, wire
from services.optimizer.engine.state import Deployment, FleetState, deployment_from_wire, parse_ts
from services.optimizer.policies.config import PoliciesConfig
from services.optimizer.settings import OptimizerSettings
from services.optimizer.sources.clients import SetupClient, VmsClient
from shared.errors import Conflict, DomainError
from shared.logging import log_fields

log = logging.getLogger("edge.optimizer.runner")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def chunks(ops: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Bulk calls of at most ``size`` operations (setup's body limit), never splitting one decision's
    operations (a hand-over's create and update stay in one transaction)."""
    out: list[list[dict[str, Any]]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for op in ops:
        groups.setdefault(op.get("decision_id") or f"op-{id(op)}", []).append(op)
    current: list[dict[str, Any]] = []
    for group in groups.values():
        if current and len(current) + len(group) > size:
            out.append(current)
            current = []
        current.extend(group)
    if current:
        out.append(current)
    return out


class DecisionRunner:
    def __init__(
        self,
        settings: OptimizerSettings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        setup: SetupClient,
        vms: VmsClient,
    ):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.setup = setup
        self.vms = vms
        self.lease = Lease(engine, settings.lease_ttl_s, settings.replica_id)
        self.fleet: FleetState | None = None
        self.last_cycle: dict[str, Any] | None = None
        self.on_wakeup = None  # set by the app: schedules a cycle at the focus expiry
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._full_requested = False
        self._nids: set[str] = set()
        self._edge_ids: set[int] = set()
        self._dry_run_seen: set[str] = set()
        self._marks: tuple[datetime, datetime] | None = None  # (setup, VMS) generated_at of the last whole-fleet read
        self._since_ok = True  # False once setup has shown it ignores ?since=
        self._incrementals = 0  # incremental reads since the last whole one
        self._last_refresh: dict[str, Any] | None = None
        self._setup_filters: bool | None = None  # does setup answer GET /fleet/snapshot?edge_ids=...?
        self._probe: asyncio.Task | None = None
        self._task: asyncio.Task | None = None

    # -- triggering -------------------------------------------------------------------------------

    def request(self, *, nids: set[str] | None = None, edge_ids: set[int] | None = None, full: bool = False) -> None:
        """Ask for a cycle soon; requests arriving together are decided together."""
        if full:
            self._full_requested = True
        self._nids |= nids or set()
        self._edge_ids |= edge_ids or set()
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="optimizer-decisions")

    async def stop(self) -> None:
        for task in (self._task, self._probe):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(Exception):
            await self.lease.release()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            if self.settings.debounce_ms:
                await asyncio.sleep(self.settings.debounce_ms / 1000)  # coalesce a burst of events
            self._wake.clear()
            full, nids, edge_ids = self._full_requested, self._nids, self._edge_ids
            self._full_requested, self._nids, self._edge_ids = False, set(), set()
            try:
                await self.run_cycle(scope_nids=None if full else nids, scope_edge_ids=None if full else edge_ids,
                                     trigger="resync" if full else "event")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("decision cycle failed")

    # -- one cycle --------------------------------------------------------------------------------

    async def run_cycle(
        self,
        *,
        scope_nids: set[str] | None = None,
        scope_edge_ids: set[int] | None = None,
        trigger: str = "manual",
        force_full: bool = False,
    ) -> dict[str, Any]:
        async with self._lock:
            scoped = not force_full and (scope_nids is not None or scope_edge_ids is not None)
            try:
                return await self._cycle(scope_nids if scoped else None, scope_edge_ids if scoped else None, trigger)
            except Conflict as exc:
                # Our view was stale (someone changed a deployment meanwhile): once more on fresh data.
                log.info("bulk write refused (%s); retrying on a fresh snapshot", exc.message)
                self.fleet = None
                return await self._cycle(None, None, trigger + "+retry")

    async def _cycle(self, scope_nids: set[str] | None, scope_edge_ids: set[int] | None, trigger: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        cycle_id = uuid.uuid4().hex
        async with self.sessionmaker() as session:
            controls = await store.controls(session, self.settings)
        if controls.get("paused"):
            return self._summary({"cycle_id": cycle_id, "trigger": trigger, "skipped": "paused"})
        if not await self.lease.acquire():
            return self._summary({"cycle_id": cycle_id, "trigger": trigger, "skipped": "another replica leads"})
        dry_run = bool(controls.get("dry_run"))

        self._last_refresh = None
        scope = await self._load_fleet(scope_nids, scope_edge_ids)
        t_fetch = time.perf_counter()
        now = utcnow()
        async with self.sessionmaker() as session:
            overrides = await store.overrides(session)
            inp = CycleInput(
                state=self.fleet,
                config=self.policies(overrides),
                now=now,
                scope=scope,
                pins=await store.pins(session),
                memory=await store.memory(session),
                rollouts=await store.rollouts(session),
                routes=await store.routes(session),
                focus=await store.focus(session, now),
                environment_ai_class=self.settings.environment_ai_class,
            )
            pending = await store.pending_decisions(session)
        t_load = time.perf_counter()
        result: CycleResult = await asyncio.to_thread(decide, inp)
        outcomes = self._outcomes(pending, now)
        t_decide = time.perf_counter()

        ops = wire(result.operations)
        rejected: str | None = None
        if ops and not dry_run:
            try:
                for chunk in chunks(ops, self.settings.bulk_max_operations):
                    results = await self.setup.bulk(chunk)
                    self._apply(chunk, results)
            except Conflict:
                raise
            except DomainError as exc:
                rejected = exc.message
                log.warning("setup refused the bulk write: %s", exc.message)
        t_write = time.perf_counter()

        decisions = result.decisions
        if dry_run:
            decisions = self._new_dry_run(decisions)

        def outcome_of(d: DecisionRecord) -> tuple[str, str | None]:
            if dry_run:
                return "dry_run", "dry-run: nothing was sent"
            if rejected:
                return ("rejected", rejected) if d.operations else ("applied", None)
            if not d.operations or all(op["op"] == "edge_status" for op in d.operations):
                return "applied", None
            return "pending", None

        async with self.sessionmaker() as session, session.begin():
            await store.save_decisions(session, store.decision_rows(decisions, cycle_id, dry_run=dry_run, outcome_of=outcome_of))
            if not rejected:
                await store.save_memory(session, result.memory)
                if not dry_run:
                    await store.save_rollouts(session, result.rollouts)
                    await store.save_routes(session, result.routes)
            await store.set_outcomes(session, outcomes)
        t_end = time.perf_counter()
        if result.next_wakeup is not None and self.on_wakeup is not None:
            self.on_wakeup(result.next_wakeup)
        summary = {
            "cycle_id": cycle_id,
            "trigger": trigger,
            "at": now.isoformat(),
            "dry_run": dry_run,
            "scope": None if scope is None else sorted(scope),
            "edges": len(self.fleet.edges),
            "operations": len(ops),
            "decisions": len(result.decisions),
            "recorded": len(decisions),
            "outcomes_updated": len(outcomes),
            "rejected": rejected,
            "refresh": self._last_refresh or {"kind": "scoped" if scope is not None else "cached"},
            "timings_ms": {
                "fetch": round((t_fetch - t0) * 1000, 1),
                "load": round((t_load - t_fetch) * 1000, 1),
                "decide": round((t_decide - t_load) * 1000, 1),
                "write": round((t_write - t_decide) * 1000, 1),
                "record": round((t_end - t_write) * 1000, 1),
                "total": round((t_end - t0) * 1000, 1),
            },
        }
        if ops or decisions:
            log.info("cycle %s: %d operations, %d decisions", trigger, len(ops), len(decisions), extra=log_fields(**summary))
        return self._summary(summary)

    def _summary(self, summary: dict[str, Any]) -> dict[str, Any]:
        self.last_cycle = summary
        return summary

    def policies(self, overrides: dict[str, dict[str, Any]]) -> PoliciesConfig:
        return self.settings.policies().merged(overrides)

    async def fleet_view(self) -> FleetState:
        """The last fleet state, fetched when there is none (for explain and edge look-ups)."""
        if self.fleet is None:
            async with self._lock:
                if self.fleet is None:
                    await self._load_fleet(None, None)
        assert self.fleet is not None
        return self.fleet

    # -- reading ----------------------------------------------------------------------------------

    async def _load_fleet(self, nids: set[str] | None, edge_ids: set[int] | None) -> set[int] | None:
        """Refresh the state; return the scope (edge ids) or None for the whole fleet."""
        if self.fleet is not None and (nids is not None or edge_ids is not None):
            ids = set(edge_ids or ())
            unknown = False
            for nid in nids or ():
                edge = self.fleet.edges_by_nid.get(nid)
                if edge is None:
                    unknown = True
                else:
                    ids.add(edge.id)
            if not unknown and ids:
                wanted_nids = {self.fleet.edges[i].nid for i in ids if i in self.fleet.edges}
                if self._setup_filters is False:
                    # This setup answers only whole snapshots: keep its rows from the cache (our own
                    # writes are folded in; anything else is caught by expected_generation) and
                    # refresh what the event is about, the nodes' state, from the VMS.
                    self.fleet.replace_nodes(await self.vms.nodes(wanted_nids))
                    return ids
                snapshot, nodes = await asyncio.gather(self.setup.snapshot(ids), self.vms.nodes(wanted_nids))
                if len(snapshot.get("edges") or ()) > len(ids):
                    self._setup_filters = False
                    all_nodes = await self.vms.nodes()
                    self.fleet = await asyncio.to_thread(FleetState.from_wire, snapshot, all_nodes)
                else:
                    self._setup_filters = True
                    self.fleet.replace_edges(ids, snapshot, nodes)
                return ids
            if not unknown:
                return set()
        await self._refresh_whole()
        if self._setup_filters is None and self.fleet.edges and self._probe is None:
            # Learn now, not on the first event, whether setup filters snapshots by edge.
            self._probe = asyncio.create_task(self._probe_setup_filter(min(self.fleet.edges)))
        if nids is not None or edge_ids is not None:
            ids = set(edge_ids or ()) | {self.fleet.edges_by_nid[n].id for n in nids or () if n in self.fleet.edges_by_nid}
            return ids
        return None

    async def _refresh_whole(self) -> None:
        """The whole fleet into the mirror: only what changed since the last answers (``?since=``,
        both sources), and a whole read at start, every ``full_refresh_every``-th time, after a
        refused write (the mirror is dropped), or where a source cannot answer incrementally."""
        every = self.settings.full_refresh_every
        if (
            self.fleet is not None and self._marks is not None and self._since_ok
            and (every == 0 or self._incrementals < every - 1)
        ):
            overlap = timedelta(seconds=self.settings.since_overlap_s)
            setup_mark, vms_mark = self._marks
            snapshot, body = await asyncio.gather(
                self.setup.snapshot(since=setup_mark - overlap), self.vms.state(since=vms_mark - overlap)
            )
            if "edge_ids" in snapshot:
                nodes = body["items"] if isinstance(body, dict) else body
                fleet = self.fleet
                if len(snapshot.get("edges") or ()) + len(snapshot.get("deployments") or ()) + len(nodes) > 2000:
                    counts = await asyncio.to_thread(fleet.apply_changes, snapshot, nodes)
                else:
                    counts = fleet.apply_changes(snapshot, nodes)
                self._marks = self._marks_of(snapshot, body)
                self._incrementals += 1
                self._last_refresh = {"kind": "incremental", **counts}
                return
            self._since_ok = False  # this setup ignores ?since= (it answered everything): read whole from now on
            log.warning("setup answers no incremental snapshot (no edge_ids): whole reads every cycle")
        snapshot, body = await asyncio.gather(self.setup.snapshot(), self.vms.state())
        nodes = body["items"] if isinstance(body, dict) else body
        self.fleet = await asyncio.to_thread(FleetState.from_wire, snapshot, nodes)
        self._marks = self._marks_of(snapshot, body)
        self._incrementals = 0
        self._last_refresh = {"kind": "full", "edges": len(self.fleet.edges), "deployments": len(self.fleet.deployments),
                              "nodes": len(nodes)}

    @staticmethod
    def _marks_of(snapshot: dict[str, Any], body: Any) -> tuple[datetime, datetime] | None:
        """Each source's database clock at its answer: the next incremental read starts there."""
        setup_at = parse_ts(snapshot.get("generated_at"))
        vms_at = parse_ts(body.get("generated_at")) if isinstance(body, dict) else None
        return (setup_at, vms_at) if setup_at is not None and vms_at is not None else None

    async def _probe_setup_filter(self, edge_id: int) -> None:
        with contextlib.suppress(Exception):
            answer = await self.setup.snapshot({edge_id})
            self._setup_filters = len(answer.get("edges") or ()) <= 1

    # -- writing ----------------------------------------------------------------------------------

    def _apply(self, ops: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
        """Fold setup's answer into the cached state, so event cycles start from what we wrote."""
        fleet = self.fleet
        if fleet is None:
            return
        for op, res in zip(ops, results):
            kind = op["op"]
            if kind == "edge_status":
                if (edge := fleet.edges.get(op["edge_id"])) is not None:
                    edge.status = op["status"]
                continue
            if kind == "create":
                pkg = fleet.packages.get(op["ai_id"])
                fleet.add_deployment(deployment_from_wire({
                    "id": res["id"], "edge_id": op["edge_id"], "ai_id": op["ai_id"], "filename": pkg.filename if pkg else "",
                    "params": op.get("params") or {}, "allow_multiple": op.get("allow_multiple", False),
                    "generation": res.get("generation") or 1, "observed": "pending", "observed_generation": 0,
                    "decision_id": op.get("decision_id"),
                }))
                continue
            d: Deployment | None = fleet.deployments.get(op["id"])
            if d is None:
                continue
            d.generation = res.get("generation") or d.generation + 1
            d.decision_id = op.get("decision_id")
            if kind == "remove":
                d.desired = "removed"
                lst = fleet.by_edge.get(d.edge_id, [])
                fleet.by_edge[d.edge_id] = [x for x in lst if x.id != d.id]
            else:
                if "ai_id" in op:
                    d.ai_id = op["ai_id"]
                if "params" in op:
                    d.params = op["params"]
                d.observed = "pending"

    def _new_dry_run(self, decisions: list[DecisionRecord]) -> list[DecisionRecord]:
        """In dry-run nothing changes, so the same decisions come back every cycle: record each once."""
        fresh = []
        for d in decisions:
            ops = [{k: v for k, v in op.items() if "decision_id" not in k} for op in d.operations]
            sig = orjson.dumps([d.policy, d.action, d.edge_id, d.deployment_id, ops], option=orjson.OPT_SORT_KEYS).decode()
            if sig not in self._dry_run_seen:
                self._dry_run_seen.add(sig)
                fresh.append(d)
        return fresh

    def _outcomes(self, pending: list[tuple[str, datetime, list[dict[str, Any]]]], now: datetime) -> dict[str, tuple[str, str | None]]:
        """Outcomes of earlier decisions, read from the deployments' observed state in this snapshot."""
        if not pending or self.fleet is None:
            return {}
        fleet = self.fleet
        by_decision: dict[str, list[Deployment]] = {}
        for d in fleet.deployments.values():
            if d.decision_id:
                by_decision.setdefault(d.decision_id, []).append(d)
        timeout = timedelta(seconds=self.settings.outcome_timeout_s)
        outcomes: dict[str, tuple[str, str | None]] = {}
        for decision_id, at, ops in pending:
            verdicts: list[tuple[str, str | None]] = []
            carried = {d.id: d for d in by_decision.get(decision_id, ())}
            for op in ops:
                kind = op.get("op")
                if kind == "edge_status":
                    continue
                if kind == "remove":
                    d = fleet.deployments.get(op["id"])
                    verdicts.append(("succeeded", None) if d is None or d.observed == "removed" else ("pending", None))
                    continue
                d = fleet.deployments.get(op["id"]) if kind == "update" else next(
                    (x for x in carried.values() if x.edge_id == op["edge_id"] and x.ai_id == op["ai_id"]), None)
                if d is None:
                    verdicts.append(("superseded", "the deployment is gone"))
                elif d.decision_id != decision_id:
                    verdicts.append(("superseded", f"a later decision ({d.decision_id}) changed it"))
                elif d.observed_generation < d.generation:
                    verdicts.append(("pending", None))
                elif d.observed == "running":
                    verdicts.append(("succeeded", None))
                elif d.observed == "failed":
                    verdicts.append(("failed", d.observed_reason))
                else:
                    verdicts.append(("pending", None))
            if not verdicts:
                outcomes[decision_id] = ("applied", None)
            elif any(v == "failed" for v, _ in verdicts):
                outcomes[decision_id] = next(v for v in verdicts if v[0] == "failed")
            elif any(v == "pending" for v, _ in verdicts):
                if now - at > timeout:
                    outcomes[decision_id] = ("unknown", f"no observed state after {timeout.total_seconds():.0f} s")
            elif all(v == "succeeded" for v, _ in verdicts):
                outcomes[decision_id] = ("succeeded", None)
            else:
                outcomes[decision_id] = next(v for v in verdicts if v[0] == "superseded")
        return outcomes
