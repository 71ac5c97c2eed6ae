"""Group commit: one writer task per process turns concurrent requests into one transaction.

Requests ``submit`` their records and wait; the writer task takes what has accumulated (waiting up
to ``VMS_GROUP_COMMIT_WINDOW_MS`` for more while fewer than ``storage.writer.COPY_FROM_RECORDS``
are pending, at most ``VMS_GROUP_COMMIT_MAX_RECORDS`` records), writes and commits it
(storage.writer), and only then resolves every waiting request.
A request is answered 200 only after its records are committed; when the database fails the waiting
requests get 503. The queue is bounded (``VMS_QUEUE_MAX_RECORDS``): past it requests get 503 with
Retry-After. Up to ``VMS_GROUP_COMMIT_PARALLEL`` batches are in flight at once (default 2): the next
batch is collected and sent while the previous one's commit is still on its way, which hides the
round trip to Postgres. Their order does not matter: the node state keeps the newest sample by time.
When the database refuses a value in a batch (validation should have caught it; nothing was stored),
the batch is split until the request holding it stands alone: that request gets 422, the others are
committed as if it had never been there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime
from operator import attrgetter

import asyncpg
import orjson

from services.vms.ingest.metrics import IngestMetrics
from services.vms.nodes.state import NodeBatch, summarize
from services.vms.records import KIND_OF, Record
from services.vms.settings import VmsSettings
from services.vms.storage import partitions
from services.vms.storage.writer import COPY_FROM_RECORDS, by_kind, write_batch
from shared.contracts.events import Event
from shared.errors import Invalid, Unavailable

log = logging.getLogger("edge.vms.commit")

# Errors after which the connection is gone: the batch may be retried on a fresh one.
CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # the protocol left mid-operation by a dropped connection
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)
_NO_PARTITION = "23514"  # check_violation: "no partition of relation ... found for row"
_ATTEMPTS = 3
_TS = attrgetter("ts")
# A value asyncpg cannot encode for its column (refused before anything is sent).
_ClientDataError = asyncpg.exceptions._base.DataError


def refused_as_data(exc: BaseException) -> bool:
    """Whether the database (or the encoding for it) refused a value in the batch: a record's
    fault, not the database's, so the batch is worth splitting to find that record."""
    if isinstance(exc, (_ClientDataError, orjson.JSONEncodeError)):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    refused = state[:2] in ("22", "23") and state != _NO_PARTITION
    return isinstance(exc, asyncpg.PostgresError) and refused


class _Pending:
    __slots__ = ("future", "records")

    def __init__(self, records: list[Record], future: asyncio.Future):
        self.records = records
        self.future = future


