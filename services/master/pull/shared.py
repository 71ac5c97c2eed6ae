"""The board of desired sets shared by several master processes of one site (uvicorn workers,
Kubernetes replicas): ``MASTER_BOARD_SHARED=true``.

- **One leader.** The process holding the site's lease (``board:<MASTER_NAME>`` in
  ``master.leases``, shared.leases, renewed every ``MASTER_BOARD_LEASE_RENEW_S``) reconciles and
  publishes the MQTT notices; when it dies its lease expires after ``MASTER_BOARD_LEASE_TTL_S``
  and another process takes over (and runs a pass at once).
- **Desired sets in Postgres.** Each set the leader commits is written to
  ``master.board_desired`` (nid, tag, generation, the committed workloads, the route's JSON)
  with a ``NOTIFY master_board_desired, '<nid>'`` (the sets committed while one write runs go in
  the next, one transaction), and only then is its MQTT notice queued. Every other
  process keeps its in-memory board fresh from those notices (the desired route stays a dict
  lookup) and re-reads the whole table every ``MASTER_BOARD_RESYNC_S`` (a notice missed while
  its listening connection was down).
- **Reports reach the leader.** A report posted to any process is written to
  ``master.board_observed`` with a ``NOTIFY master_board_observed``; the leader applies it as if
  it had been posted to it. A process that takes over reads every stored report first.
- **POST /reconcile** on a process that does not lead sends ``NOTIFY master_board_reconcile``:
  the leader runs a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.master.models import BoardDesired, BoardObserved
from services.master.pull.board import DesiredBoard, EdgeBoard
from services.master.settings import MasterSettings
from shared.contracts.updates import ObservedSet
from shared.leases import Lease

log = logging.getLogger("edge.master.board")

DESIRED_CHANNEL = "master_board_desired"
OBSERVED_CHANNEL = "master_board_observed"
RECONCILE_CHANNEL = "master_board_reconcile"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_NOTIFY_EACH = text("SELECT pg_notify(:channel, nid) FROM unnest(CAST(:nids AS text[])) AS nid")

ReportHandler = Callable[[str, ObservedSet, float], None]  # nid, report, when it came


class SharedBoard:
    def __init__(self, settings: MasterSettings, engine: AsyncEngine, board: DesiredBoard):
        self.settings = settings
        self.engine = engine
        self.board = board
        self.lease = Lease(
            engine,
            settings.board_lease_ttl_s,
            settings.replica_id,
            table="master.leases",
            name=f"board:{settings.name or 'site'}",
        )
        self._on_report: ReportHandler = lambda nid, observed, at: None
        self._on_reconcile: Callable[[], None] = lambda: None
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[None]] = set()
        self._wanted: set[str] = set()  # nids whose row a notice said changed
        self._wake = asyncio.Event()
        # nid -> (row, its notice): the sets committed since the last write
        self._outbox: dict[str, tuple[dict[str, Any], Callable[[], None]]] = {}
        self._outbox_wake = asyncio.Event()

    @property
    def leads(self) -> bool:
        return self.lease.held

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self, *, on_report: ReportHandler, on_reconcile: Callable[[], None]) -> None:
        """Listen, read the whole board, try to lead; then renew, re-read and apply notices in
        the background. ``on_report``/``on_reconcile``: what the leader does with a report or a
        reconcile asked of another process (``on_reconcile`` also runs on taking over)."""
        self._on_report, self._on_reconcile = on_report, on_reconcile
        await self._ensure_listener()
        await self.resync()
        await self._renew()
        s = self.settings
        self._tasks = [
            asyncio.create_task(self._every(s.board_lease_renew_s, self._renew), name="lease"),
            asyncio.create_task(self._every(s.board_resync_s, self.resync), name="board-resync"),
            asyncio.create_task(self._apply_notices(), name="board-notices"),
            asyncio.create_task(self._write_outbox(), name="board-writes"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._spawned]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        with contextlib.suppress(SQLAlchemyError, OSError):
            await self.lease.release()  # another process takes over at once, not after the TTL
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    async def _every(self, period_s: float, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await job()
            except (SQLAlchemyError, asyncpg.PostgresError, OSError) as exc:
                log.warning("shared board: %s", exc)

    async def _renew(self) -> None:
        was = self.lease.held
        try:
            await self.lease.acquire()
        except (SQLAlchemyError, OSError) as exc:
            self.lease.held = False  # cannot prove it leads: it stops acting
            log.warning("cannot renew the board's lease: %s", exc)
        if self.lease.held and not was:
            log.info("this process leads the site's board (%s)", self.lease.me)
            try:
                await self._load_observed(None)  # what agents reported to the others
            except (SQLAlchemyError, OSError) as exc:
                log.warning("stored reports not read (the next re-read catches up): %s", exc)
            self._on_reconcile()
        elif was and not self.lease.held:
            log.warning("this process no longer leads the site's board")

    # --- the leader's writes ------------------------------------------------------------
    def publish(self, edge: EdgeBoard, then: Callable[[], None]) -> None:
        """Queue the edge's committed set (the leader, in its pass) for the next write, and
        ``then`` (its MQTT notice) for once it is written: every set committed meanwhile goes
        in one transaction, so a fleet-wide change is a few writes, not one per edge."""
        if not self.leads:
            return
        row = {
            "nid": edge.nid,
            "tag": edge.tag,
            "generation": edge.generation,
            "committed": {k: w.model_dump(mode="json") for k, w in edge.committed.items()},
            "body": edge.body.decode(),
        }
        self._outbox[edge.nid] = (row, then)
        self._outbox_wake.set()

    async def _write_outbox(self) -> None:
        while True:
            await self._outbox_wake.wait()
            self._outbox_wake.clear()
            while self._outbox:
                batch, self._outbox = self._outbox, {}
                try:
                    await self._write([row for row, _ in batch.values()])
                except (SQLAlchemyError, OSError) as exc:
                    log.warning("desired sets not written, retrying in 1 s: %s", exc)
                    for nid, queued in batch.items():
                        self._outbox.setdefault(nid, queued)  # unless a newer one came
                    await asyncio.sleep(1)
                    continue
                for _, then in batch.values():
                    then()

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        upsert = insert(BoardDesired)
        upsert = upsert.on_conflict_do_update(
            index_elements=[BoardDesired.nid],
            set_={k: upsert.excluded[k] for k in ("tag", "generation", "committed", "body")},
        )
        async with self.engine.begin() as conn:
            await conn.execute(upsert, rows)
            nids = [row["nid"] for row in rows]
            await conn.execute(_NOTIFY_EACH, {"channel": DESIRED_CHANNEL, "nids": nids})

    async def post_report(self, nid: str, observed: ObservedSet) -> float:
        """Store an agent's report (for the leader, and for whoever leads next); when it came."""
        at = time.time()
        row = {"nid": nid, "report": observed.model_dump_json(), "at": at}
        upsert = insert(BoardObserved).values(**row)
        upsert = upsert.on_conflict_do_update(
            index_elements=[BoardObserved.nid],
            set_={"report": upsert.excluded.report, "at": upsert.excluded.at},
        )
        payload = json.dumps({"nid": nid, "by": self.lease.me})
        async with self.engine.begin() as conn:
            await conn.execute(upsert)
            await conn.execute(_NOTIFY, {"channel": OBSERVED_CHANNEL, "payload": payload})
        return at

    async def ask_reconcile(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(_NOTIFY, {"channel": RECONCILE_CHANNEL, "payload": self.lease.me})

    # --- keeping the copy fresh ---------------------------------------------------------
    async def resync(self) -> None:
        """Listen again if the connection dropped, then read the whole board."""
        await self._ensure_listener()
        if not self.leads:  # the leader's own board is the one written
            await self._load_desired(None)
        await self._load_observed(None)

    async def _load_desired(self, nids: Iterable[str] | None) -> None:
        query = select(BoardDesired)
        if nids is not None:
            query = query.where(BoardDesired.nid.in_(list(nids)))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        for row in rows:
            self.board.install(
                row.nid,
                tag=row.tag,
                generation=row.generation,
                committed=row.committed,
                body=row.body.encode(),
            )

    async def _load_observed(self, nids: Iterable[str] | None) -> None:
        query = select(BoardObserved)
        if nids is not None:
            query = query.where(BoardObserved.nid.in_(list(nids)))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        for row in rows:
            known = self.board.known(row.nid)
            if known is not None and known.observed_at >= row.at:
                continue  # this process has it already (or newer)
            observed = ObservedSet.model_validate_json(row.report)
            if self.leads:
                self._on_report(row.nid, observed, row.at)
            else:
                self.board.report(row.nid, observed, at=row.at)

    async def _apply_notices(self) -> None:
        """Read the rows notices named, a batch at a time (a fleet-wide change is one query)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            nids, self._wanted = self._wanted, set()
            if self.leads:
                continue
            try:
                await self._load_desired(nids)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("shared board: %s (the next re-read catches up)", exc)

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        dsn = self.settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        try:
            self._listener = await asyncpg.connect(dsn, timeout=5)
            await self._listener.add_listener(DESIRED_CHANNEL, self._on_desired)
            await self._listener.add_listener(OBSERVED_CHANNEL, self._on_observed)
            await self._listener.add_listener(RECONCILE_CHANNEL, self._on_reconcile_asked)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            self._listener = None
            log.warning("cannot listen for board changes (next try in a re-read): %s", exc)

    def _on_desired(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._wanted.add(payload)
        self._wake.set()

    def _on_observed(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            nid, by = str(message["nid"]), str(message["by"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed report notice")
            return
        if self.leads and by != self.lease.me:
            self._spawn(self._load_observed([nid]))

    def _on_reconcile_asked(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        if self.leads:
            self._on_reconcile()

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await job
            except (SQLAlchemyError, OSError) as exc:
                log.warning("shared board: %s (the next re-read catches up)", exc)

        task = asyncio.create_task(guarded())
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def status(self) -> dict[str, Any]:
        return {"replica": self.lease.me, "leads": self.leads, "leader": await self.lease.holder()}
