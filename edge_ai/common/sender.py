"""Deliver records in order, keeping them on disk while the receiver is unreachable.

One task per sender does all the sending, so order is simple to keep: a new record goes
straight out only while nothing is buffered; otherwise it is appended behind the buffered ones
and the buffer drains oldest first (in batches where the receiver has a batch route). Failures
back off exponentially with jitter (several edges must not all retry in the same instant after a
VMS restart), and a Retry-After from the receiver is honoured. The task waits on its queue with
a timeout until the next attempt: no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from edge_ai.common.buffer import BufferedRecord, DiskBuffer
from edge_common.compat import to_thread

log = logging.getLogger("edge_ai.sender")


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the receiver refused the record itself: retrying cannot help
    RETRY = "retry"  # the receiver or the link is down: keep the record and try later


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    reason: str = ""
    retry_after: float | None = None


DELIVERED = Delivery(Outcome.DELIVERED)

DeliverOne = Callable[[BufferedRecord], Awaitable[Delivery]]
# Either one Delivery per record (same order), or a single RETRY for the whole batch.
DeliverBatch = Callable[[Sequence[BufferedRecord]], Awaitable["list[Delivery] | Delivery"]]

_STOP = object()
_DROP_LOG_INTERVAL = 30.0


class BufferedSender:
    def __init__(
        self,
        *,
        name: str,
        buffer: DiskBuffer,
        deliver_one: DeliverOne,
        deliver_batch: DeliverBatch | None = None,
        batch_size: int = 200,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        queue_max: int = 10_000,
    ):
        self.name = name
        self.buffer = buffer
        self._deliver_one = deliver_one
        self._deliver_batch = deliver_batch
        self.batch_size = batch_size
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_max)
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._last_drop_log = 0.0
        self._dropped_unlogged = 0
        self.submitted = 0
        self.delivered = 0
        self.rejected = 0
        self.retries = 0
        self.dropped_in_memory = 0
        self.last_error = ""
        self.failing_since: float | None = None  # monotonic time of the first failure in a row

    # -- public -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sender-{self.name}")

    def submit(self, kind: str, data: dict[str, Any], blob: bytes | None = None) -> None:
        """Queue one record; never blocks the caller (the program's per-second tick)."""
        item = (kind, data, blob)
        self.submitted += 1
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Only when the disk itself stalls for a long time; keep the newest like the buffer
            # does.
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self.dropped_in_memory += 1
            self._queue.put_nowait(item)

    @property
    def reachable(self) -> bool:
        return self._failures == 0

    def stats(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "delivered": self.delivered,
            "rejected": self.rejected,
            "retries": self.retries,
            "buffered": len(self.buffer),
            "dropped": self.buffer.dropped + self.dropped_in_memory,
            "queued": self._queue.qsize(),
            "reachable": self.reachable,
            "last_error": self.last_error,
        }

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop sending (the task gets ``grace_s`` to finish its request); whatever was not
        delivered stays in the buffer for the next start."""
        if self._task is not None:
            # The sentinel may not fit a full queue; cancelling is then the way out.
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_STOP)
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        self._spill_queue()
        self.buffer.close()

    # -- the sending task -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if len(self.buffer) and time.monotonic() >= self._next_attempt:
                await self._drain()
                continue
            timeout = max(0.0, self._next_attempt - time.monotonic()) if len(self.buffer) else None
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout)
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                continue
            if item is _STOP:
                return
            kind, data, blob = item
            if len(self.buffer) or time.monotonic() < self._next_attempt:
                await self._store([item])
                continue
            record = BufferedRecord(id=0, kind=kind, data=data, blob=blob)
            try:
                result = await self._deliver_one(record)
            except asyncio.CancelledError:
                self._store_now([item])
                raise
            if result.outcome is Outcome.RETRY:
                await self._store([item])
                self._failed(result)
            else:
                self._account(result, record)
                self._recovered()

    async def _drain(self) -> None:
        """Send the buffer oldest first until it is empty or the receiver fails again."""
        sent = 0
        while len(self.buffer):
            await self._spill_queue_async()
            batch = await to_thread(self.buffer.peek, self.batch_size)
            if self._deliver_batch is not None:
                results = await self._deliver_batch(batch)
            else:
                results = await self.one_by_one(batch)
            if isinstance(results, Delivery):
                self._failed(results)
                return
            done: list[int] = []
            failure: Delivery | None = None
            for record, result in zip(batch, results):
                if result.outcome is Outcome.RETRY:
                    failure = failure or result
                    continue
                self._account(result, record)
                done.append(record.id)
            await to_thread(self.buffer.remove, done)
            sent += len(done)
            if failure is not None or len(results) < len(batch):
                self._failed(failure or Delivery(Outcome.RETRY, "incomplete batch answer"))
                return
        if sent:
            log.info("%s: buffer drained, %d records sent", self.name, sent)
        self._recovered()

    async def one_by_one(self, batch: Sequence[BufferedRecord]) -> list[Delivery] | Delivery:
        results: list[Delivery] = []
        for record in batch:
            result = await self._deliver_one(record)
            if result.outcome is Outcome.RETRY:
                return results or result
            results.append(result)
        return results

    # -- bookkeeping ------------------------------------------------------------------------

    def _account(self, result: Delivery, record: BufferedRecord) -> None:
        if result.outcome is Outcome.DELIVERED:
            self.delivered += 1
        else:
            self.rejected += 1
            log.warning("%s: %s record refused, dropped: %s", self.name, record.kind, result.reason)

    def _failed(self, result: Delivery) -> None:
        if self._failures == 0:
            self.failing_since = time.monotonic()
        self._failures += 1
        self.retries += 1
        self.last_error = result.reason
        delay = min(self.backoff_max, self.backoff_min * 2 ** (self._failures - 1))
        delay *= random.uniform(0.5, 1.0)
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        self._next_attempt = time.monotonic() + delay
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(
            level,
            "%s: receiver unavailable (%s); %d records buffered, next try in %.1fs",
            self.name,
            result.reason,
            len(self.buffer),
            delay,
        )

    def _recovered(self) -> None:
        if self._failures:
            log.info(
                "%s: receiver reachable again after %d failed attempts", self.name, self._failures
            )
        self._failures = 0
        self.failing_since = None
        self._next_attempt = 0.0

    async def _store(self, items: list[tuple[str, dict[str, Any], bytes | None]]) -> None:
        dropped = await to_thread(self.buffer.extend, items)
        self._note_dropped(dropped)

    def _store_now(self, items: list[tuple[str, dict[str, Any], bytes | None]]) -> None:
        self._note_dropped(self.buffer.extend(items))

    def _note_dropped(self, dropped: int) -> None:
        if not dropped:
            return
        self._dropped_unlogged += dropped
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL:
            log.warning(
                "%s: buffer full (%d records): dropped the %d oldest, %d dropped in all",
                self.name,
                self.buffer.max_records,
                self._dropped_unlogged,
                self.buffer.dropped,
            )
            self._dropped_unlogged = 0
            self._last_drop_log = now

    def _take_queued(self) -> list[tuple[str, dict[str, Any], bytes | None]]:
        items: list[tuple[str, dict[str, Any], bytes | None]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return items
            if item is _STOP:
                # Put it back so the run loop sees it after the drain.
                self._queue.put_nowait(_STOP)
                return items
            items.append(item)

    async def _spill_queue_async(self) -> None:
        items = self._take_queued()
        if items:
            await self._store(items)

    def _spill_queue(self) -> None:
        items = [i for i in self._take_queued_all() if i is not _STOP]
        if items:
            self._store_now(items)

    def _take_queued_all(self) -> list[Any]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return items
