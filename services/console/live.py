"""Live updates for the pages (Server-Sent Events): one scheduled job asks the services every
CONSOLE_LIVE_INTERVAL_S while at least one page listens, and hands each listener what changed:
``fleet`` (the whole fleet view, when it differs from the last one) and ``decision`` (each new
entry of the optimizer's decision log)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from services.console.fleet import fleet_view
from services.console.upstream import Upstreams
from shared.errors import DomainError

log = logging.getLogger("edge.console.live")

KEEPALIVE_S = 3.0  # also how often a stream notices its session ended


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Live:
    def __init__(self, upstreams: Upstreams) -> None:
        self.up = upstreams
        self.listeners: dict[str, set[asyncio.Queue[bytes]]] = {"fleet": set(), "decisions": set()}
        self.fleet: dict[str, Any] | None = None
        self.seen_decisions: set[str] = set()
        self.decisions_primed = False
        self.lock = asyncio.Lock()

    async def tick(self) -> None:
        """The scheduled job: refresh what someone listens to, and tell them what changed."""
        async with self.lock:
            if self.listeners["fleet"]:
                await self._fleet()
            else:
                self.fleet = None
            if self.listeners["decisions"]:
                await self._decisions()
            else:
                self.decisions_primed = False

    async def _fleet(self) -> None:
        view = await fleet_view(self.up)
        if view != self.fleet:
            self.fleet = view
            self._send("fleet", sse("fleet", view))

    async def _decisions(self) -> None:
        try:
            page = await self.up.optimizer.json("GET", "/decisions", params={"limit": 50})
        except DomainError as exc:
            self._send(
                "decisions", sse("problem", {"service": "optimizer", "message": exc.message})
            )
            return
        fresh = [d for d in page.get("items", []) if d["id"] not in self.seen_decisions]
        self.seen_decisions.update(d["id"] for d in fresh)
        if len(self.seen_decisions) > 10_000:
            self.seen_decisions = {d["id"] for d in page.get("items", [])}
        if self.decisions_primed:
            for decision in reversed(fresh):  # oldest first
                self._send("decisions", sse("decision", decision))
        self.decisions_primed = True

    def _send(self, topic: str, message: bytes) -> None:
        for queue in self.listeners[topic]:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message)

    async def stream(self, topic: str) -> AsyncIterator[bytes]:
        """One listener's events; the first fleet view at once."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=100)
        self.listeners[topic].add(queue)
        try:
            yield b"retry: 3000\n\n"
            if topic == "fleet":
                async with self.lock:
                    if self.fleet is None:
                        self.fleet = await fleet_view(self.up)
                yield sse("fleet", self.fleet)
            else:
                async with self.lock:
                    if not self.decisions_primed:
                        await self._decisions()
                yield sse("ready", {})
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
        finally:
            self.listeners[topic].discard(queue)