class GroupCommitter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: VmsSettings,
        metrics: IngestMetrics,
        on_events: Callable[[list[Event]], None] | None = None,
    ):
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.on_events = on_events
        self._pending: deque[_Pending] = deque()
        self._pending_records = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._partitions: set[tuple[str, date]] = set()
        # Read when /metrics is scraped: no gauge update on every request.
        metrics.queued.set_function(lambda: self._pending_records)

    def _retry_after(self) -> dict[str, str]:
        return {"Retry-After": str(self.settings.retry_after_s)}

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            for table, days in (await partitions.existing(conn)).items():
                self._partitions.update((table, d) for d in days)
        self._task = asyncio.create_task(self._run(), name="vms-group-commit")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, records: list[Record]) -> None:
        """Wait until ``records`` are committed; Unavailable (503) when overloaded or the database
        fails."""
        if self._closing:
            raise Unavailable("the VMS is shutting down, retry later", headers=self._retry_after())
        n = len(records)
        if self._pending_records and self._pending_records + n > self.settings.queue_max_records:
            self.metrics.rejects.labels("overloaded").inc(n)
            raise Unavailable("ingest queue is full, retry later", headers=self._retry_after())
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(records, future))
        self._pending_records += n
        self._wake.set()
        await future

    def _take(self) -> list[_Pending]:
        limit = self.settings.group_commit_max_records
        taken: list[_Pending] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0].records) <= limit):
            item = self._pending.popleft()
            taken.append(item)
            count += len(item.records)
        self._pending_records -= count
        return taken

    async def _run(self) -> None:
        window = self.settings.group_commit_window_ms / 1000
        enough = min(COPY_FROM_RECORDS, self.settings.group_commit_max_records)
        slots = asyncio.Semaphore(max(1, self.settings.group_commit_parallel))
        inflight: set[asyncio.Task] = set()
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                busy = slots.locked()
                await slots.acquire()  # while every commit slot is busy, records keep accumulating
                if window > 0 and not busy and not self._closing and self._pending_records < enough:
                    # Idle writer with a small batch: let concurrent requests join this commit.
                    # A batch of COPY size is worth a commit of its own at once: waiting, it
                    # only held its requests back, and with them the next ones of their clients
                    # (each /batch request of 500 waited the window in the bench; its clients,
                    # all answered by the same commit, then sent their next requests together).
                    await asyncio.sleep(window)
                task = asyncio.create_task(self._commit(self._take(), slots))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
        finally:
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)

    async def _commit(self, batch: list[_Pending], slots: asyncio.Semaphore) -> None:
        try:
            await self._commit_batch(batch)
        finally:
            slots.release()

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        records = [r for item in batch for r in item.records]
        started = time.perf_counter()
        try:
            nodes = summarize(
                records,
                ewma_alpha=self.settings.ewma_alpha,
                low_confidence_alpha=self.settings.low_confidence_alpha,
            )
            events = await self._write_with_retry(records, nodes)
        except Exception as exc:  # every waiting request must be answered, whatever happened
            if refused_as_data(exc):
                await self._isolate(batch, exc)
                return
            reason = "connection" if isinstance(exc, CONNECTION_ERRORS) else type(exc).__name__
            self.metrics.commit_failures.labels(reason).inc()
            log.warning("group commit of %d records failed (%s): %s", len(records), reason, exc)
            error = Unavailable(
                "database unavailable, the records were not stored; retry later",
                headers=self._retry_after(),
            )
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        self.metrics.commit_latency.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(records))
        for kind, of_kind in by_kind(records).items():
            self.metrics.records.labels(kind).inc(len(of_kind))
        self.metrics.observe_nodes(nodes.values())
        for item in batch:
            if not item.future.done():
                item.future.set_result(None)
        if events and self.on_events is not None:
            self.on_events(events)

    async def _isolate(self, batch: list[_Pending], exc: BaseException) -> None:
        """A value in ``batch`` was refused (nothing was stored): commit its halves apart until the
        request holding it stands alone, and refuse that one (422); the others are committed."""
        if len(batch) > 1:
            middle = len(batch) // 2
            await self._commit_batch(batch[:middle])
            await self._commit_batch(batch[middle:])
            return
        item = batch[0]
        self.metrics.rejects.labels("refused_by_database").inc(len(item.records))
        log.warning("a request of %d records refused by the database: %s", len(item.records), exc)
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if not item.future.done():
            refusal = Invalid(f"the database refused a value: {detail}", field="body")
            item.future.set_exception(refusal)

    async def _write_with_retry(
        self, records: list[Record], nodes: dict[str, NodeBatch]
    ) -> list[Event]:
        # Nothing reached the database (no connection, a stale pooled one, a partition dropped under
        # us): try again on another connection, a few times (the pool may hold several stale ones).
        for attempt in range(_ATTEMPTS):
            try:
                return await self._write_once(records, nodes)
            except _NotSent as exc:
                if attempt == _ATTEMPTS - 1:
                    raise exc.__cause__ from None  # type: ignore[misc]
                log.info("retrying a batch of %d records after %r", len(records), exc.__cause__)
        raise AssertionError("unreachable")

    async def _ensure_partitions(self, conn: asyncpg.Connection, records: list[Record]) -> None:
        needed = _days_of(records) - self._partitions
        for table, day in sorted(needed):
            await partitions.ensure(conn, table, day)
            self._partitions.add((table, day))

    async def _write_once(self, records: list[Record], nodes: dict[str, NodeBatch]) -> list[Event]:
        """One statement in its own transaction. A failure while it runs is never retried here:
        whether it committed is unknown, and the client's retry after a 503 is the safe side."""
        try:
            conn = await self.pool.acquire(timeout=5)
        except Exception as exc:
            raise _NotSent() from exc
        healthy = False
        try:
            try:
                await self._ensure_partitions(conn, records)
            except Exception as exc:
                raise _NotSent() from exc
            try:
                events = await write_batch(conn, records, nodes, self.settings, datetime.now(UTC))
            except asyncpg.exceptions.ConnectionDoesNotExistError:
                raise  # it died while the statement ran: the outcome is unknown
            except (_ClientDataError, orjson.JSONEncodeError):
                healthy = True  # refused before anything was sent: the connection is fine
                raise
            except (asyncpg.exceptions.InternalClientError, asyncpg.InterfaceError) as exc:
                # Refused before anything was sent: a pooled connection the server had closed while
                # it sat idle (its protocol still consuming the server's farewell). Safe to retry.
                raise _NotSent() from exc
            except asyncpg.PostgresError as exc:
                if getattr(exc, "sqlstate", None) == _NO_PARTITION:
                    # The statement failed as a whole (nothing stored): recreate partitions and
                    # retry.
                    self._partitions.clear()
                    healthy = True
                    raise _NotSent() from exc
                # A data error failed the statement (its implicit transaction rolled back) and left
                # the connection usable; anything else: unknown state, never reused.
                healthy = refused_as_data(exc)
                raise
            healthy = True
            return events
        finally:
            with contextlib.suppress(Exception):
                if not healthy and not conn.is_closed():
                    # Never hand a connection in an unknown state back to the pool: the pool
                    # reconnects.
                    conn.terminate()
            with contextlib.suppress(Exception):
                await self.pool.release(conn, timeout=2)


def _days_of(records: list[Record]) -> set[tuple[str, date]]:
    """The (table, UTC day) partitions ``records`` go to. A batch within one day (the common
    case) is settled by its oldest and newest times, without a Python step per record."""
    stamps = list(map(_TS, records))
    first, last = partitions.utc_day(min(stamps)), partitions.utc_day(max(stamps))
    if first == last:
        return {(kind, first) for kind in set(map(KIND_OF, records))}
    return {(r.kind, partitions.utc_day(r.ts)) for r in records}


class _NotSent(Exception):
    """The batch was not committed and may be retried."""
