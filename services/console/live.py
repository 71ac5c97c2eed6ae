"""Live updates for the pages (Server-Sent Events): one scheduled job asks the services every
CONSOLE_LIVE_INTERVAL_S for what at least one page listens to, and hands each listener what
changed. Topics: ``fleet`` (event ``fleet``, the whole fleet view), ``packages`` (event
``packages``, the AI packages and rollouts), ``edge:<id>`` (event ``edge``, one edge's view), each
sent when it differs from the last one; ``decisions`` (event ``decision``, each new entry of the
optimizer's decision log). A view that cannot be had is an event ``problem``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from pydantic import BaseModel

from services.console.fleet import fleet_view
from services.console.schemas import Problem
from services.console.upstream import Upstreams
from services.console.views import edge_view, packages_view
from shared.contracts.decisions import DecisionPage
from shared.deps import from_app_state
from shared.errors import DomainError

log = logging.getLogger("edge.console.live")

KEEPALIVE_S = 3.0  # also how often a stream notices its session ended
DECISIONS = "decisions"


def sse(event: str, data: BaseModel | dict[str, object]) -> bytes:
    """One Server-Sent Event: a view (its JSON, as the route answers it) or a small message."""
    if isinstance(data, BaseModel):
        text = data.model_dump_json()
    else:
        text = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


class Live:
    def __init__(self, upstreams: Upstreams) -> None:
        self.up = upstreams
        self.listeners: dict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)
        self.views: dict[str, bytes] = {}  # the last view sent, by topic (its event)
        self.seen_decisions: set[str] = set()
        self.decisions_primed = False
        self.lock = asyncio.Lock()

    async def tick(self) -> None:
        """The scheduled job: refresh what someone listens to, and tell them what changed."""
        async with self.lock:
            for topic in list(self.listeners):
                if not self.listeners[topic]:
                    del self.listeners[topic]
                    self.views.pop(topic, None)
                    if topic == DECISIONS:
                        self.decisions_primed = False
                elif topic == DECISIONS:
                    await self._decisions()
                else:
                    await self._view(topic)

    async def _ask(self, topic: str) -> bytes:
        """The topic's view now, as its event (or a ``problem`` event)."""
        try:
            if topic == "fleet":
                return sse("fleet", await fleet_view(self.up))
            if topic == "packages":
                return sse("packages", await packages_view(self.up))
            return sse("edge", await edge_view(self.up, int(topic.removeprefix("edge:"))))
        except DomainError as exc:
            return sse("problem", Problem(service="setup", message=exc.message))

    async def _view(self, topic: str) -> None:
        message = await self._ask(topic)
        if message != self.views.get(topic):
            self.views[topic] = message
            self._send(topic, message)

    async def _decisions(self) -> None:
        try:
            page = await self.up.optimizer.model(
                "GET", "/decisions", DecisionPage, params={"limit": 50}
            )
        except DomainError as exc:
            problem = Problem(service="optimizer", message=exc.message)
            self._send(DECISIONS, sse("problem", problem))
            return
        fresh = [d for d in page.items if d.id not in self.seen_decisions]
        self.seen_decisions.update(d.id for d in fresh)
        if len(self.seen_decisions) > 10_000:
            self.seen_decisions = {d.id for d in page.items}
        if self.decisions_primed:
            for decision in reversed(fresh):  # oldest first
                self._send(DECISIONS, sse("decision", decision))
        self.decisions_primed = True

    def _send(self, topic: str, message: bytes) -> None:
        for queue in self.listeners[topic]:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message)

    async def stream(self, topic: str) -> AsyncIterator[bytes]:
        """One listener's events; a view's current state at once."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=100)
        self.listeners[topic].add(queue)
        try:
            yield b"retry: 3000\n\n"
            if topic == DECISIONS:
                async with self.lock:
                    if not self.decisions_primed:
                        await self._decisions()
                yield sse("ready", {})
            else:
                async with self.lock:
                    if topic not in self.views:
                        self.views[topic] = await self._ask(topic)
                    current = self.views[topic]
                yield current
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
        finally:
            self.listeners[topic].discard(queue)


LiveDep = Annotated[Live, Depends(from_app_state("live", Live))]
