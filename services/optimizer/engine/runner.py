"""The decision runner: reads the fleet in bulk, runs the pure cycle, writes only the differences
with one bulk call, records every decision, and keeps outcomes up to date.

Triggers: the scheduler's resync (whole fleet) and events (the edges concerned, coalesced within
``debounce_ms``). Cycles never overlap (one lock). Only the replica holding the lease acts.

Event-driven cycles reuse the last whole-fleet state and refresh just the concerned edges: the VMS
answers ``?nids=`` and setup ``?edge_ids=`` with only those rows; setup's answer to a write is
applied to the cache. A stale cache cannot do harm: updates carry ``expected_generation``, a
refused write drops the cache and the cycle reruns on a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import Depends
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.optimizer.engine import store
from services.optimizer.engine.cycle import CycleResult, decide
from services.optimizer.engine.leader import Lease
from services.optimizer.metrics import OptimizerMetrics
from services.optimizer.model.config import PoliciesConfig
from services.optimizer.model.context import CycleInput, RouteState
from services.optimizer.model.plan import DecisionRecord, Planned
from services.optimizer.model.state import (
    Deployment,
    FleetRead,
    FleetState,
    NodesRead,
    deployment_from_wire,
)
from services.optimizer.policies.forecast import ForecastMemo
from services.optimizer.settings import OptimizerSettings
from services.optimizer.sources.clients import AnalysisProbe, SetupClient, VmsClient
from shared.contracts.decisions import (
    BulkOperation,
    BulkResult,
    CreateOp,
    EdgeStatusOp,
    Outcome,
    RemoveOp,
    UpdateOp,
)
from shared.contracts.fleet import DesiredState, ObservedState
from shared.deps import from_app_state
from shared.errors import Conflict, DomainError
from shared.logging import log_fields

log = logging.getLogger("edge.optimizer.runner")


Verdict = tuple[Outcome, str | None]
OPERATIONS: TypeAdapter[list[BulkOperation]] = TypeAdapter(list[BulkOperation])


def utcnow() -> datetime:
    return datetime.now(UTC)


def chunks(planned: list[Planned], size: int) -> list[list[Planned]]:
    """Bulk calls of at most ``size`` operations (setup's body limit), never splitting one
    decision's operations (a hand-over's create and update stay in one transaction)."""
    out: list[list[Planned]] = []
    groups: dict[str, list[Planned]] = {}
    for p in planned:
        groups.setdefault(p.decision_id, []).append(p)
    current: list[Planned] = []
    for group in groups.values():
        if current and len(current) + len(group) > size:
            out.append(current)
            current = []
        current.extend(group)
    if current:
        out.append(current)
    return out


@dataclass
class Written:
    """How a cycle's bulk write went: ``rejected`` holds setup's refusal."""

    dry_run: bool
    rejected: str | None = None
    routes_saved: bool = False  # saved before the write (see _cycle)

    def outcome_of(self, d: DecisionRecord) -> Verdict:
        if self.dry_run:
            return Outcome.DRY_RUN, "dry-run: nothing was sent"
        if self.rejected:
            return (Outcome.REJECTED, self.rejected) if d.operations else (Outcome.APPLIED, None)
        if all(isinstance(op, EdgeStatusOp) for op in d.operations):
            return Outcome.APPLIED, None  # nothing to observe (no operation, or an edge status)
        return Outcome.PENDING, None


class DecisionRunner:
    def __init__(
        self,
        settings: OptimizerSettings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        setup: SetupClient,
        vms: VmsClient,
        analysis: AnalysisProbe | None = None,
    ):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.setup = setup
        self.vms = vms
        self.analysis = analysis
        self.lease = Lease(engine, settings.lease_ttl_s, settings.replica_id)
        self.fleet: FleetState | None = None
        self.last_cycle: dict[str, Any] | None = None
        # Set by the app: schedules a cycle at a focus expiry or a hysteresis deadline.
        self.on_wakeup: Callable[[datetime], None] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._full_requested = False
        self._nids: set[str] = set()
        self._edge_ids: set[int] = set()
        self._dry_run_seen: set[bytes] = set()
        # (setup, VMS) generated_at of the last read: the next incremental read starts there.
        self._marks: tuple[datetime, datetime] | None = None
        self._incrementals = 0  # incremental reads since the last whole one
        self._last_refresh: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self.trends: dict[str, Any] = {}  # the overload policy's load trends, between cycles
        self.forecast_memo = ForecastMemo()  # what it made of them, by the mirror's rows
        self.metrics: OptimizerMetrics | None = None  # set by the app (served at /metrics)

    # -- triggering -------------------------------------------------------------------------------

    def request(
        self, *, nids: set[str] | None = None, edge_ids: set[int] | None = None, full: bool = False
    ) -> None:
        """Ask for a cycle soon; requests arriving together are decided together."""
        if full:
            self._full_requested = True
        self._nids |= nids or set()
        self._edge_ids |= edge_ids or set()
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="optimizer-decisions")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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
                await self.run_cycle(
                    scope_nids=None if full else nids,
                    scope_edge_ids=None if full else edge_ids,
                    trigger="resync" if full else "event",
                )
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
                if scoped:
                    return await self._cycle(scope_nids, scope_edge_ids, trigger)
                return await self._cycle(None, None, trigger)
            except Conflict as exc:
                # Our view was stale (someone changed a deployment meanwhile): again on fresh data.
                log.info("bulk write refused (%s); retrying on a fresh snapshot", exc.message)
                self.fleet = None
                return await self._cycle(None, None, trigger + "+retry")

    async def _cycle(
        self, scope_nids: set[str] | None, scope_edge_ids: set[int] | None, trigger: str
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        cycle_id = uuid.uuid4().hex
        async with self.sessionmaker() as session:
            controls = await store.controls(session, self.settings)
        if self.metrics is not None:
            self.metrics.controls(controls)
        if controls.get("paused"):
            self._count("paused")
            return self._summary({"cycle_id": cycle_id, "trigger": trigger, "skipped": "paused"})
        if not await self.lease.acquire():
            self._count("not_leader")
            return self._summary(
                {"cycle_id": cycle_id, "trigger": trigger, "skipped": "another replica leads"}
            )
        dry_run = bool(controls.get("dry_run"))

        self._last_refresh = None
        scope, fleet = await self._load_fleet(scope_nids, scope_edge_ids)
        t_fetch = time.perf_counter()
        now = utcnow()
        inp, pending = await self._cycle_input(fleet, scope, now)
        t_load = time.perf_counter()
        result: CycleResult = await asyncio.to_thread(decide, inp)
        outcomes = self._outcomes(fleet, pending, now)
        t_decide = time.perf_counter()
        written = Written(dry_run=dry_run)
        if result.operations and not dry_run:
            # Routes first: a helper that acts on the new deployments within a second must find
            # its hand-off in GET /routing (the VMS checks it); put back if setup refuses.
            await self._save_routes(result.routes)
            try:
                written.rejected = await self._write(result.operations)
            except BaseException:
                await self._restore_routes(result.routes, inp.routes)
                raise
            if written.rejected:
                await self._restore_routes(result.routes, inp.routes)
            written.routes_saved = not written.rejected
        t_write = time.perf_counter()
        decisions = self._new_dry_run(result.decisions) if dry_run else result.decisions
        await self._record(cycle_id, result, decisions, outcomes, written)
        t_end = time.perf_counter()
        if self.metrics is not None:
            self._count("ran")
            self.metrics.cycle_seconds.observe(t_end - t0)
            self.metrics.fleet(fleet.columns, inp.rollouts)
        if result.next_wakeup is not None and self.on_wakeup is not None:
            self.on_wakeup(result.next_wakeup)
        summary = {
            "cycle_id": cycle_id,
            "trigger": trigger,
            "at": now.isoformat(),
            "dry_run": dry_run,
            "scope": None if scope is None else sorted(scope),
            "edges": len(fleet.edges),
            "operations": len(result.operations),
            "decisions": len(result.decisions),
            "recorded": len(decisions),
            "outcomes_updated": len(outcomes),
            "rejected": written.rejected,
            "refresh": self._last_refresh or {"kind": "scoped" if scope is not None else "cached"},
            "timings_ms": {
                "fetch": _ms(t_fetch - t0),
                "load": _ms(t_load - t_fetch),
                "decide": _ms(t_decide - t_load),
                "write": _ms(t_write - t_decide),
                "record": _ms(t_end - t_write),
                "total": _ms(t_end - t0),
            },
        }
        if result.operations or decisions:
            log.info(
                "cycle %s: %d operations, %d decisions",
                trigger,
                len(result.operations),
                len(decisions),
                extra=log_fields(**summary),
            )
        return self._summary(summary)

    async def _cycle_input(
        self, fleet: FleetState, scope: set[int] | None, now: datetime
    ) -> tuple[CycleInput, list[store.PendingDecision]]:
        """What the policies read besides the fleet, and the decisions still waiting for an
        outcome."""
        async with self.sessionmaker() as session:
            overrides = await store.overrides(session)
            inp = CycleInput(
                state=fleet,
                config=self.policies(overrides),
                now=now,
                scope=scope,
                pins=await store.pins(session),
                memory=await store.memory(session),
                rollouts=await store.rollouts(session),
                routes=await store.routes(session),
                focus=await store.focus(session, now),
                environment_ai_class=self.settings.environment_ai_class,
                analysis_url=self.settings.edge_analysis_url(),
                analysis_trouble=await self.analysis.trouble() if self.analysis else None,
                trends=self.trends,
                forecast_memo=self.forecast_memo,
            )
            pending = await store.pending_decisions(session)
        return inp, pending

    async def _write(self, planned: list[Planned]) -> str | None:
        """Send the operations in bulk calls; setup's refusal (other than a stale view, which is
        raised for the retry) is returned and recorded on the decisions."""
        try:
            for chunk in chunks(planned, self.settings.bulk_max_operations):
                ops = [p.op for p in chunk]
                self._apply(ops, await self.setup.bulk(ops))
        except Conflict:
            raise
        except DomainError as exc:
            log.warning("setup refused the bulk write: %s", exc.message)
            return exc.message
        return None

    async def _save_routes(self, routes: list[RouteState]) -> None:
        async with self.sessionmaker() as session, session.begin():
            await store.save_routes(session, routes)

    async def _restore_routes(
        self, routes: list[RouteState], before: dict[str, RouteState]
    ) -> None:
        async with self.sessionmaker() as session, session.begin():
            await store.restore_routes(session, routes, before)

    async def _record(
        self,
        cycle_id: str,
        result: CycleResult,
        decisions: list[DecisionRecord],
        outcomes: dict[str, Verdict],
        written: Written,
    ) -> None:
        """The decisions, the policies' memory, rollouts and routes, and earlier outcomes: one
        transaction."""
        rows = store.decision_rows(
            decisions, cycle_id, dry_run=written.dry_run, outcome_of=written.outcome_of
        )
        async with self.sessionmaker() as session, session.begin():
            await store.save_decisions(session, rows)
            if self.metrics is not None:
                self.metrics.recorded(rows)
            if not written.rejected:
                await store.save_memory(session, result.memory)
                if not written.dry_run:
                    await store.save_rollouts(session, result.rollouts)
                    if not written.routes_saved:
                        await store.save_routes(session, result.routes)
            await store.set_outcomes(session, outcomes)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.cycles.labels(result).inc()

    def _summary(self, summary: dict[str, Any]) -> dict[str, Any]:
        self.last_cycle = summary
        return summary

    def policies(self, overrides: dict[str, dict[str, Any]]) -> PoliciesConfig:
        return self.settings.policies().merged(overrides)

    async def fleet_view(self) -> FleetState:
        """The last fleet state, fetched when there is none (for explain and edge look-ups)."""
        if self.fleet is not None:
            return self.fleet
        async with self._lock:
            if self.fleet is None:
                await self._load_fleet(None, None)
        assert self.fleet is not None  # _load_fleet sets it or raises
        return self.fleet

    async def fresh_fleet_view(self) -> FleetState:
        """The fleet refreshed now: an edge registered since the last refresh is in it."""
        async with self._lock:
            return await self._refresh_whole()

    # -- reading ----------------------------------------------------------------------------------

    async def _load_fleet(
        self, nids: set[str] | None, edge_ids: set[int] | None
    ) -> tuple[set[int] | None, FleetState]:
        """Refresh the state; return the scope (edge ids, None for the whole fleet) and the
        state."""
        scoped = nids is not None or edge_ids is not None
        if self.fleet is not None and scoped:
            fleet = self.fleet
            unknown = [n for n in nids or () if n not in fleet.edges_by_nid]
            if not unknown:
                ids = set(edge_ids or ()) | {fleet.edges_by_nid[n].id for n in nids or ()}
                if ids:
                    await self._refresh_edges(fleet, ids)
                return ids, fleet
        fleet = await self._refresh_whole()
        if not scoped:
            return None, fleet
        ids = set(edge_ids or ()) | {
            fleet.edges_by_nid[n].id for n in nids or () if n in fleet.edges_by_nid
        }
        return ids, fleet

    async def _refresh_edges(self, fleet: FleetState, ids: set[int]) -> None:
        """An event's edges, fresh from both sources, into the mirror."""
        wanted_nids = {fleet.edges[i].nid for i in ids if i in fleet.edges}
        snapshot, nodes = await asyncio.gather(
            self.setup.snapshot(ids), self.vms.state(wanted_nids)
        )
        fleet.replace_edges(ids, snapshot, nodes)

    async def _refresh_whole(self) -> FleetState:
        """The whole fleet into the mirror: only what changed since the last answers (``?since=``,
        both sources), and a whole read at start, every ``full_refresh_every``-th time and after a
        refused write (the mirror is dropped)."""
        every = self.settings.full_refresh_every
        fleet, marks = self.fleet, self._marks
        if (
            fleet is not None
            and marks is not None
            and (every == 0 or self._incrementals < every - 1)
        ):
            overlap = timedelta(seconds=self.settings.since_overlap_s)
            snapshot, nodes = await asyncio.gather(
                self.setup.snapshot(since=marks[0] - overlap),
                self.vms.state(since=marks[1] - overlap),
            )
            changed = len(snapshot.edges) + len(snapshot.deployments) + len(nodes.nodes)
            if changed > 2000:
                counts = await asyncio.to_thread(fleet.apply_read, snapshot, nodes)
            else:
                counts = fleet.apply_read(snapshot, nodes)
            self._marks = self._marks_of(snapshot, nodes)
            self._incrementals += 1
            self._last_refresh = {"kind": "incremental", **counts}
            return fleet
        # Both sources at once; each answer is decoded into objects as it arrives.
        gc.unfreeze()  # the mirror about to be replaced is the collector's again (see below)
        snapshot, nodes = await asyncio.gather(self.setup.snapshot(), self.vms.state())
        old = self.fleet
        fleet = self.fleet = await asyncio.to_thread(FleetState.from_read, snapshot, nodes)
        if old is not None:  # what the forecast memo knew of the unchanged nodes is kept
            self.forecast_memo.carry(old, fleet, self.trends)
        del old
        # The mirror lives until the next whole read: its objects (about ten per edge) are moved
        # out of the collector's generations, so that the garbage of the cycles in between no
        # longer makes a full collection walk them all (a third of a 100,000-edge cold cycle's
        # decide, 0.875 against 0.549 s measured; seconds at a million). Reference counting
        # frees them as ever once dropped.
        gc.freeze()
        self._marks = self._marks_of(snapshot, nodes)
        self._incrementals = 0
        self._last_refresh = {
            "kind": "full",
            "edges": len(fleet.edges),
            "deployments": len(fleet.deployments),
            "nodes": len(nodes.nodes),
        }
        return fleet

    @staticmethod
    def _marks_of(snapshot: FleetRead, nodes: NodesRead) -> tuple[datetime, datetime] | None:
        """Each source's database clock at its answer: the next incremental read starts there."""
        setup_at, vms_at = snapshot.generated_at, nodes.generated_at
        return (setup_at, vms_at) if setup_at is not None and vms_at is not None else None

    # -- writing ----------------------------------------------------------------------------------

    def _apply(self, ops: list[BulkOperation], results: list[BulkResult]) -> None:
        """Fold setup's answer into the cached state, so event cycles start from what we wrote."""
        fleet = self.fleet
        if fleet is None:
            return
        for op, res in zip(ops, results, strict=True):
            if isinstance(op, EdgeStatusOp):
                if (edge := fleet.edges.get(op.edge_id)) is not None:
                    edge.status = op.status
                    fleet.changed_edge(edge)
            elif isinstance(op, CreateOp):
                fleet.add_deployment(_created(fleet, op, res))
            elif (d := fleet.deployments.get(op.id)) is not None:
                d.generation = res.generation or d.generation + 1
                d.decision_id = op.decision_id
                if isinstance(op, RemoveOp):
                    d.desired = DesiredState.REMOVED
                    fleet.by_edge[d.edge_id] = [
                        x for x in fleet.by_edge.get(d.edge_id, []) if x.id != d.id
                    ]
                    fleet.changed_deployment(d)
                    continue
                if op.ai_id is not None:
                    d.ai_id = op.ai_id
                if op.params is not None:
                    d.params = op.params
                d.observed = ObservedState.PENDING
                fleet.changed_deployment(d)

    def _new_dry_run(self, decisions: list[DecisionRecord]) -> list[DecisionRecord]:
        """In dry-run nothing changes, so the same decisions come back every cycle: record each
        once."""
        fresh = []
        for d in decisions:
            ops = [
                op.model_dump(mode="json", exclude_none=True, exclude={"decision_id"})
                for op in d.operations
            ]
            sig = orjson.dumps(
                [d.policy, d.action, d.edge_id, d.deployment_id, ops], option=orjson.OPT_SORT_KEYS
            )
            if sig not in self._dry_run_seen:
                self._dry_run_seen.add(sig)
                fresh.append(d)
        return fresh

    # -- outcomes ---------------------------------------------------------------------------------

    def _outcomes(
        self, fleet: FleetState, pending: list[store.PendingDecision], now: datetime
    ) -> dict[str, Verdict]:
        """Outcomes of earlier decisions, read from the deployments' observed state in this
        snapshot."""
        if not pending:
            return {}
        created_by: dict[str, list[Deployment]] = {}  # decision id -> deployments it carries
        for d in fleet.deployments.values():
            if d.decision_id:
                created_by.setdefault(d.decision_id, []).append(d)
        timeout = timedelta(seconds=self.settings.outcome_timeout_s)
        outcomes: dict[str, Verdict] = {}
        for decision_id, at, stored in pending:
            carried = created_by.get(decision_id, [])
            # (An edge status is applied at once: nothing to observe.)
            sent = OPERATIONS.validate_python([op for op in stored if op["op"] != "edge_status"])
            verdicts = [_verdict(fleet, op, decision_id, carried) for op in sent]
            outcome = _overall(verdicts, timed_out=now - at > timeout, timeout=timeout)
            if outcome is not None:
                outcomes[decision_id] = outcome
        return outcomes


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _created(fleet: FleetState, op: CreateOp, res: BulkResult) -> Deployment:
    """The deployment setup just created for ``op``, as the next snapshot will show it."""
    pkg = fleet.packages.get(op.ai_id)
    return deployment_from_wire(
        {
            "id": res.id,
            "edge_id": op.edge_id,
            "ai_id": op.ai_id,
            "filename": pkg.filename if pkg else "",
            "desired": DesiredState.RUNNING,
            "params": op.params,
            "allow_multiple": op.allow_multiple,
            "generation": res.generation or 1,
            "observed": ObservedState.PENDING,
            "observed_generation": 0,
            "restarts": 0,
            "decision_id": op.decision_id,
        }
    )


