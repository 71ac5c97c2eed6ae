"""Push channel to the optimizer: POST {EDGE_OPTIMIZER_URL}/events, from a background task.

Ingest never waits for it: events go into a bounded queue and are dropped when it is full or
the optimizer does not answer (the optimizer's 30 s resync from GET /nodes/state covers them).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from services.vms.ingest.metrics import IngestMetrics
from services.vms.settings import VmsSettings
from shared.clients import service_client

log = logging.getLogger("edge.vms.notify")


def to_wire(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the optimizer's /events takes it: top-level fields, and the same under ``data``."""
    data = {k: v for k, v in event.items() if k not in ("type", "nid")}
    return {**event, "data": data}


class OptimizerNotifier:
    def __init__(self, settings: VmsSettings, metrics: IngestMetrics):
        self.settings = settings
        self.metrics = metrics
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=settings.notify_queue_size)
        self._task: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = service_client(self.settings, self.settings.optimizer_url, timeout=self.settings.notify_timeout_s)
        self._task = asyncio.create_task(self._run(), name="vms-notify-optimizer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    def publish(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.metrics.events.labels(event["type"], "dropped").inc()

    async def _run(self) -> None:
        assert self._client is not None
        while True:
            event = await self.queue.get()
            try:
                response = await self._client.post("/events", json=to_wire(event))
                outcome = "sent" if response.is_success else f"http_{response.status_code}"
            except httpx.HTTPError as exc:
                outcome = "failed"
                log.debug("optimizer event %s not delivered: %s", event["type"], exc)
            self.metrics.events.labels(event["type"], outcome).inc()