def _verdict(
    fleet: FleetState, op: BulkOperation, decision_id: str, carried: list[Deployment]
) -> Verdict:
    """How one operation of a pending decision went, as this snapshot shows it."""
    if isinstance(op, RemoveOp):
        gone = fleet.deployments.get(op.id)
        if gone is None or gone.observed == ObservedState.REMOVED:
            return Outcome.SUCCEEDED, None
        return Outcome.PENDING, None
    d: Deployment | None = None
    if isinstance(op, UpdateOp):
        d = fleet.deployments.get(op.id)
    elif isinstance(op, CreateOp):
        d = next((x for x in carried if x.edge_id == op.edge_id and x.ai_id == op.ai_id), None)
    if d is None:
        return Outcome.SUPERSEDED, "the deployment is gone"
    if d.decision_id != decision_id:
        return Outcome.SUPERSEDED, f"a later decision ({d.decision_id}) changed it"
    if d.observed_generation < d.generation:
        return Outcome.PENDING, None
    if d.observed == ObservedState.RUNNING:
        return Outcome.SUCCEEDED, None
    if d.observed == ObservedState.FAILED:
        return Outcome.FAILED, d.observed_reason
    return Outcome.PENDING, None


def _overall(verdicts: list[Verdict], *, timed_out: bool, timeout: timedelta) -> Verdict | None:
    """A decision's outcome from its operations' verdicts; None: still pending."""
    kinds = {v for v, _ in verdicts}
    if not verdicts:
        return Outcome.APPLIED, None
    if Outcome.FAILED in kinds:
        return next(v for v in verdicts if v[0] == Outcome.FAILED)
    if Outcome.PENDING in kinds:
        if timed_out:
            return Outcome.UNKNOWN, f"no observed state after {timeout.total_seconds():.0f} s"
        return None
    if kinds == {Outcome.SUCCEEDED}:
        return Outcome.SUCCEEDED, None
    return next(v for v in verdicts if v[0] == Outcome.SUPERSEDED)


RunnerDep = Annotated[DecisionRunner, Depends(from_app_state("runner", DecisionRunner))]
